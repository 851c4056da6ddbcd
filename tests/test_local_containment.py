"""Hostile OCI layouts: nothing inside one makes the tool read or write outside it.

Each layout is a Docker-typed image built in the test, then sabotaged one way (a symlink out, a
FIFO, a device, a hard link to a host file, an oversized index). The CLI runs as a child with a
deadline and a memory ceiling; every case must end in one clean stderr line and exit 2, with the
layout, the files beside it and any destination exactly as they were.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from oci_normalize import api
from oci_normalize.digest import Digest
from oci_normalize.errors import ContentError, DigestMismatchError, OciNormalizeError
from oci_normalize.store.layout import Layout
from tests.support.hostile_local import (
    DockerLayout,
    docker_layout,
    one_error_line,
    run_cli,
    sha256,
    snapshot,
)
from tests.support.registry import RunningRegistry

SECRET = b"SECRET-host-file-" + os.urandom(8).hex().encode()

Sabotage = Callable[[DockerLayout, Path], None]


def _secret(outside: Path) -> Path:
    path = outside / "secret.txt"
    path.write_bytes(SECRET)
    return path


def blob_symlink_to_host_file(img: DockerLayout, outside: Path) -> None:
    target = img.blob(img.layer)
    target.unlink()
    target.symlink_to(_secret(outside))


def blob_symlink_even_with_matching_bytes(img: DockerLayout, outside: Path) -> None:
    copy = outside / "layer-copy"
    copy.write_bytes(img.layer)  # the right bytes, but outside the layout
    target = img.blob(img.layer)
    target.unlink()
    target.symlink_to(copy)


def blob_hardlink_to_host_file(img: DockerLayout, outside: Path) -> None:
    target = img.blob(img.layer)
    target.unlink()
    os.link(_secret(outside), target)  # a regular file, but not the content its name says


def manifest_blob_symlink(img: DockerLayout, outside: Path) -> None:
    target = img.blob(img.manifest)
    copy = outside / "manifest"
    copy.write_bytes(img.manifest)
    target.unlink()
    target.symlink_to(copy)


def blobs_dir_symlink(img: DockerLayout, outside: Path) -> None:
    blobs = img.root / "blobs" / "sha256"
    moved = outside / "sha256"
    shutil.move(blobs, moved)
    blobs.symlink_to(moved)


def blobs_parent_symlink(img: DockerLayout, outside: Path) -> None:
    blobs = img.root / "blobs"
    moved = outside / "blobs"
    shutil.move(blobs, moved)
    blobs.symlink_to(moved)


def index_symlink(img: DockerLayout, outside: Path) -> None:
    index = img.root / "index.json"
    shutil.move(index, outside / "index.json")
    index.symlink_to(outside / "index.json")


def oci_layout_symlink(img: DockerLayout, outside: Path) -> None:
    marker = img.root / "oci-layout"
    shutil.move(marker, outside / "oci-layout")
    marker.symlink_to(outside / "oci-layout")


def manifest_blob_fifo(img: DockerLayout, outside: Path) -> None:
    target = img.blob(img.manifest)
    target.unlink()
    os.mkfifo(target)


def manifest_blob_directory(img: DockerLayout, outside: Path) -> None:
    target = img.blob(img.manifest)
    target.unlink()
    target.mkdir()


def index_fifo(img: DockerLayout, outside: Path) -> None:
    (img.root / "index.json").unlink()
    os.mkfifo(img.root / "index.json")


def index_device(img: DockerLayout, outside: Path) -> None:
    (img.root / "index.json").unlink()
    (img.root / "index.json").symlink_to("/dev/zero")


def index_oversized(img: DockerLayout, outside: Path) -> None:
    with (img.root / "index.json").open("r+b") as fh:
        fh.truncate(64 * 1024 * 1024)  # sparse: costs no disk


def index_traversing_digest(img: DockerLayout, outside: Path) -> None:
    index = json.loads((img.root / "index.json").read_bytes())
    index["manifests"][0]["digest"] = "sha256:../../../../etc/passwd"
    (img.root / "index.json").write_text(json.dumps(index))


IN_PLACE: list[tuple[Sabotage, str]] = [
    (manifest_blob_symlink, "symbolic link"),
    (blobs_dir_symlink, "symbolic link, not a directory"),
    (blobs_parent_symlink, "symbolic link, not a directory"),
    (index_symlink, "symbolic link"),
    (oci_layout_symlink, "symbolic link"),
    (manifest_blob_fifo, "a FIFO, not a regular file"),
    (manifest_blob_directory, "a directory, not a regular file"),
    (index_fifo, "a FIFO, not a regular file"),
    (index_device, "symbolic link"),
    (index_oversized, "over 16777216 bytes"),
    (index_traversing_digest, "invalid digest"),
]


@pytest.mark.parametrize(("sabotage", "message"), IN_PLACE, ids=[s.__name__ for s, _ in IN_PLACE])
def test_in_place_convert_of_a_hostile_layout_writes_nothing_anywhere(
    tmp_path: Path, sabotage: Sabotage, message: str
) -> None:
    img = docker_layout(tmp_path / "layout")
    outside = tmp_path / "outside"
    outside.mkdir()
    sabotage(img, outside)
    before = snapshot(tmp_path)

    line = one_error_line(run_cli("convert", f"oci:{img.root}:v1", timeout=30))
    assert message in line, line
    with pytest.raises(OciNormalizeError, match=re.escape(message)):  # reading only, too
        api.check(f"oci:{img.root}:v1")
    assert snapshot(tmp_path) == before


BLOB_CASES: list[tuple[Sabotage, str]] = [
    (blob_symlink_to_host_file, "symbolic link"),
    (blob_symlink_even_with_matching_bytes, "symbolic link"),
    (blob_hardlink_to_host_file, "does not hash to its name"),
]


@pytest.mark.parametrize(
    ("sabotage", "message"), BLOB_CASES, ids=[s.__name__ for s, _ in BLOB_CASES]
)
def test_a_blob_that_is_not_its_digest_never_leaves_the_machine(
    registry: RunningRegistry, tmp_path: Path, sabotage: Sabotage, message: str
) -> None:
    img = docker_layout(tmp_path / "layout", layer=b"layer of " + sabotage.__name__.encode())
    outside = tmp_path / "outside"
    outside.mkdir()
    sabotage(img, outside)
    before = snapshot(tmp_path)
    repo = f"contain/{sabotage.__name__.replace('_', '-')}"
    mark = registry.log_mark()

    line = one_error_line(run_cli("convert", f"oci:{img.root}:v1", f"{registry.host}/{repo}:v1"))
    assert message in line, line
    out = tmp_path / "copy"
    line = one_error_line(run_cli("convert", f"oci:{img.root}:v1", f"oci:{out}:v1"))
    assert message in line, line

    # The config (a good blob) may have gone; no request carried the bad layer, nothing was
    # tagged, and the secret is nowhere in the registry's storage.
    layer_hex = Digest.of(img.layer).hex
    log = registry.access_log_lines(since=mark)
    assert not [e for e in log if e.method == "PATCH" or (e.method == "PUT" and layer_hex in e.uri)]
    assert not [e for e in log if "/manifests/" in e.path and e.method == "PUT"], log
    stored = [p for p in registry.storage_dir.rglob("*") if p.is_file()]
    assert not any(SECRET in p.read_bytes() for p in stored)
    if out.exists():
        assert not any(SECRET in p.read_bytes() for p in out.rglob("*") if p.is_file())
        assert not any(p.name == Digest.of(img.layer).hex for p in out.rglob("*"))
    after = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("copy")}
    assert after == before


def test_open_blob_verifies_before_the_first_byte(tmp_path: Path) -> None:
    img = docker_layout(tmp_path / "layout")
    img.blob(img.layer).write_bytes(b"not the layer")
    layout = Layout(img.root)
    with pytest.raises(DigestMismatchError, match="nothing of it was sent"):
        layout.open_blob("", Digest.parse(sha256(img.layer)))
    # The right bytes stream, and a second open of the unchanged file is not hashed again.
    img.blob(img.layer).write_bytes(img.layer)
    for _ in range(2):
        with layout.open_blob("", Digest.parse(sha256(img.layer))) as blob:
            assert b"".join(blob.iter_content(4)) == img.layer
    assert len(layout._verified) == 1


def test_a_layout_written_through_a_symlinked_blobs_dir_is_refused(tmp_path: Path) -> None:
    """The destination side: a layout whose blobs/sha256 points elsewhere gets no write."""
    src = docker_layout(tmp_path / "src")
    dest = docker_layout(tmp_path / "dest", layer=b"other")
    outside = tmp_path / "outside"
    outside.mkdir()
    blobs_dir_symlink(dest, outside)
    before = snapshot(outside)
    with pytest.raises(ContentError, match="symbolic link, not a directory"):
        api.convert(f"oci:{src.root}:v1", f"oci:{dest.root}:v2")
    assert snapshot(outside) == before


def test_a_clean_layout_still_converts_in_place(tmp_path: Path) -> None:
    img = docker_layout(tmp_path / "layout")
    proc = run_cli("convert", f"oci:{img.root}:v1")
    assert proc.returncode == 0, proc.stderr
    assert api.check(f"oci:{img.root}:v1").oci
