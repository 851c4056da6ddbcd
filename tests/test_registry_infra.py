"""The real-registry test infrastructure works, and reproduces the bug this tool exists for."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import requests

from tests.support import seed
from tests.support.registry import RegistryFactory, RunningRegistry, parse_access_log


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60
    )


@pytest.mark.registry
def test_registry_answers_v2_and_logs_requests(registry: RunningRegistry) -> None:
    mark = registry.log_mark()
    resp = requests.get(f"{registry.url}/v2/", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert registry.host.startswith("127.0.0.1:")
    assert registry.storage_dir.is_dir()
    requests.get(f"{registry.url}/v2/nothing/manifests/here", timeout=5)
    entries = registry.access_log_lines(since=mark)
    assert [(e.method, e.path, e.status) for e in entries] == [
        ("GET", "/v2/", 200),
        ("GET", "/v2/nothing/manifests/here", 404),
    ]


def test_parse_access_log_ignores_json_lines() -> None:
    text = (
        '{"level":"info","msg":"response completed","http.request.uri":"/v2/"}\n'
        '127.0.0.1 - - [27/Nov/2026:16:33:51 +0000] "HEAD /v2/a/b/manifests/sha256:ab?x=1'
        ' HTTP/1.1" 404 0 "" "skopeo/1.9.3"\n'
    )
    (entry,) = parse_access_log(text)
    assert (entry.method, entry.path, entry.status, entry.user_agent) == (
        "HEAD",
        "/v2/a/b/manifests/sha256:ab",
        404,
        "skopeo/1.9.3",
    )


@pytest.mark.registry
def test_skopeo_v2s2_push_is_docker_format(registry: RunningRegistry, tmp_path: Path) -> None:
    layout = seed.build_layout(tmp_path, layers=2, seed="infra-v2s2")
    digest = seed.push_docker_v2s2(layout, f"{registry.host}/infra/v2s2:v1")
    proc = skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/infra/v2s2:v1"
    )
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)
    assert manifest["mediaType"] == seed.DOCKER_MANIFEST
    assert {layer["mediaType"] for layer in manifest["layers"]} == {seed.DOCKER_LAYER_GZIP}
    assert len(manifest["layers"]) == 2
    assert seed.head_manifest(registry.url, "infra/v2s2", "v1") == digest
    body, content_type, got = seed.get_manifest(registry.url, "infra/v2s2", digest)
    assert (content_type, got, seed.sha256_digest(body)) == (seed.DOCKER_MANIFEST, digest, digest)


@pytest.mark.registry
def test_docker_list_has_two_real_platforms(registry: RunningRegistry, tmp_path: Path) -> None:
    digest = seed.push_docker_list(registry.url, "infra/list", "v1", tmp_path)
    body, content_type, _ = seed.get_manifest(registry.url, "infra/list", "v1")
    assert (content_type, seed.sha256_digest(body)) == (seed.DOCKER_LIST, digest)
    platforms = [m["platform"]["architecture"] for m in json.loads(body)["manifests"]]
    assert platforms == ["amd64", "arm64"]
    assert seed.list_tags(registry.url, "infra/list") == ["v1"]
    proc = skopeo(
        "inspect",
        "--tls-verify=false",
        "--override-arch",
        "arm64",
        f"docker://{registry.host}/infra/list:v1",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["Architecture"] == "arm64"


@pytest.mark.registry
def test_kaniko_mixed_image_reproduces_skopeo_failure(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    digest = seed.push_mixed_kaniko(registry.url, "infra/kaniko", "v1")
    body, content_type, _ = seed.get_manifest(registry.url, "infra/kaniko", digest)
    manifest = json.loads(body)
    assert content_type == seed.OCI_MANIFEST
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        seed.OCI_LAYER_GZIP,
        seed.OCI_LAYER_GZIP,
        seed.DOCKER_LAYER_GZIP,
    ]
    # The blobs are real: each layer gunzips to the tar whose sha256 the config lists.
    config = json.loads(seed.get_blob(registry.url, "infra/kaniko", manifest["config"]["digest"]))
    diff_ids = [
        "sha256:"
        + hashlib.sha256(
            gzip.decompress(seed.get_blob(registry.url, "infra/kaniko", layer["digest"]))
        ).hexdigest()
        for layer in manifest["layers"]
    ]
    assert config["rootfs"]["diff_ids"] == diff_ids

    proc = skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{registry.host}/infra/kaniko:v1",
        f"docker-archive:{tmp_path / 'x.tar'}",
    )
    assert proc.returncode != 0, "skopeo converted the mixed image; the bug no longer reproduces"
    assert "Unknown media type during manifest conversion" in proc.stderr, proc.stderr


@pytest.mark.registry
def test_docker_manifest_with_oci_layers_breaks_skopeo(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    seed.push_docker_with_oci_layers(registry.url, "infra/docker-oci", "v1")
    proc = skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{registry.host}/infra/docker-oci:v1",
        f"oci:{tmp_path / 'layout'}:v1",
    )
    assert proc.returncode != 0
    assert "unsupported docker v2s2 media type" in proc.stderr, proc.stderr


@pytest.mark.registry
def test_schema1_registry_hosts_signed_schema1(
    schema1_registry: RunningRegistry, tmp_path: Path
) -> None:
    layout = seed.build_layout(tmp_path, layers=1, seed="infra-v2s1")
    digest = seed.push_docker_v2s1(layout, f"{schema1_registry.host}/infra/v1:v1")
    body, content_type, got = seed.get_manifest(schema1_registry.url, "infra/v1", "v1")
    assert content_type == seed.DOCKER_SCHEMA1_SIGNED
    assert got == digest
    assert json.loads(body)["schemaVersion"] == 1


@pytest.mark.registry
def test_htpasswd_registry_requires_auth(
    registry_factory: RegistryFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A REGISTRY_* variable in our environment must not reach (and reconfigure) the registry.
    monkeypatch.setenv("REGISTRY_AUTH", "none")
    reg = registry_factory(htpasswd={"alice": "s3cret"})
    anonymous = requests.get(f"{reg.url}/v2/", timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert requests.get(f"{reg.url}/v2/", auth=("alice", "wrong"), timeout=5).status_code == 401
    assert requests.get(f"{reg.url}/v2/", auth=reg.auth, timeout=5).status_code == 200
    digest = seed.push_mixed_kaniko(reg.url, "private/app", "v1", auth=reg.auth)
    assert seed.head_manifest(reg.url, "private/app", "v1", auth=reg.auth) == digest
    statuses = {e.status for e in reg.access_log_lines() if e.path == "/v2/"}
    assert statuses == {200, 401}
