"""Selecting references: shards, globs, reference lines (pure); the catalog walk (real registry)."""

from __future__ import annotations

import pytest

from oci_normalize.api import Client
from oci_normalize.batch.targets import (
    Selection,
    Shard,
    from_lines,
    from_registry,
    registry_reference,
    shard_of,
)
from oci_normalize.errors import ReferenceError_
from oci_normalize.reference import Reference
from tests.support.bulk_seed import Seeder
from tests.support.registry import RunningRegistry


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0/1", Shard(0, 1)), ("0/4", Shard(0, 4)), ("3/4", Shard(3, 4)), ("12/100", Shard(12, 100))],
)
def test_shard_parse_good(text: str, expected: Shard) -> None:
    assert Shard.parse(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize("text", ["", "1", "4/4", "-1/4", "1/0", "a/b", "1/2/3", "1 /2x"])
def test_shard_parse_bad(text: str) -> None:
    with pytest.raises(ValueError, match="invalid shard"):
        Shard.parse(text)


def _refs(count: int) -> list[Reference]:
    return [
        Reference(registry="r.example", repository=f"team{i % 7}/app{i % 13}", tag=f"v{i}")
        for i in range(count)
    ]


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_shards_partition_any_set_exactly(count: int) -> None:
    refs = _refs(500)
    slices = [[r for r in refs if Shard(i, count).owns(r)] for i in range(count)]
    assert sorted(str(r) for s in slices for r in s) == sorted(str(r) for r in refs)
    # balanced enough to be worth it: no slice holds more than twice its share
    assert max(len(s) for s in slices) <= 2 * len(refs) / count


def test_shard_ignores_the_registry_spelling_and_is_stable() -> None:
    a = Reference(registry="localhost:5000", repository="team/app", tag="v1")
    b = Reference(registry="127.0.0.1:5000", repository="team/app", tag="v1")
    assert shard_of(a, 7) == shard_of(b, 7)
    # pinned literals: the hash must never change between releases, or workers of two versions
    # running side by side would disagree about who owns a reference
    refs = [Reference("r", "team/app", f"v{i}") for i in range(8)]
    assert [shard_of(r, 4) for r in refs] == [2, 3, 0, 2, 0, 0, 2, 2]
    assert [shard_of(r, 7) for r in refs] == [4, 6, 5, 0, 5, 0, 5, 1]


@pytest.mark.parametrize(
    ("repos", "tags", "ref", "wanted"),
    [
        ((), (), "h.io/a/b:1", True),
        (("a/*",), (), "h.io/a/b:1", True),
        (("a/*",), (), "h.io/c/b:1", False),
        (("a/*", "c/*"), (), "h.io/c/b:1", True),
        ((), ("v1.*",), "h.io/a/b:v1.2", True),
        ((), ("v1.*",), "h.io/a/b:v2.0", False),
        (("a/b",), ("latest",), "h.io/a/b:latest", True),
        ((), ("V1",), "h.io/a/b:v1", False),  # case-sensitive, like tags
    ],
)
def test_selection_globs(
    repos: tuple[str, ...], tags: tuple[str, ...], ref: str, wanted: bool
) -> None:
    assert Selection(repos=repos, tags=tags).wants(Reference.parse(ref)) is wanted


def test_from_lines_skips_comments_dedupes_sorts_and_reports_bad_lines() -> None:
    lines = [
        "# a comment",
        "",
        "h.io/z/app:2",
        "  h.io/a/app:1  ",
        "h.io/z/app:2",
        "h.io/Bad/App:1",
        "team/app:3",
    ]
    targets = from_lines(lines, Selection(), registry="reg.local:5000")
    assert [str(r) for r in targets.refs] == [
        "h.io/a/app:1",
        "h.io/z/app:2",
        "reg.local:5000/team/app:3",
    ]
    assert [what for what, _ in targets.failures] == ["h.io/Bad/App:1"]
    assert targets.repositories == 3


def test_from_lines_without_registry_keeps_docker_hub() -> None:
    targets = from_lines(["alpine:3", "docker.io/library/busybox"], Selection())
    assert [str(r) for r in targets.refs] == [
        "docker.io/library/alpine:3",
        "docker.io/library/busybox:latest",
    ]


@pytest.mark.parametrize("bad", ["nohost", "a b", "h.io/"])
def test_registry_reference_rejects_non_hosts(bad: str) -> None:
    with pytest.raises(ReferenceError_):
        registry_reference(bad)


@pytest.mark.registry
def test_catalog_and_tags_are_paginated_and_filtered(
    registry: RunningRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeder = Seeder(registry.url)
    image = seeder.docker_image("tt-pages/src", "base", key="tt-pages")
    for repo in ("tt-pages/a", "tt-pages/b", "tt-pages/c"):
        for tag in ("v1", "v2", "v3", "dev"):
            seeder.copy_image(image, "tt-pages/src", repo, tag)
    seeder.close()
    monkeypatch.setattr("oci_normalize.batch.targets.CATALOG_PAGE", 2)
    monkeypatch.setattr("oci_normalize.batch.targets.TAGS_PAGE", 2)
    client = Client()
    mark = registry.log_mark()
    selection = Selection(repos=("tt-pages/[ab]",), tags=("v*",))
    targets = from_registry(client, registry.host, selection, concurrency=4)
    assert [f"{r.repository}:{r.tag}" for r in targets.refs] == [
        "tt-pages/a:v1",
        "tt-pages/a:v2",
        "tt-pages/a:v3",
        "tt-pages/b:v1",
        "tt-pages/b:v2",
        "tt-pages/b:v3",
    ]
    assert targets.repositories == 2 and not targets.failures
    entries = registry.access_log_lines(since=mark)
    catalog_pages = [e for e in entries if e.path == "/v2/_catalog"]
    tag_pages = [e for e in entries if e.path.endswith("/tags/list")]
    assert len(catalog_pages) >= 2  # at least 4 repositories, 2 a page
    # distribution 2.8 ignores n= on tags/list (one page); repositories filtered out cost nothing
    assert sorted(e.path for e in tag_pages) == [
        "/v2/tt-pages/a/tags/list",
        "/v2/tt-pages/b/tags/list",
    ]
