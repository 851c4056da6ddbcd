"""Selecting references: shards, globs, reference lines (pure); the catalog walk (real registry)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest

from oci_normalize.api import Client
from oci_normalize.batch.targets import (
    Selection,
    Shard,
    from_lines,
    from_registry,
    registry_reference,
    shard_of,
    stream_registry,
)
from oci_normalize.errors import InvalidReferenceError, RegistryError
from oci_normalize.reference import Reference
from tests.support.bulk_seed import Seeder
from tests.support.registry import RegistryFactory, RunningRegistry


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
    with pytest.raises(InvalidReferenceError):
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


@pytest.mark.registry
def test_a_catalog_with_more_references_than_the_bound_is_refused(
    registry_factory: RegistryFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = registry_factory()  # its own: the catalog holds only what is seeded here
    seeder = Seeder(registry.url)
    image = seeder.docker_image("tt-bound/src", "base", key="tt-bound")
    for repo in ("tt-bound/a", "tt-bound/b"):
        for tag in ("v1", "v2", "v3"):
            seeder.copy_image(image, "tt-bound/src", repo, tag)
    seeder.close()
    selection = Selection(repos=("tt-bound/[ab]",))
    monkeypatch.setenv("OCI_NORMALIZE_MAX_LISTED_NAMES", "5")
    with Client() as client, pytest.raises(RegistryError, match="more than 5 references"):
        from_registry(client, registry.host, selection, concurrency=2)
    monkeypatch.setenv("OCI_NORMALIZE_MAX_LISTED_NAMES", "6")
    with Client() as client:
        assert len(from_registry(client, registry.host, selection, concurrency=2).refs) == 6


# ---- lazy enumeration over a scripted listing (the real catalog walk is tested above) --------


class _Listing:
    """A registry's catalog and tag lists in memory, counting what was asked for."""

    name = "list.local"

    def __init__(self, repositories: int, tags: int, broken: str = "") -> None:
        self.names = [f"team/app{i:03d}" for i in range(repositories)]
        self.tags = tags
        self.broken = broken
        self.pages = 0
        self.listed: list[str] = []

    def iter_catalog(self, *, page_size: int) -> Iterator[list[str]]:
        for start in range(0, len(self.names), page_size):
            self.pages += 1
            yield self.names[start : start + page_size]

    def list_tags(self, repository: str, *, page_size: int) -> list[str]:
        assert page_size > 0
        self.listed.append(repository)
        if repository == self.broken:
            raise RegistryError(f"{repository}: tags/list answered 500")
        return [f"v{t}" for t in reversed(range(self.tags))] + ["bad tag!"]


class _ListingClient:
    def __init__(self, listing: _Listing) -> None:
        self.listing = listing

    def registry(self, ref: Reference) -> _Listing:
        assert ref.registry == "list.local"
        return self.listing


def test_the_catalog_and_tag_lists_are_read_as_the_references_are_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("oci_normalize.batch.targets.CATALOG_PAGE", 10)
    listing = _Listing(repositories=100, tags=3, broken="team/app050")
    primed: list[str] = []
    stream = stream_registry(
        cast(Client, _ListingClient(listing)),
        "list.local",
        Selection(repos=("team/app0*",)),
        concurrency=4,
        on_tags=lambda repository, tags: primed.append(repository),
    )
    first = next(stream.refs)
    assert str(first) == "list.local/team/app000:v0"  # sorted within its repository
    assert listing.pages == 1 and len(listing.listed) <= 4 + 1  # look-ahead, not the registry
    for _ in range(3 * 20 - 1):  # the rest of app000..app019
        next(stream.refs)
    assert listing.pages <= 3 and len(listing.listed) <= 20 + 4 + 1
    rest = list(stream.refs)
    assert len(rest) == 3 * 100 - 3 * 20 - 3  # app050's list failed
    assert listing.pages == 10 and len(listing.listed) == 100
    assert stream.repositories == 100 and primed == [n for n in listing.names if n != "team/app050"]
    failures = dict(stream.failures)
    assert "tags/list answered 500" in failures["list.local/team/app050"]
    assert sum("bad tag!" in what for what, _ in stream.failures) == 99


def test_filters_and_shards_apply_as_the_stream_goes() -> None:
    listing = _Listing(repositories=12, tags=4)
    client = cast(Client, _ListingClient(listing))
    everything = {
        str(r) for r in stream_registry(client, "list.local", Selection(), concurrency=2).refs
    }
    parts = [
        {
            str(r)
            for r in stream_registry(
                client, "list.local", Selection(shard=Shard(i, 3)), concurrency=2
            ).refs
        }
        for i in range(3)
    ]
    assert set().union(*parts) == everything and sum(map(len, parts)) == len(everything) == 48
    tagged = stream_registry(
        client, "list.local", Selection(repos=("*1",), tags=("v[02]",)), concurrency=2
    )
    assert [str(r) for r in tagged.refs] == [
        "list.local/team/app001:v0",
        "list.local/team/app001:v2",
        "list.local/team/app011:v0",
        "list.local/team/app011:v2",
    ]


def test_a_catalog_that_fails_fails_before_any_reference_is_taken() -> None:
    class NoCatalog(_Listing):
        def iter_catalog(self, *, page_size: int) -> Iterator[list[str]]:
            raise RegistryError("catalog: 404 (UNSUPPORTED)")
            yield []

    client = cast(Client, _ListingClient(NoCatalog(1, 1)))
    with pytest.raises(RegistryError, match="UNSUPPORTED"):
        stream_registry(client, "list.local", Selection(), concurrency=1)
