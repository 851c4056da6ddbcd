"""Images written by podman, buildah and skopeo themselves (and hand-edited onto their blobs):
what ``check`` calls them, what ``convert`` makes of them in place and across, and whether
skopeo, umoci, podman and containerd's ctr take the result as an image (issue 10).

Every image starts from a rootfs tar made here; nothing leaves loopback.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from oci_normalize import mediatypes as mt
from tests.support import corpus, peers, seed
from tests.support.cli import cli_process
from tests.support.containerd import Containerd, running_containerd
from tests.support.corpus import Storage
from tests.support.registry import RunningRegistry, require_tools

pytestmark = pytest.mark.registry
PEERS = ("podman", "buildah", "skopeo", "umoci", "containerd", "ctr")


def check_json(ref: str) -> tuple[int, dict[str, Any]]:
    done = cli_process("check", "--json", ref)
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
    corpus.skopeo_copy(
        f"docker://{host}/fid/imported:v1", f"docker://{host}/fid/skopeo-oci:v1", "--format", "oci"
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
        Entry("fid/skopeo-oci", "OCI"),
        Entry("fid/octet", "DOCKER"),
    ]


def _copy_blobs(reg: RunningRegistry, src: str, dest: str, manifest: dict[str, Any]) -> None:
    for desc in [manifest["config"], *(manifest.get("layers") or [])]:
        seed.put_blob(reg.url, dest, seed.get_blob(reg.url, src, desc["digest"]))


def exercise(
    reg: RunningRegistry,
    entry: Entry,
    store: Storage,
    ctrd: Containerd,
    work: Path,
    *,
    layers: list[str],
    config: str | None,
) -> None:
    """check's verdict; convert across (repository, layout, oci-archive) and in place; the
    result valid, its layer blobs (and config, unless rebuilt) the same; every peer pulls it."""
    ref = f"{reg.host}/{entry.repo}:v1"
    code, result = check_json(ref)
    expected = (0, True) if entry.verdict == "OCI" else (1, False)
    assert (code, result["oci"]) == expected, (entry, result)
    across = cli_process("convert", ref, f"{reg.host}/{entry.repo}-oci:v1")
    assert across.returncode == 0, across.stderr
    assert_valid_oci(reg, f"{entry.repo}-oci", "v1", layers=layers)
    for dest in (f"oci:{work}/layout:v1", f"oci-archive:{work}/image.tar:v1"):
        copied = cli_process("convert", ref, dest)
        assert copied.returncode == 0, copied.stderr
        assert corpus.skopeo_inspect(dest).returncode == 0, dest
        assert check_json(dest)[0] == 0
    in_place = cli_process("convert", ref)
    assert in_place.returncode == 0, in_place.stderr
    after = assert_valid_oci(reg, entry.repo, "v1", layers=layers)
    if config is not None:
        assert after["config"]["digest"] == config  # the config blob is never rewritten
    assert check_json(ref)[0] == 0
    judge_registry(reg, entry.repo, "v1", store, ctrd, work)


def test_peer_written_images_check_convert_and_pull(
    registry: RunningRegistry, store: Storage, ctrd: Containerd, tmp_path: Path
) -> None:
    for entry in _push_corpus(registry, store):
        before, _, _ = corpus.manifest_and_config(registry.url, entry.repo, "v1")
        if entry.repo == "fid/octet":
            found = check_json(f"{registry.host}/{entry.repo}:v1")[1]["findings"]
            config = next(f for f in found if f["where"] == "config")
            assert (config["media_type"], config["oci_media_type"]) == (
                mt.OCTET_STREAM,
                mt.OCI_CONFIG,
            )
        work = tmp_path / entry.repo.replace("/", "-")
        exercise(
            registry,
            entry,
            store,
            ctrd,
            work,
            layers=corpus.layer_digests(before),
            config=before["config"]["digest"],
        )


def test_skopeo_v2s1_image_converts_like_skopeo_and_pulls(
    schema1_registry: RunningRegistry, store: Storage, ctrd: Containerd, tmp_path: Path
) -> None:
    host = schema1_registry.host
    store.push("localhost/fid/bdocker:v1", f"docker://{host}/fid/bd-v2s2:v1", "v2s2")
    corpus.skopeo_copy(
        f"docker://{host}/fid/bd-v2s2:v1", f"docker://{host}/fid/s1:v1", "--format", "v2s1"
    )
    _, ctype, _ = seed.get_manifest(schema1_registry.url, "fid/s1", "v1")
    assert mt.is_schema1(ctype)
    theirs = tmp_path / "theirs"
    corpus.skopeo_copy(f"docker://{host}/fid/s1:v1", f"oci:{theirs}:v1", "--format", "oci")
    their_manifest, their_config = peers.read_layout(theirs, "v1")
    exercise(
        schema1_registry,
        Entry("fid/s1", "DOCKER"),
        store,
        ctrd,
        tmp_path / "s1",
        layers=corpus.layer_digests(their_manifest),
        config=None,
    )
    ours, _, _ = corpus.manifest_and_config(schema1_registry.url, "fid/s1", "v1")
    assert json.loads(seed.get_blob(schema1_registry.url, "fid/s1", ours["config"]["digest"])) == (
        their_config
    )


def test_podman_manifest_list_converts_and_pulls(
    registry: RunningRegistry, store: Storage, ctrd: Containerd, tmp_path: Path
) -> None:
    """``podman manifest push --format v2s2``: a Docker manifest list over a Docker image."""
    host = registry.host
    store.push("localhost/fid/imported:v1", f"docker://{host}/fid/list-child:v1", "v2s2")
    store.podman("manifest", "create", "localhost/fid/list:v1")
    store.podman(
        "manifest",
        "add",
        "--tls-verify=false",
        "localhost/fid/list:v1",
        f"docker://{host}/fid/list-child:v1",
    )
    store.podman(
        "manifest",
        "push",
        "--all",
        "--tls-verify=false",
        "--format",
        "v2s2",
        "localhost/fid/list:v1",
        f"docker://{host}/fid/list:v1",
    )
    body, ctype, _ = seed.get_manifest(registry.url, "fid/list", "v1")
    assert ctype == mt.DOCKER_LIST
    child = json.loads(body)["manifests"][0]["digest"]
    child_manifest, _, _ = corpus.manifest_and_config(registry.url, "fid/list", child)
    assert check_json(f"{host}/fid/list:v1")[0] == 1
    assert cli_process("convert", f"{host}/fid/list:v1").returncode == 0
    assert check_json(f"{host}/fid/list:v1")[0] == 0
    body, ctype, _ = seed.get_manifest(registry.url, "fid/list", "v1")
    index = json.loads(body)
    assert ctype == mt.OCI_INDEX
    peers.schema_validator("image-index-schema.json").validate(index)
    new_child = index["manifests"][0]["digest"]
    assert_valid_oci(registry, "fid/list", new_child, layers=corpus.layer_digests(child_manifest))
    judge_registry(registry, "fid/list", "v1", store, ctrd, tmp_path)


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

    done = cli_process(
        "convert", f"docker-archive:{docker_tar}", f"{registry.host}/fid/from-docker-archive:v1"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("sha256:") >= 1 and " -> sha256:" not in done.stdout.split("\n")[0]
    assert_valid_oci(registry, "fid/from-docker-archive", "v1")
    judge_registry(registry, "fid/from-docker-archive", "v1", store, ctrd, tmp_path)

    out = tmp_path / "converted.tar"
    done = cli_process("convert", f"docker-archive:{docker_tar}", f"oci-archive:{out}:v1")
    assert done.returncode == 0, done.stderr
    assert corpus.skopeo_inspect(f"oci-archive:{out}:v1").returncode == 0
    loaded = store.podman("load", "-i", str(out), check=False)
    assert loaded.returncode == 0, loaded.stderr
    imported = ctrd.import_archive(out)
    assert imported.returncode == 0, imported.stderr
    unpacked = corpus.umoci_unpack(f"oci-archive:{out}:v1", tmp_path / "umoci-archive")
    assert unpacked.returncode == 0, unpacked.stderr
    # podman's own oci-archive is OCI already: in place, not one byte changes.
    before = oci_tar.read_bytes()
    done = cli_process("convert", f"oci-archive:{oci_tar}:localhost/fid/imported:v1")
    assert done.returncode == 0 and "already OCI" in done.stdout, done.stderr
    assert oci_tar.read_bytes() == before
    done = cli_process(
        "convert",
        f"oci-archive:{oci_tar}:localhost/fid/imported:v1",
        f"{registry.host}/fid/from-oci-archive:v1",
    )
    assert done.returncode == 0, done.stderr
    with tarfile.open(oci_tar) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        manifest = json.load(
            tar.extractfile("blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1])  # type: ignore[arg-type]
        )
    assert_valid_oci(registry, "fid/from-oci-archive", "v1", layers=corpus.layer_digests(manifest))
    judge_registry(registry, "fid/from-oci-archive", "v1", store, ctrd, tmp_path / "oa")


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
    assert cli_process("convert", f"oci:{layout}:v1").returncode == 0
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
