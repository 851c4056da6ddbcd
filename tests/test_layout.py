"""OCI image layouts as a store: parsing, index.json updates, path safety, round trips."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from oci_normalize import api
from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import (
    DigestMismatchError,
    InvalidDigestError,
    InvalidReferenceError,
    MalformedManifestError,
    NotFoundError,
)
from oci_normalize.reference import ArchiveRef, LayoutRef, Reference, parse_location
from oci_normalize.store.layout import REF_NAME, Layout
from tests.support import peers, seed
from tests.support.registry import RunningRegistry

CWD = os.getcwd()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("oci:/a/b:v1", LayoutRef("/a/b", "v1")),
        ("oci:/a/b", LayoutRef("/a/b")),
        ("oci:rel/dir", LayoutRef(f"{CWD}/rel/dir")),
        ("oci:rel/dir:1.0_rc-2", LayoutRef(f"{CWD}/rel/dir", "1.0_rc-2")),
        ("oci:/a:b/c", LayoutRef("/a:b/c")),  # what follows the last colon is a path
        ("oci:/a/my:dir:", LayoutRef("/a/my:dir")),  # a trailing colon: no tag
        ("oci:/a/b:-bad", LayoutRef("/a/b:-bad")),  # not a valid tag: part of the path
        ("localhost:5000/x", Reference("localhost:5000", "x", "latest")),
        ("docker://oci:5000/x:1", Reference("oci:5000", "x", "1")),
        ("docker-archive:/t/x.tar", ArchiveRef("/t/x.tar")),
        (
            "docker-archive:/t/x.tar:localhost:5000/app:v1",
            ArchiveRef("/t/x.tar", "localhost:5000/app:v1"),
        ),
        ("docker-archive:/t/x.tar:@2", ArchiveRef("/t/x.tar", "@2")),
    ],
)
def test_parse_location(text: str, expected: object) -> None:
    assert parse_location(text) == expected


@pytest.mark.parametrize("text", ["oci:", "oci::v1", "docker-archive:", "docker-archive:x:@a"])
def test_parse_location_refuses(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_location(text)


@pytest.mark.parametrize(
    "digest",
    [
        Digest("sha256", "../../../etc/passwd"),
        Digest("sha256", "/etc/passwd"),
        Digest("../sha256", "a" * 64),
        Digest("sha256", "A" * 64),
    ],
)
def test_blob_paths_come_only_from_valid_digests(tmp_path: Path, digest: Digest) -> None:
    layout = Layout(tmp_path / "l")
    with pytest.raises(InvalidDigestError):
        layout.blob_path(digest)
    with pytest.raises(InvalidDigestError):
        layout.upload_blob("", digest, 1, [b"x"])
    assert not (tmp_path / "l").exists() or not any((tmp_path / "l").rglob("passwd"))


def test_index_json_with_a_traversing_digest_is_refused(tmp_path: Path) -> None:
    layout = _layout_with(
        tmp_path,
        [{"mediaType": mt.OCI_MANIFEST, "size": 2, "digest": "sha256:../../../../etc/passwd"}],
    )
    with pytest.raises(MalformedManifestError, match="invalid digest"):
        layout.get_manifest("", "")


def _layout_with(tmp: Path, entries: list[dict[str, object]]) -> Layout:
    root = tmp / "layout"
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
    return Layout(root)


def _manifest(n: int) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "n": n}).encode()


def _entry(data: bytes, name: str | None, **extra: object) -> dict[str, object]:
    out: dict[str, object] = {
        "mediaType": mt.OCI_MANIFEST,
        "digest": str(Digest.of(data)),
        "size": len(data),
        **extra,
    }
    if name is not None:
        out["annotations"] = {REF_NAME: name, "keep": "me"}
    return out


@pytest.mark.parametrize(
    ("before", "ref", "after"),
    [
        ([], "v1", [(9, "v1")]),  # new tag appended
        ([(1, "v1"), (2, "v2")], "v1", [(9, "v1"), (2, "v2")]),  # replaced in its place
        ([(1, "v1"), (2, "v2")], "v3", [(1, "v1"), (2, "v2"), (9, "v3")]),
        ([(1, None)], "", [(9, None)]),  # the only (unnamed) image
        ([(1, "a")], "", [(9, "a")]),  # the only image keeps its name
        ([(1, "v1"), (1, "v1")], "v1", [(9, "v1")]),  # duplicates collapse
    ],
)
def test_put_manifest_updates_index_json(
    tmp_path: Path,
    before: list[tuple[int, str | None]],
    ref: str,
    after: list[tuple[int, str | None]],
) -> None:
    layout = _layout_with(tmp_path, [_entry(_manifest(n), name) for n, name in before])
    for n, _ in before:
        layout.upload_blob("", Digest.of(_manifest(n)), len(_manifest(n)), [_manifest(n)])
    digest = layout.put_manifest("", ref, _manifest(9), mt.OCI_MANIFEST)
    index = json.loads((layout.path / "index.json").read_bytes())
    got = [(e["digest"], (e.get("annotations") or {}).get(REF_NAME)) for e in index["manifests"]]
    assert got == [(str(Digest.of(_manifest(n))), name) for n, name in after]
    assert layout.head_manifest("", ref) == digest
    # Other annotations of a replaced entry stay; old blobs stay; no temp files linger.
    if before and before[0][1] == ref:
        assert index["manifests"][0]["annotations"]["keep"] == "me"
    names = {p.name for p in (layout.path / "blobs" / "sha256").iterdir()}
    assert {Digest.of(_manifest(n)).hex for n, _ in before} <= names
    assert not [p for p in layout.path.rglob(".*") if p.is_file()]
    peers.schema_validator("image-index-schema.json").validate(index)


def test_upload_with_wrong_content_leaves_nothing(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "new")
    want = Digest.of(b"right")
    with pytest.raises(DigestMismatchError):
        layout.upload_blob("", want, 5, [b"wrong"])
    assert not layout.blob_path(want).exists()
    assert [p.name for p in (tmp_path / "new" / "blobs" / "sha256").iterdir()] == []


def test_missing_blob_named_by_index_is_one_clear_error(tmp_path: Path) -> None:
    data = _manifest(1)
    layout = _layout_with(tmp_path, [_entry(data, "v1")])  # the blob itself is never written
    before = sorted(p.name for p in layout.path.rglob("*"))
    with pytest.raises(NotFoundError, match=r"named but its blob blobs/sha256/\w+ is missing"):
        api.convert(f"oci:{layout.path}:v1", f"oci:{tmp_path / 'out'}:v1")
    with pytest.raises(NotFoundError, match="is missing"):
        api.convert(f"oci:{layout.path}:v1")
    assert sorted(p.name for p in layout.path.rglob("*")) == before
    assert not (tmp_path / "out").exists()


def test_unknown_tag_and_ambiguous_layout(tmp_path: Path) -> None:
    layout = _layout_with(tmp_path, [_entry(_manifest(1), "a"), _entry(_manifest(2), "b")])
    with pytest.raises(NotFoundError, match=r"no image tagged 'c' in index.json \(tags: a, b\)"):
        layout.get_manifest("", "c")
    with pytest.raises(NotFoundError, match="holds 2 images"):
        layout.get_manifest("", "")
    assert layout.head_manifest("", "c") is None


# ---- round trips with skopeo as the judge --------------------------------------------------------


@pytest.mark.registry
def test_skopeo_v2s2_layout_is_fixed_in_place(tmp_path: Path) -> None:
    source = seed.build_layout(tmp_path, layers=2, seed="layout-v2s2")
    docker = tmp_path / "docker-layout"
    peers.skopeo_copy(f"oci:{source}:latest", f"oci:{docker}:t", "--format", "v2s2")
    with pytest.raises(RuntimeError, match="no descriptor found"):  # the bug users hit
        peers.skopeo_copy(f"oci:{docker}:t", f"dir:{tmp_path / 'before'}")
    old_blobs = {p.name for p in (docker / "blobs" / "sha256").iterdir()}

    assert api.check(f"oci:{docker}:t").oci is False
    result = api.convert(f"oci:{docker}:t")
    assert result.status == "converted"
    assert api.check(f"oci:{docker}:t").oci is True
    assert old_blobs <= {p.name for p in (docker / "blobs" / "sha256").iterdir()}
    peers.skopeo_copy(f"oci:{docker}:t", f"oci:{tmp_path / 'after'}:t")  # skopeo reads it now
    assert peers.unpacked_tree(docker, "t", tmp_path / "b1") == peers.unpacked_tree(
        source, "latest", tmp_path / "b2"
    )
    index = json.loads((docker / "index.json").read_bytes())
    peers.schema_validator("image-index-schema.json").validate(index)
    peers.schema_validator("image-layout-schema.json").validate(
        json.loads((docker / "oci-layout").read_bytes())
    )


@pytest.mark.registry
def test_registry_to_layout_to_registry(registry: RunningRegistry, tmp_path: Path) -> None:
    host = registry.host
    digest = seed.push_docker_list(registry.url, "lay/list", "v1", tmp_path)
    exported = tmp_path / "exported"
    result = api.convert(f"{host}/lay/list:v1", f"oci:{exported}")  # untagged dest: latest
    manifest_index = json.loads((exported / "index.json").read_bytes())
    (entry,) = manifest_index["manifests"]
    assert entry["annotations"][REF_NAME] == "latest"
    assert entry["digest"] == result.new_digest != digest
    assert entry["mediaType"] == mt.OCI_INDEX
    # The layout is complete: skopeo copies every platform out of it.
    peers.skopeo_copy(f"oci:{exported}:latest", f"oci:{tmp_path / 'copy'}:x", "--all")
    pushed = api.convert(f"oci:{exported}", f"{host}/lay/back:v2")
    assert pushed.status == "copied" and pushed.new_digest == result.new_digest
    assert seed.head_manifest(registry.url, "lay/back", "v2") == result.new_digest
    peers.skopeo_copy(f"docker://{host}/lay/back:v2", f"oci:{tmp_path / 'judge'}:x", "--all")
    for path in exported.rglob("*"):
        if path.is_file() and path.parent.name == "sha256":
            assert Digest.of(path.read_bytes()).hex == path.name
