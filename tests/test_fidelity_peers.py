"""Images written by podman, buildah and skopeo themselves (and hand-edited onto their blobs):
what ``check`` calls them, what ``convert`` makes of them in place and across, and whether
skopeo, umoci, podman and containerd's ctr take the result as an image (issue 10).

Every image starts from a rootfs tar made here; nothing leaves loopback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from oci_normalize import mediatypes as mt
from tests.support import corpus, peers, seed
from tests.support.containerd import Containerd, running_containerd
from tests.support.corpus import Storage
from tests.support.registry import RunningRegistry, require_tools

pytestmark = pytest.mark.registry
PEERS = ("podman", "buildah", "skopeo", "umoci", "containerd", "ctr")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oci_normalize", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )


def check_json(ref: str) -> tuple[int, dict[str, Any]]:
    done = cli("check", "--json", ref)
    assert "Traceback" not in done.stderr, done.stderr
    (result,) = json.loads(done.stdout)["results"]
    return done.returncode, result


@pytest.fixture(scope="module")
def store() -> Iterator[Storage]:
    require_tools(*PEERS)
    with corpus.storage() as s, tempfile.TemporaryDirectory() as tmp:
        base = corpus.rootfs_tar(Path(tmp) / "base.tar", {"hello": b"#!/bin/sh\necho hi\n"})
        extra = corpus.rootfs_tar(Path(tmp) / "extra.tar", {"etc/motd": b"fidelity\n"})
        s.podman_import(base, "localhost/fid/imported:v1")
        s.buildah_scratch("localhost/fid/bdocker:v1", extra, fmt="docker")
        s.buildah_scratch("localhost/fid/boci:v1", extra, fmt="oci")
        yield s


@pytest.fixture(scope="module")
def ctrd() -> Iterator[Containerd]:
    require_tools("containerd", "ctr")
    with running_containerd() as daemon:
        yield daemon


def judge_registry(
    reg: RunningRegistry, repo: str, tag: str, store: Storage, ctrd: Containerd, work: Path
) -> None:
    """skopeo, umoci, podman and ctr must each take HOST/REPO:TAG as an image."""
    ref = f"{reg.host}/{repo}:{tag}"
    inspected = corpus.skopeo_inspect(f"docker://{ref}")
    assert inspected.returncode == 0, inspected.stderr
    unpacked = corpus.umoci_unpack(f"docker://{ref}", work / f"umoci-{repo.replace('/', '-')}")
    assert unpacked.returncode == 0, unpacked.stderr
    pulled = store.pull(f"docker://{ref}")
    assert pulled.returncode == 0, pulled.stderr
    fetched = ctrd.pull(ref)
    assert fetched.returncode == 0, fetched.stderr + ctrd.log_tail()


def assert_valid_oci(
    reg: RunningRegistry, repo: str, tag: str, *, layers: list[str] | None = None
) -> dict[str, Any]:
    """The image at REPO:TAG is OCI-pure, validates, and (``layers``) kept its layer blobs."""
    manifest, config, ctype = corpus.manifest_and_config(reg.url, repo, tag)
    assert ctype == mt.OCI_MANIFEST and manifest["config"]["mediaType"] == mt.OCI_CONFIG
    assert not any(x["mediaType"].startswith(mt.DOCKER_PREFIX) for x in manifest["layers"])
    if manifest["layers"]:  # the schema wants one layer at least; a FROM scratch image has none
        peers.schema_validator("image-manifest-schema.json").validate(manifest)
    peers.schema_validator("config-schema.json").validate(config)
    if layers is not None:
        assert corpus.layer_digests(manifest) == layers
    return manifest


@dataclass(frozen=True)
class Entry:
    """One corpus image in the registry: how it was written and what ``check`` must say."""

    repo: str
    verdict: str  # DOCKER | OCI


def _push_corpus(reg: RunningRegistry, store: Storage) -> list[Entry]:
    host = reg.host
    store.push("localhost/fid/imported:v1", f"docker://{host}/fid/imported:v1", "v2s2")
    store.push("localhost/fid/bdocker:v1", f"docker://{host}/fid/bdocker:v1", "v2s2")
    store.push("localhost/fid/boci:v1", f"docker://{host}/fid/boci:v1", "oci")
    corpus.skopeo_copy(
        f"docker://{host}/fid/boci:v1", f"docker://{host}/fid/skopeo-v2s2:v1", "--format", "v2s2"
    )
    # Early Docker Hub: the v2s2 config typed application/octet-stream, on podman's real blobs.
    body, _, _ = seed.get_manifest(reg.url, "fid/imported", "v1")
    octet = json.loads(body)
    octet["config"]["mediaType"] = mt.OCTET_STREAM
    _copy_blobs(reg, "fid/imported", "fid/octet", octet)
    seed.put_manifest(
        reg.url, "fid/octet", "v1", json.dumps(octet, indent=3).encode(), mt.DOCKER_MANIFEST
    )
    return [
        Entry("fid/imported", "DOCKER"),
        Entry("fid/bdocker", "DOCKER"),
        Entry("fid/boci", "OCI"),
        Entry("fid/skopeo-v2s2", "DOCKER"),
        Entry("fid/octet", "DOCKER"),
    ]


def _copy_blobs(reg: RunningRegistry, src: str, dest: str, manifest: dict[str, Any]) -> None:
    for desc in [manifest["config"], *(manifest.get("layers") or [])]:
        seed.put_blob(reg.url, dest, seed.get_blob(reg.url, src, desc["digest"]))


def test_peer_written_images_check_convert_and_pull(
    registry: RunningRegistry, store: Storage, ctrd: Containerd, tmp_path: Path
) -> None:
    for entry in _push_corpus(registry, store):
        ref = f"{registry.host}/{entry.repo}:v1"
        before, _, _ = corpus.manifest_and_config(registry.url, entry.repo, "v1")
        layers = corpus.layer_digests(before)
        code, result = check_json(ref)
        assert (code, result["oci"]) == ((0, True) if entry.verdict == "OCI" else (1, False)), (
            entry,
            result,
        )
        if entry.repo == "fid/octet":
            assert {
                "where": "config",
                "media_type": mt.OCTET_STREAM,
                "oci_media_type": mt.OCI_CONFIG,
            }.items() <= next(f for f in result["findings"] if f["where"] == "config").items()
        # Across, into another repository, a layout and an oci-archive; then in place.
        across = cli("convert", ref, f"{registry.host}/{entry.repo}-oci:v1")
        assert across.returncode == 0, across.stderr
        assert_valid_oci(registry, f"{entry.repo}-oci", "v1", layers=layers)
        work = tmp_path / entry.repo.replace("/", "-")
        for dest in (f"oci:{work}/layout:v1", f"oci-archive:{work}/image.tar:v1"):
            copied = cli("convert", ref, dest)
            assert copied.returncode == 0, copied.stderr
            assert corpus.skopeo_inspect(dest).returncode == 0, dest
            assert check_json(dest)[0] == 0
        in_place = cli("convert", ref)
        assert in_place.returncode == 0, in_place.stderr
        after = assert_valid_oci(registry, entry.repo, "v1", layers=layers)
        assert after["config"]["digest"] == before["config"]["digest"]  # config blob untouched
        assert check_json(ref)[0] == 0
        judge_registry(registry, entry.repo, "v1", store, ctrd, work)


def test_podman_saved_archives(
    registry: RunningRegistry, store: Storage, ctrd: Containerd, tmp_path: Path
) -> None:
    docker_tar, oci_tar = tmp_path / "docker.tar", tmp_path / "oci.tar"
    store.save("localhost/fid/imported:v1", docker_tar, "docker-archive")
    store.save("localhost/fid/imported:v1", oci_tar, "oci-archive")
    code, result = check_json(f"docker-archive:{docker_tar}")
    assert code == 1 and result["media_type"] == "docker-archive"
    code, result = check_json(f"oci-archive:{oci_tar}:localhost/fid/imported:v1")
    assert code == 0 and result["oci"]

    done = cli(
        "convert", f"docker-archive:{docker_tar}", f"{registry.host}/fid/from-docker-archive:v1"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("sha256:") >= 1 and " -> sha256:" not in done.stdout.split("\n")[0]
    assert_valid_oci(registry, "fid/from-docker-archive", "v1")
    judge_registry(registry, "fid/from-docker-archive", "v1", store, ctrd, tmp_path)

    out = tmp_path / "converted.tar"
    done = cli("convert", f"docker-archive:{docker_tar}", f"oci-archive:{out}:v1")
    assert done.returncode == 0, done.stderr
    assert corpus.skopeo_inspect(f"oci-archive:{out}:v1").returncode == 0
    loaded = store.podman("load", "-i", str(out), check=False)
    assert loaded.returncode == 0, loaded.stderr
    imported = ctrd.import_archive(out)
    assert imported.returncode == 0, imported.stderr
    done = cli(
        "convert",
        f"oci-archive:{oci_tar}:localhost/fid/imported:v1",
        f"{registry.host}/fid/from-oci-archive:v1",
    )
    assert done.returncode == 0, done.stderr
    assert_valid_oci(registry, "fid/from-oci-archive", "v1")


def test_skopeo_v2s2_in_a_layout_converts_in_place(
    registry: RunningRegistry, store: Storage, tmp_path: Path
) -> None:
    store.push("localhost/fid/boci:v1", f"docker://{registry.host}/fid/lay-src:v1", "oci")
    layout = tmp_path / "layout"
    corpus.skopeo_copy(
        f"docker://{registry.host}/fid/lay-src:v1", f"oci:{layout}:v1", "--format", "v2s2"
    )
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["mediaType"] == mt.DOCKER_MANIFEST  # skopeo wrote Docker here
    assert check_json(f"oci:{layout}:v1")[0] == 1
    assert cli("convert", f"oci:{layout}:v1").returncode == 0
    assert check_json(f"oci:{layout}:v1")[0] == 0
    manifest, _ = peers.read_layout(layout, "v1")
    peers.schema_validator("image-manifest-schema.json").validate(manifest)
    assert corpus.skopeo_inspect(f"oci:{layout}:v1").returncode == 0
    assert (
        corpus.run(
            "umoci",
            "unpack",
            "--rootless",
            "--image",
            f"{layout}:v1",
            str(tmp_path / "b"),
            check=False,
        ).returncode
        == 0
    )
    assert store.pull(f"oci:{layout}:v1").returncode == 0
