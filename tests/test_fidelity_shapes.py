"""Odd but real shapes hand-edited onto real blobs, judged by skopeo, umoci, podman and ctr:
``"layers": null``, schema1 rebuilt as containers/image rebuilds it, and artifacts that
``check`` and ``batch`` must leave alone (issue 10)."""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oci_normalize import mediatypes as mt
from tests.support import corpus, peers, seed
from tests.support.cli import cli_process
from tests.support.containerd import Containerd, running_containerd
from tests.support.corpus import Storage
from tests.support.registry import RunningRegistry, require_tools
from tests.test_fidelity_peers import check_json, judge_registry

pytestmark = pytest.mark.registry

SCRATCH_CONFIG = json.dumps(
    {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/nothing"]},
        "rootfs": {"type": "layers", "diff_ids": []},
    }
).encode()


@pytest.fixture(scope="module")
def store() -> Iterator[Storage]:
    require_tools("podman", "skopeo", "umoci")
    with corpus.storage() as s:
        yield s


@pytest.fixture(scope="module")
def ctrd() -> Iterator[Containerd]:
    require_tools("containerd", "ctr")
    with running_containerd() as daemon:
        yield daemon


def push_raw(
    reg: RunningRegistry, repo: str, tag: str, manifest: dict[str, Any], blobs: list[bytes]
) -> str:
    for blob in blobs:
        seed.put_blob(reg.url, repo, blob)
    media_type = manifest.get("mediaType") or mt.OCI_MANIFEST
    return seed.put_manifest(reg.url, repo, tag, json.dumps(manifest).encode(), media_type)


def desc(media_type: str, data: bytes) -> dict[str, Any]:
    return seed.descriptor(media_type, data)


# ---- "layers": null ------------------------------------------------------------------------------


def test_oci_manifest_with_null_layers_is_oci_and_untouched(
    registry: RunningRegistry, store: Storage, ctrd: Containerd, tmp_path: Path
) -> None:
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": desc(mt.OCI_CONFIG, SCRATCH_CONFIG),
        "layers": None,
    }
    old = push_raw(registry, "shape/null-oci", "v1", manifest, [SCRATCH_CONFIG])
    code, result = check_json(f"{registry.host}/shape/null-oci:v1")
    assert code == 0 and result["oci"], result
    mark = registry.log_mark()
    done = cli_process("convert", f"{registry.host}/shape/null-oci:v1")
    assert done.returncode == 0 and "already OCI" in done.stdout, done.stderr
    assert {e.method for e in registry.access_log_lines(since=mark)} <= {"GET", "HEAD"}
    assert seed.head_manifest(registry.url, "shape/null-oci", "v1") == old
    # check said OCI: every peer takes it as an image as it is.
    judge_registry(registry, "shape/null-oci", "v1", store, ctrd, tmp_path)
    # In a layout too: the bytes stay as they were.
    layout = tmp_path / "layout"
    corpus.skopeo_copy(f"docker://{registry.host}/shape/null-oci:v1", f"oci:{layout}:v1")
    raw = json.loads(
        peers.blob(
            layout, json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
        )
    )
    if raw["layers"] is None:  # skopeo kept the null: our check must read it
        assert check_json(f"oci:{layout}:v1")[0] == 0


def test_docker_manifest_with_null_layers_converts_to_an_empty_list(
    registry: RunningRegistry, store: Storage, ctrd: Containerd, tmp_path: Path
) -> None:
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": desc(mt.DOCKER_CONFIG, SCRATCH_CONFIG),
        "layers": None,
    }
    push_raw(registry, "shape/null-docker", "v1", manifest, [SCRATCH_CONFIG])
    assert check_json(f"{registry.host}/shape/null-docker:v1")[0] == 1
    assert cli_process("convert", f"{registry.host}/shape/null-docker:v1").returncode == 0
    body, ctype, _ = seed.get_manifest(registry.url, "shape/null-docker", "v1")
    converted = json.loads(body)
    assert ctype == mt.OCI_MANIFEST and converted["layers"] == []
    assert converted["config"]["digest"] == manifest["config"]["digest"]
    judge_registry(registry, "shape/null-docker", "v1", store, ctrd, tmp_path)


def test_docker_archive_with_null_layers(tmp_path: Path) -> None:
    archive = tmp_path / "scratch.tar"
    config_name = hashlib.sha256(SCRATCH_CONFIG).hexdigest() + ".json"
    members = {
        config_name: SCRATCH_CONFIG,
        "manifest.json": json.dumps(
            [{"Config": config_name, "RepoTags": ["example.com/scratch:v1"], "Layers": None}]
        ).encode(),
    }
    with tarfile.open(archive, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, __import__("io").BytesIO(data))
    assert check_json(f"docker-archive:{archive}")[0] == 1
    out = tmp_path / "out.tar"
    done = cli_process("convert", f"docker-archive:{archive}", f"oci-archive:{out}:v1")
    assert done.returncode == 0, done.stderr
    assert corpus.skopeo_inspect(f"oci-archive:{out}:v1").returncode == 0


def test_field_level_message_for_a_broken_archive_entry(tmp_path: Path) -> None:
    archive = tmp_path / "broken.tar"
    data = json.dumps([{"Config": 7, "Layers": []}]).encode()
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, __import__("io").BytesIO(data))
    done = cli_process("check", f"docker-archive:{archive}")
    assert done.returncode == 2
    assert "manifest.json entry 0: Config is a JSON int" in done.stderr, done.stderr


# ---- schema1, rebuilt as containers/image rebuilds it ----------------------------------------------


def test_schema1_of_a_docker_import_base_matches_skopeo(
    schema1_registry: RunningRegistry, store: Storage, tmp_path: Path
) -> None:
    """A v2s2 image as old Docker wrote it (nulls, an empty-Cmd import layer), made schema1 by
    skopeo; our OCI rebuild must equal skopeo's and validate."""
    reg = schema1_registry
    layer = gzip.compress(peers.layer_tar({"bin/tool": b"x"}), mtime=0)
    diff_id = "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "config": {"Hostname": "", "Env": None, "Cmd": None, "Labels": None, "Tty": False},
            "container_config": {"Hostname": "", "Env": None, "Cmd": None},
            "created": "2016-05-01T10:00:00.000000000Z",
            "docker_version": "1.11.1",
            "history": [
                {"created": "2016-05-01T10:00:00.000000000Z", "comment": "Imported from -"}
            ],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": desc(mt.DOCKER_CONFIG, config),
        "layers": [desc(mt.DOCKER_LAYER_GZIP, layer)],
    }
    push_raw(reg, "s1/imported", "v2", manifest, [config, layer])
    corpus.skopeo_copy(
        f"docker://{reg.host}/s1/imported:v2",
        f"docker://{reg.host}/s1/imported:v1",
        "--format",
        "v2s1",
    )
    _, ctype, _ = seed.get_manifest(reg.url, "s1/imported", "v1")
    assert mt.is_schema1(ctype)
    theirs = tmp_path / "theirs"
    corpus.skopeo_copy(f"docker://{reg.host}/s1/imported:v1", f"oci:{theirs}:v1", "--format", "oci")
    assert (
        cli_process(
            "convert", f"{reg.host}/s1/imported:v1", f"oci:{tmp_path / 'ours'}:v1"
        ).returncode
        == 0
    )
    _, their_config = peers.read_layout(theirs, "v1")
    our_manifest, our_config = peers.read_layout(tmp_path / "ours", "v1")
    assert our_config == their_config
    assert all("created_by" not in h or h["created_by"] for h in our_config["history"])
    peers.schema_validator("config-schema.json").validate(our_config)
    peers.schema_validator("image-manifest-schema.json").validate(our_manifest)
    # In place, and the peers pull it.
    assert cli_process("convert", f"{reg.host}/s1/imported:v1").returncode == 0
    assert check_json(f"{reg.host}/s1/imported:v1")[0] == 0
    assert corpus.skopeo_inspect(f"docker://{reg.host}/s1/imported:v1").returncode == 0
    assert store.pull(f"docker://{reg.host}/s1/imported:v1").returncode == 0


# ---- artifacts: reported, counted apart, left alone -------------------------------------------------

HELM_CONFIG = b'{"name":"demo","version":"0.1.0","apiVersion":"v2"}'
CHART = gzip.compress(b"chart", mtime=0)
PLUGIN_CONFIG = b'{"description":"a plugin","interface":{"types":["docker.volumedriver/1.0"]}}'
SIGNATURE = b'{"critical":{"identity":{"docker-reference":"x"}},"optional":null}'
EMPTY = b"{}"
SBOM = b'{"spdxVersion":"SPDX-2.3"}'


def _artifacts(reg: RunningRegistry) -> dict[str, str]:
    rootfs = gzip.compress(peers.layer_tar({"plugin": b"p"}), mtime=0)
    shapes = {
        "art/helm": (
            {
                "schemaVersion": 2,
                "config": desc("application/vnd.cncf.helm.config.v1+json", HELM_CONFIG),
                "layers": [desc("application/vnd.cncf.helm.chart.content.v1.tar+gzip", CHART)],
            },
            [HELM_CONFIG, CHART],
        ),
        "art/plugin": (
            {
                "schemaVersion": 2,
                "mediaType": mt.DOCKER_MANIFEST,
                "config": desc(mt.DOCKER_PLUGIN_CONFIG, PLUGIN_CONFIG),
                "layers": [desc(mt.DOCKER_LAYER_GZIP, rootfs)],
            },
            [PLUGIN_CONFIG, rootfs],
        ),
        "art/cosign": (
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": desc(mt.OCI_CONFIG, SCRATCH_CONFIG),
                "layers": [desc("application/vnd.dev.cosign.simplesigning.v1+json", SIGNATURE)],
            },
            [SCRATCH_CONFIG, SIGNATURE],
        ),
        "art/sbom": (
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "artifactType": "application/spdx+json",
                "config": desc(mt.OCI_EMPTY, EMPTY),
                "layers": [desc("application/spdx+json", SBOM)],
            },
            [EMPTY, SBOM],
        ),
        "art/octet-oci": (
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": desc(mt.OCTET_STREAM, SCRATCH_CONFIG),
                "layers": [desc(mt.OCI_LAYER_GZIP, rootfs)],
            },
            [SCRATCH_CONFIG, rootfs],
        ),
    }
    return {repo: push_raw(reg, repo, "v1", m, blobs) for repo, (m, blobs) in shapes.items()}


def test_artifacts_are_left_alone_by_check_convert_and_batch(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    digests = _artifacts(registry)
    layout = peers.layout_with_history(tmp_path)
    seed.push_docker_v2s2(layout, f"{registry.host}/art/image:v1")
    for repo in digests:
        done = cli_process("check", f"{registry.host}/{repo}:v1")
        assert done.returncode == 0, (repo, done.stdout, done.stderr)
        assert "[ARTIFACT]" in done.stdout and "artifact, left alone" in done.stdout
        converted = cli_process("convert", f"{registry.host}/{repo}:v1")
        assert converted.returncode == 0 and "artifact, left alone" in converted.stdout
    assert "plugin" in check_json(f"{registry.host}/art/plugin:v1")[1]["artifact"].lower()
    copied = cli_process(
        "convert", f"{registry.host}/art/plugin:v1", f"{registry.host}/art/copy:v1"
    )
    assert copied.returncode == 0, copied.stderr
    assert seed.head_manifest(registry.url, "art/copy", "v1") == digests["art/plugin"]

    refs = tmp_path / "refs.txt"
    refs.write_text("".join(f"{registry.host}/{r}:v1\n" for r in [*digests, "art/image"]))
    report = tmp_path / "report.md"
    done = cli_process("batch", "--from-file", str(refs), "--json", "--report", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [json.loads(x) for x in done.stdout.splitlines() if x.strip()]
    summary = lines[-1]["summary"]
    assert (summary["artifacts"], summary["converted"], summary["failed"]) == (len(digests), 1, 0)
    statuses = {x["reference"].split("/", 1)[1]: x["status"] for x in lines[:-1]}
    assert statuses == {**{f"{r}:v1": "artifact" for r in digests}, "art/image:v1": "converted"}
    assert "artifacts" in report.read_text()
    for repo, digest in digests.items():  # not one byte moved
        assert seed.head_manifest(registry.url, repo, "v1") == digest
