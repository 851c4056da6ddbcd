"""docker-archive tarballs as a source: made by hand and by skopeo, judged by skopeo and umoci."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oci_normalize import api
from oci_normalize import mediatypes as mt
from oci_normalize.cli import app as cli
from oci_normalize.errors import DigestMismatchError, NotFoundError, OciNormalizeError
from tests.support import peers, seed
from tests.support.registry import RunningRegistry

LAYERS = [
    peers.layer_tar({"etc/os-release": b"ID=test\n"}),
    peers.layer_tar({"app/main": b"#!/bin/sh\necho hi\n" * 100}),
]


def test_hand_made_archive_to_layout(tmp_path: Path) -> None:
    tarball = tmp_path / "img.tar"
    config = peers.docker_save_tarball(tarball, LAYERS, gzip_layers=(1,))
    out = tmp_path / "out"
    result = api.convert(f"docker-archive:{tarball}", f"oci:{out}:v1")
    assert result.status == "converted"
    manifest, _ = peers.read_layout(out, "v1")
    # Config byte for byte; plain layers gzipped; the gzip layer kept as it was.
    assert peers.blob(out, manifest["config"]["digest"]) == config
    assert manifest["config"]["mediaType"] == mt.OCI_CONFIG
    assert [x["mediaType"] for x in manifest["layers"]] == [mt.OCI_LAYER_GZIP] * 2
    blobs = [peers.blob(out, x["digest"]) for x in manifest["layers"]]
    assert [gzip.decompress(b) for b in blobs] == LAYERS
    assert blobs[1] == gzip.compress(LAYERS[1], mtime=0)
    peers.schema_validator("image-manifest-schema.json").validate(manifest)
    # Choosing the image by its RepoTag (Docker Hub short forms too) or by @N gives the same.
    for name in ("example.com/app:v1", "@0"):
        again = api.convert(f"docker-archive:{tarball}:{name}", f"oci:{out}:v2", dry_run=True)
        assert again.new_digest == result.new_digest


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda p: peers.docker_save_tarball(p, LAYERS, diff_ids=["sha256:" + "0" * 64] * 2),
            DigestMismatchError,
            "but the config lists diff_id",
        ),
        (
            lambda p: peers.docker_save_tarball(p, LAYERS, diff_ids=["sha256:" + "0" * 64]),
            OciNormalizeError,
            "lists 2 layers, the config 1 diff_ids",
        ),
        (lambda p: p.write_bytes(b"not a tar at all" * 100), OciNormalizeError, "not a readable"),
    ],
)
def test_bad_archives_fail_once_and_write_nothing(
    tmp_path: Path, make: object, error: type[Exception], message: str
) -> None:
    tarball = tmp_path / "bad.tar"
    make(tarball)  # type: ignore[operator]
    with pytest.raises(error, match=message):
        api.convert(f"docker-archive:{tarball}", f"oci:{tmp_path / 'out'}:v1")
    assert not (tmp_path / "out").exists()


def test_archive_selection_errors(tmp_path: Path) -> None:
    tarball = tmp_path / "img.tar"
    peers.docker_save_tarball(tarball, LAYERS[:1])
    with pytest.raises(NotFoundError, match="no image tagged 'other:v1'"):
        api.convert(f"docker-archive:{tarball}:other:v1", f"oci:{tmp_path / 'o'}")
    with pytest.raises(NotFoundError, match="no image @3"):
        api.convert(f"docker-archive:{tarball}:@3", f"oci:{tmp_path / 'o'}")
    with pytest.raises(OciNormalizeError, match="read-only"):
        api.convert(f"docker-archive:{tarball}")
    with pytest.raises(OciNormalizeError, match="cannot write a docker-archive"):
        api.convert(f"oci:{tmp_path}", f"docker-archive:{tmp_path / 'x.tar'}")


def test_check_names_the_archive_docker(tmp_path: Path) -> None:
    tarball = tmp_path / "img.tar"
    config = peers.docker_save_tarball(tarball, LAYERS)
    out = CliRunner().invoke(cli.app, ["check", "--json", f"docker-archive:{tarball}"])
    assert out.exit_code == 1, out.output
    (result,) = json.loads(out.output)["results"]
    assert result["digest"] == "sha256:" + hashlib.sha256(config).hexdigest()
    assert [f["where"] for f in result["findings"]] == ["config", "layers[0]", "layers[1]"]


@pytest.mark.registry
def test_skopeo_archive_to_registry(registry: RunningRegistry, tmp_path: Path) -> None:
    source = peers.layout_with_history(tmp_path)
    tarball = tmp_path / "saved.tar"
    peers.skopeo_copy(f"oci:{source}:latest", f"docker-archive:{tarball}:example.com/app:v1")
    runner = CliRunner()
    done = runner.invoke(
        cli.app, ["convert", "--json", f"docker-archive:{tarball}", f"{registry.host}/arch/app:v1"]
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["status"] == "converted"
    body, ctype, _ = seed.get_manifest(registry.url, "arch/app", "v1")
    assert ctype == mt.OCI_MANIFEST
    # skopeo pulls it back; the filesystem is the one we started from.
    judged = tmp_path / "judged"
    peers.skopeo_copy(f"docker://{registry.host}/arch/app:v1", f"oci:{judged}:v1")
    _, config = peers.read_layout(judged, "v1")
    _, original = peers.read_layout(source, "latest")
    assert config["rootfs"] == original["rootfs"]
    assert peers.unpacked_tree(judged, "v1", tmp_path / "b1") == peers.unpacked_tree(
        source, "latest", tmp_path / "b2"
    )
    assert runner.invoke(cli.app, ["check", f"{registry.host}/arch/app:v1"]).exit_code == 0
