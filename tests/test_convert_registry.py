"""convert and check against a real registry, judged by skopeo, umoci and podman."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from oci_normalize import mediatypes as mt
from tests.support import seed
from tests.support.cli import cli_process
from tests.support.oci_schema import validate
from tests.support.registry import RegistryFactory, RunningRegistry, require_tools


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120
    )


def raw(reg: RunningRegistry, repo: str, ref: str) -> tuple[dict[str, Any], str, str]:
    body, ctype, digest = seed.get_manifest(reg.url, repo, ref)
    return json.loads(body), ctype, digest


def all_media_types(reg: RunningRegistry, repo: str, ref: str) -> set[str]:
    """Every media type in the tree under repo:ref, read with raw requests (not our code)."""
    body, ctype, _ = raw(reg, repo, ref)
    types = {body.get("mediaType") or ctype}
    if "manifests" in body:
        for entry in body["manifests"]:
            types.add(entry["mediaType"])
            types |= all_media_types(reg, repo, entry["digest"])
    else:
        types.add(body["config"]["mediaType"])
        types |= {layer["mediaType"] for layer in body["layers"]}
    return types


def assert_oci_pure(reg: RunningRegistry, repo: str, ref: str) -> None:
    types = all_media_types(reg, repo, ref)
    assert not {t for t in types if t.startswith("application/vnd.docker.")}, types
    # skopeo reads it back as OCI too.
    proc = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{reg.host}/{repo}:{ref}")
    assert proc.returncode == 0, proc.stderr
    assert "application/vnd.docker." not in proc.stdout
    body = json.loads(proc.stdout)
    validate(body, body.get("mediaType") or mt.OCI_MANIFEST)


def skopeo_to_archive(
    reg: RunningRegistry, repo: str, tag: str, dest: Path
) -> subprocess.CompletedProcess[str]:
    return skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{reg.host}/{repo}:{tag}",
        f"docker-archive:{dest}",
    )


@pytest.mark.registry
def test_kaniko_mixed_image_is_repaired_in_place(registry: RunningRegistry, tmp_path: Path) -> None:
    repo = "trillian/db_server"
    old = seed.push_mixed_kaniko(registry.url, repo, "v1.6.0", layers=4)
    old_body, _, _ = raw(registry, repo, old)

    broken = skopeo_to_archive(registry, repo, "v1.6.0", tmp_path / "before.tar")
    assert broken.returncode != 0 and "Unknown media type" in broken.stderr

    checked = cli_process("check", f"{registry.host}/{repo}:v1.6.0")
    assert checked.returncode == 1, checked.stderr
    assert "layers[3]" in checked.stdout and mt.DOCKER_LAYER_GZIP in checked.stdout

    mark = registry.log_mark()
    done = cli_process("convert", f"{registry.host}/{repo}:v1.6.0")
    assert done.returncode == 0, done.stderr
    entries = registry.access_log_lines(since=mark)
    # In place only manifests move: no blob is read, checked or uploaded.
    assert not [e for e in entries if "/blobs/" in e.path], entries
    assert [e.method for e in entries if e.method in ("PUT", "POST", "PATCH")] == ["PUT"]

    new_body, ctype, new = raw(registry, repo, "v1.6.0")
    assert new != old and ctype == mt.OCI_MANIFEST
    assert new in done.stdout and old in done.stdout
    # Same config (image ID) and layers, byte for byte; only the layer's type changed.
    assert new_body["config"] == old_body["config"]
    assert [(x["digest"], x["size"]) for x in new_body["layers"]] == [
        (x["digest"], x["size"]) for x in old_body["layers"]
    ]
    assert new_body["layers"][3]["mediaType"] == mt.OCI_LAYER_GZIP
    # The old manifest is still there by digest: nothing is deleted.
    assert seed.head_manifest(registry.url, repo, old) == old

    assert_oci_pure(registry, repo, "v1.6.0")
    fixed = skopeo_to_archive(registry, repo, "v1.6.0", tmp_path / "after.tar")
    assert fixed.returncode == 0, fixed.stderr
    assert cli_process("check", f"{registry.host}/{repo}:v1.6.0").returncode == 0


@pytest.mark.registry
def test_docker_v2s2_converts_and_unpacks_with_umoci(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    layout = seed.build_layout(tmp_path, layers=2, seed="conv-v2s2")
    seed.push_docker_v2s2(layout, f"{registry.host}/conv/v2s2:v1")
    before, _, _ = raw(registry, "conv/v2s2", "v1")

    done = cli_process("convert", "--json", f"{registry.host}/conv/v2s2:v1")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["status"] == "converted" and doc["pushed_blobs"] == 0
    assert doc["new_digest"] == seed.head_manifest(registry.url, "conv/v2s2", "v1")
    assert [c["path"] for c in doc["changes"]] == ["@"]

    after, _, _ = raw(registry, "conv/v2s2", "v1")
    assert after["config"]["digest"] == before["config"]["digest"]  # image ID unchanged
    assert_oci_pure(registry, "conv/v2s2", "v1")

    out = tmp_path / "out"
    copied = skopeo(
        "copy", "--src-tls-verify=false", f"docker://{registry.host}/conv/v2s2:v1", f"oci:{out}:v1"
    )
    assert copied.returncode == 0, copied.stderr
    unpacked = subprocess.run(
        ["umoci", "unpack", "--rootless", "--image", f"{out}:v1", str(tmp_path / "bundle")],
        capture_output=True,
        text=True,
    )
    assert unpacked.returncode == 0, unpacked.stderr
    assert (tmp_path / "bundle/rootfs/seed/conv-v2s2-1").read_text().startswith("seed=conv-v2s2")


@pytest.mark.registry
def test_docker_manifest_with_oci_layers_is_repaired(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    seed.push_docker_with_oci_layers(registry.url, "conv/docker-oci", "v1")
    assert skopeo_to_archive(registry, "conv/docker-oci", "v1", tmp_path / "a.tar").returncode != 0
    done = cli_process("convert", f"{registry.host}/conv/docker-oci:v1")
    assert done.returncode == 0, done.stderr
    assert_oci_pure(registry, "conv/docker-oci", "v1")
    fixed = skopeo_to_archive(registry, "conv/docker-oci", "v1", tmp_path / "b.tar")
    assert fixed.returncode == 0, fixed.stderr


@pytest.mark.registry
def test_docker_list_converts_children_first_and_index_points_at_them(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    old = seed.push_docker_list(registry.url, "conv/list", "v1", tmp_path)
    old_body, _, _ = raw(registry, "conv/list", old)
    mark = registry.log_mark()
    done = cli_process("convert", f"{registry.host}/conv/list:v1")
    assert done.returncode == 0, done.stderr
    puts = [e.path for e in registry.access_log_lines(since=mark) if e.method == "PUT"]
    # Children by digest first, the tag last.
    assert len(puts) == 3 and puts[-1].endswith("/manifests/v1")
    assert all("/manifests/sha256:" in p for p in puts[:2])

    body, ctype, _ = raw(registry, "conv/list", "v1")
    assert ctype == mt.OCI_INDEX and body["mediaType"] == mt.OCI_INDEX
    assert [m["platform"] for m in body["manifests"]] == [
        m["platform"] for m in old_body["manifests"]
    ]
    for entry in body["manifests"]:
        child, child_type, child_digest = raw(registry, "conv/list", entry["digest"])
        assert child_digest == entry["digest"] and entry["size"] == len(
            seed.get_manifest(registry.url, "conv/list", entry["digest"])[0]
        )
        assert child_type == mt.OCI_MANIFEST == entry["mediaType"]
    assert_oci_pure(registry, "conv/list", "v1")
    copied = skopeo(
        "copy",
        "--all",
        "--src-tls-verify=false",
        f"docker://{registry.host}/conv/list:v1",
        f"oci:{tmp_path / 'all'}:v1",
    )
    assert copied.returncode == 0, copied.stderr


@pytest.mark.registry
def test_podman_pulls_the_converted_image(registry: RunningRegistry, tmp_path: Path) -> None:
    require_tools("podman")
    seed.push_mixed_kaniko(registry.url, "conv/podman", "v1")
    assert cli_process("convert", f"{registry.host}/conv/podman:v1").returncode == 0
    storage = tmp_path / "storage"
    runroot = Path(tempfile.mkdtemp(prefix="pr-", dir="/tmp"))  # podman caps its length at 50
    pulled = subprocess.run(
        [
            "podman",
            "--root",
            str(storage),
            "--runroot",
            str(runroot),
            "--storage-driver",
            "vfs",
            "pull",
            "--tls-verify=false",
            f"{registry.host}/conv/podman:v1",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    shutil.rmtree(runroot, ignore_errors=True)
    assert pulled.returncode == 0, pulled.stderr


@pytest.mark.registry
def test_dry_run_shows_diff_and_pushes_nothing(registry: RunningRegistry) -> None:
    old = seed.push_mixed_kaniko(registry.url, "conv/dry", "v1")
    mark = registry.log_mark()
    done = cli_process("convert", "--dry-run", f"{registry.host}/conv/dry:v1")
    assert done.returncode == 0, done.stderr
    assert f'-      "mediaType": "{mt.DOCKER_LAYER_GZIP}"' in done.stdout
    assert f'+      "mediaType": "{mt.OCI_LAYER_GZIP}"' in done.stdout
    assert "would point at sha256:" in done.stdout and "nothing pushed" in done.stdout
    methods = {e.method for e in registry.access_log_lines(since=mark)}
    assert methods <= {"GET", "HEAD"}, methods
    assert seed.head_manifest(registry.url, "conv/dry", "v1") == old


@pytest.mark.registry
def test_already_oci_is_left_alone(registry: RunningRegistry, tmp_path: Path) -> None:
    layout = seed.build_layout(tmp_path, layers=1, seed="conv-oci")
    digest = seed.push_oci(layout, f"{registry.host}/conv/oci:v1")
    assert cli_process("check", f"{registry.host}/conv/oci:v1").returncode == 0
    mark = registry.log_mark()
    done = cli_process("convert", f"{registry.host}/conv/oci:v1")
    assert done.returncode == 0, done.stderr
    assert "already OCI" in done.stdout
    assert {e.method for e in registry.access_log_lines(since=mark)} == {"GET"}
    assert seed.head_manifest(registry.url, "conv/oci", "v1") == digest
    # To another tag, an OCI image is copied as it is (same bytes, same digest).
    copied = cli_process(
        "convert", "--json", f"{registry.host}/conv/oci:v1", f"{registry.host}/conv/oci:copy"
    )
    assert copied.returncode == 0, copied.stderr
    assert json.loads(copied.stdout)["status"] == "copied"
    assert seed.head_manifest(registry.url, "conv/oci", "copy") == digest


@pytest.mark.registry
def test_convert_to_new_tag_other_repo_and_other_registry(
    registry: RunningRegistry, registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    src = f"{registry.host}/conv/src:v1"
    old = seed.push_docker_list(registry.url, "conv/src", "v1", tmp_path)

    assert cli_process("convert", src, f"{registry.host}/conv/src:v1-oci").returncode == 0
    assert seed.head_manifest(registry.url, "conv/src", "v1") == old  # source untouched
    assert_oci_pure(registry, "conv/src", "v1-oci")

    mark = registry.log_mark()
    other_repo = cli_process("convert", "--json", src, f"{registry.host}/conv/dest:v1")
    assert other_repo.returncode == 0, other_repo.stderr
    doc = json.loads(other_repo.stdout)
    assert doc["mounted_blobs"] == 6 and doc["pushed_blobs"] == 0  # 2 configs + 4 layers mounted
    posts = [e for e in registry.access_log_lines(since=mark) if e.method == "POST"]
    assert posts and all("mount=" in e.uri for e in posts)
    assert_oci_pure(registry, "conv/dest", "v1")

    other = registry_factory()
    far = cli_process("convert", "--json", src, f"{other.host}/far/away:v1")
    assert far.returncode == 0, far.stderr
    assert json.loads(far.stdout)["pushed_blobs"] == 6
    assert_oci_pure(other, "far/away", "v1")
    copied = skopeo(
        "copy",
        "--all",
        "--src-tls-verify=false",
        f"docker://{other.host}/far/away:v1",
        f"oci:{tmp_path / 'far'}:v1",
    )
    assert copied.returncode == 0, copied.stderr


@pytest.mark.registry
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["check", "{host}/Bad/Name:v1"], 2, "invalid reference"),
        (["convert", "{host}/nope/missing:v1"], 2, "not found"),
        (["check", "{host}/conv/errs:no-such-tag"], 2, "MANIFEST_UNKNOWN"),
        (["convert", "127.0.0.1:1/x/y:v1"], 2, "cannot reach"),
        (["convert", "{host}/conv/errs@sha256:" + "0" * 64], 2, "needs a tag"),
        (
            ["convert", "{host}/conv/errs:v1", "{host}/conv/x@sha256:" + "0" * 64],
            2,
            "DEST must name a tag",
        ),
    ],
)
def test_errors_are_one_line_and_exit_2(
    registry: RunningRegistry, args: list[str], code: int, message: str
) -> None:
    seed.push_mixed_kaniko(registry.url, "conv/errs", "v1")
    done = cli_process(*[a.format(host=registry.host) for a in args])
    assert done.returncode == code, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("oci-normalize: error:"), done.stderr
    assert message in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.registry
def test_schema1_is_reported_by_check(schema1_registry: RunningRegistry, tmp_path: Path) -> None:
    layout = seed.build_layout(tmp_path, layers=1, seed="conv-s1")
    seed.push_docker_v2s1(layout, f"{schema1_registry.host}/conv/s1:v1")
    checked = cli_process("check", "--json", f"{schema1_registry.host}/conv/s1:v1")
    assert checked.returncode == 1, checked.stderr
    (result,) = json.loads(checked.stdout)["results"]
    assert result["findings"][0]["media_type"] == mt.DOCKER_SCHEMA1_SIGNED
    text = cli_process("check", f"{schema1_registry.host}/conv/s1:v1")
    assert text.returncode == 1
    assert f"{mt.DOCKER_SCHEMA1_SIGNED} -> rebuilt as {mt.OCI_MANIFEST} by convert" in text.stdout


@pytest.mark.registry
def test_python_api(registry: RunningRegistry) -> None:
    import oci_normalize

    ref = f"{registry.host}/conv/api:v1"
    seed.push_mixed_kaniko(registry.url, "conv/api", "v1")
    report = oci_normalize.check(ref)
    assert not report.oci and report.findings[0].where == "layers[2]"
    planned = oci_normalize.convert(ref, dry_run=True)
    assert planned.status == "would-convert"
    result = oci_normalize.convert(ref)
    assert result.status == "converted" and result.new_digest == planned.new_digest
    assert oci_normalize.check(ref).oci
