"""``oci-archive:PATH[:REF]``: parsing, reading in place, writing whole, containment (no peers)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from oci_normalize import api
from oci_normalize import mediatypes as mt
from oci_normalize.errors import InvalidReferenceError
from oci_normalize.reference import OciArchiveRef, parse_location
from tests.support import peers
from tests.support.cli import cli_process
from tests.support.oci_schema import validate

REF_NAME = "org.opencontainers.image.ref.name"


def dg(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_members(
    *, docker: bool = True, name: str = "localhost/app:v1", layers_null: bool = False
) -> tuple[dict[str, bytes], str]:
    """A one-image layout as members of a tar: Docker-typed (as a mixed push leaves it) or OCI."""
    layer = gzip.compress(peers.layer_tar({"hello": b"hi\n"}), mtime=0)
    diff_id = dg(gzip.decompress(layer))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/hello"]},
            "rootfs": {"type": "layers", "diff_ids": [] if layers_null else [diff_id]},
        }
    ).encode()
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST,
        "config": {
            "mediaType": mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG,
            "digest": dg(config),
            "size": len(config),
        },
        "layers": None
        if layers_null
        else [
            {
                "mediaType": mt.DOCKER_LAYER_GZIP if docker else mt.OCI_LAYER_GZIP,
                "digest": dg(layer),
                "size": len(layer),
            }
        ],
    }
    mdata = json.dumps(manifest).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": manifest["mediaType"],
                "digest": dg(mdata),
                "size": len(mdata),
                "annotations": {REF_NAME: name},
            }
        ],
    }
    members = {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        "index.json": json.dumps(index).encode(),
    }
    for blob in (config, mdata) + (() if layers_null else (layer,)):
        members["blobs/sha256/" + dg(blob).split(":")[1]] = blob
    return members, dg(mdata)


def write_tar(path: Path, members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> None:  # type: ignore[assignment]
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)


def read_tar(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isreg()
        }


# ---- parsing -----------------------------------------------------------------------------------


def test_parse_splits_at_the_first_colon_and_keeps_the_name_as_written() -> None:
    ref = parse_location("oci-archive:./x.tar:localhost/app:v1")
    assert isinstance(ref, OciArchiveRef)
    assert ref.path.endswith("/x.tar") and ref.tag == "localhost/app:v1"
    assert str(ref) == "oci-archive:./x.tar:localhost/app:v1"
    assert parse_location("oci-archive:/a.tar") == OciArchiveRef("/a.tar")


@pytest.mark.parametrize("text", ["oci-archive:", "oci-archive::v1", "oci-archive:a.tar:\x1b[2J"])
def test_bad_archive_references_are_refused(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_location(text)


# ---- reading and writing -----------------------------------------------------------------------


def test_check_then_convert_in_place_rewrites_the_tar_whole(tmp_path: Path) -> None:
    members, old = image_members()
    archive = tmp_path / "img.tar"
    write_tar(archive, members)
    checked = api.check(f"oci-archive:{archive}")
    assert not checked.oci and checked.digest == old
    assert {f.where for f in checked.findings} == {"mediaType", "config", "layers[0]"}

    result = api.convert(f"oci-archive:{archive}")
    assert result.status == "converted" and result.old_digest == old
    after = read_tar(archive)
    assert list(after)[:2] == ["oci-layout", "index.json"]
    for name, data in members.items():  # every old member kept, byte for byte, blobs too
        if name.startswith("blobs/"):
            assert after[name] == data
    (entry,) = json.loads(after["index.json"])["manifests"]
    assert entry["digest"] == result.new_digest and entry["annotations"][REF_NAME] == (
        "localhost/app:v1"
    )
    assert result.new_digest is not None
    body = json.loads(after["blobs/sha256/" + result.new_digest.split(":")[1]])
    validate(body, mt.OCI_MANIFEST)
    assert api.check(f"oci-archive:{archive}:localhost/app:v1").oci


def test_convert_into_a_new_archive_and_into_a_second_tag(tmp_path: Path) -> None:
    members, _ = image_members()
    src = tmp_path / "src.tar"
    write_tar(src, members)
    before = src.read_bytes()
    dest = tmp_path / "out" / "dest.tar"
    first = api.convert(f"oci-archive:{src}", f"oci-archive:{dest}")
    assert first.status == "converted" and src.read_bytes() == before
    api.convert(f"oci-archive:{src}:localhost/app:v1", f"oci-archive:{dest}:second")
    index = json.loads(read_tar(dest)["index.json"])
    assert {e["annotations"][REF_NAME] for e in index["manifests"]} == {"latest", "second"}
    assert api.check(f"oci-archive:{dest}:second").oci


def test_oci_archive_with_null_layers_is_oci_and_nothing_is_written(tmp_path: Path) -> None:
    members, digest = image_members(docker=False, layers_null=True)
    archive = tmp_path / "scratch.tar"
    write_tar(archive, members)
    before = archive.read_bytes()
    checked = api.check(f"oci-archive:{archive}")
    assert checked.oci and checked.digest == digest
    result = api.convert(f"oci-archive:{archive}")
    assert result.status == "already-oci" and archive.read_bytes() == before


def test_a_symlinked_blob_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    members, digest = image_members()
    name = "blobs/sha256/" + digest.split(":")[1]
    del members[name]
    link = tarfile.TarInfo(name)
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    archive = tmp_path / "link.tar"
    write_tar(archive, members, [link])
    before = archive.read_bytes()
    done = cli_process("convert", f"oci-archive:{archive}")
    assert done.returncode == 2 and "symbolic link" in done.stderr
    assert "Traceback" not in done.stderr and archive.read_bytes() == before


def test_members_outside_the_layout_are_never_used(tmp_path: Path) -> None:
    members, _ = image_members(docker=False)
    members["../evil"] = b"x"
    members["/abs"] = b"y"
    archive = tmp_path / "odd.tar"
    write_tar(archive, members)
    assert api.check(f"oci-archive:{archive}").oci
    assert not (tmp_path.parent / "evil").exists()


def test_compressed_and_missing_archives_are_one_clear_error(tmp_path: Path) -> None:
    members, _ = image_members()
    plain = tmp_path / "p.tar"
    write_tar(plain, members)
    gz = tmp_path / "p.tar.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    done = cli_process("check", "oci-archive:p.tar.gz", cwd=tmp_path)
    assert done.returncode == 2 and "decompress" in done.stderr
    assert "oci-archive:p.tar.gz" in done.stderr  # as written, not made absolute
    missing = cli_process("check", "oci-archive:nope.tar", cwd=tmp_path)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


def test_converting_a_docker_archive_prints_one_digest(tmp_path: Path) -> None:
    peers.docker_save_tarball(tmp_path / "d.tar", [peers.layer_tar({"a": b"1"})])
    done = cli_process("convert", "docker-archive:d.tar", "oci-archive:o.tar", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("converted"))
    assert line.count("sha256:") == 1 and " -> oci-archive:o.tar:latest: sha256:" in line
    assert api.check(f"oci-archive:{tmp_path / 'o.tar'}").oci


def test_layout_with_null_layers_is_oci_and_left_byte_for_byte(tmp_path: Path) -> None:
    members, digest = image_members(docker=False, layers_null=True)
    layout = tmp_path / "layout"
    for name, data in members.items():
        (layout / name).parent.mkdir(parents=True, exist_ok=True)
        (layout / name).write_bytes(data)
    before = {p: p.read_bytes() for p in layout.rglob("*") if p.is_file()}
    checked = api.check(f"oci:{layout}")
    assert checked.oci and checked.digest == digest
    assert api.convert(f"oci:{layout}").status == "already-oci"
    assert {p: p.read_bytes() for p in layout.rglob("*") if p.is_file()} == before
