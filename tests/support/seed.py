"""Seed a real registry with Docker, OCI and mixed images, independently of oci_normalize.

Genuine images come from the peers (umoci builds an OCI layout, skopeo converts and pushes it);
the odd ones that no peer will write (Kaniko's mixed manifest, Docker manifests with OCI layers,
hand-written manifest lists) are pushed with raw ``requests`` from real, usable blobs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

HTTP_TIMEOUT = 30.0
TAG_PAGE_SIZE = 100

Auth = tuple[str, str] | None

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

MANIFEST_ACCEPT = ", ".join(
    [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST, DOCKER_SCHEMA1_SIGNED, DOCKER_SCHEMA1]
)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "size": len(data), "digest": sha256_digest(data), **extra}


# --- peers: umoci builds, skopeo pushes ---------------------------------------------------------


def _run(args: list[str]) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def build_layout(
    tmpdir: Path,
    *,
    layers: int = 2,
    seed: str = "x",
    platform: tuple[str, str] = ("linux", "amd64"),
) -> Path:
    """A fresh OCI image layout under ``tmpdir`` with tag ``latest`` made by umoci.

    Each layer adds one small file whose content depends on ``seed``, the layer number and the
    platform, so different seeds (or platforms) give different layer and config digests.
    """
    os_name, arch = platform
    # umoci init refuses an existing directory: make a unique parent, lay out inside it.
    layout = Path(tempfile.mkdtemp(prefix=f"layout-{seed}-{arch}-", dir=tmpdir)) / "oci"
    image = f"{layout}:latest"
    _run(["umoci", "init", "--layout", str(layout)])
    _run(["umoci", "new", "--image", image])
    with tempfile.TemporaryDirectory(dir=tmpdir) as src:
        for index in range(layers):
            path = Path(src) / f"file-{index}"
            path.write_text(f"seed={seed} layer={index} platform={os_name}/{arch}\n")
            _run(["umoci", "insert", "--image", image, str(path), f"/seed/{seed}-{index}"])
    _run(["umoci", "config", "--image", image, "--os", os_name, "--architecture", arch])
    _run(["umoci", "gc", "--layout", str(layout)])
    return layout


def _skopeo_push(layout_dir: Path, ref: str, fmt: str) -> str:
    with tempfile.NamedTemporaryFile(prefix="digest-") as digestfile:
        _run(
            [
                "skopeo",
                "copy",
                "--quiet",
                "--format",
                fmt,
                "--dest-tls-verify=false",
                "--digestfile",
                digestfile.name,
                f"oci:{layout_dir}:latest",
                f"docker://{ref}",
            ]
        )
        return Path(digestfile.name).read_text().strip()


def push_docker_v2s2(layout_dir: Path, ref: str) -> str:
    """skopeo-convert the layout to a genuine Docker v2s2 image at HOST/REPO:TAG; its digest."""
    return _skopeo_push(layout_dir, ref, "v2s2")


def push_oci(layout_dir: Path, ref: str) -> str:
    """Push the layout as an OCI image (skopeo omits the manifest's mediaType); its digest."""
    return _skopeo_push(layout_dir, ref, "oci")


def push_docker_v2s1(layout_dir: Path, ref: str) -> str:
    """A signed schema1 image; the registry needs ``compatibility.schema1.enabled``."""
    return _skopeo_push(layout_dir, ref, "v2s1")


def docker_v2s2_dir(layout_dir: Path, dest: Path) -> Path:
    """skopeo-convert the layout to v2s2 into a ``dir:`` copy (manifest.json + blobs by hex)."""
    _run(
        [
            "skopeo",
            "copy",
            "--quiet",
            "--format",
            "v2s2",
            f"oci:{layout_dir}:latest",
            f"dir:{dest}",
        ]
    )
    return dest


def push_dir_by_digest(url: str, repo: str, image_dir: Path, *, auth: Auth = None) -> bytes:
    """Upload a skopeo ``dir:`` image's blobs and manifest (by digest, no tag); manifest bytes."""
    body = (image_dir / "manifest.json").read_bytes()
    manifest = json.loads(body)
    for desc in [manifest["config"], *manifest["layers"]]:
        put_blob(url, repo, (image_dir / desc["digest"].split(":", 1)[1]).read_bytes(), auth=auth)
    put_manifest(url, repo, sha256_digest(body), body, manifest["mediaType"], auth=auth)
    return body


def push_docker_list(
    url: str,
    repo: str,
    tag: str,
    tmpdir: Path,
    *,
    seed: str = "list",
    auth: Auth = None,
) -> str:
    """A Docker manifest list (linux/amd64 + linux/arm64) of genuine v2s2 children; its digest.

    The children are converted by skopeo (into ``dir:`` copies) and pushed by digest only, so
    the repository gains exactly one tag.
    """
    manifests = []
    for arch in ("amd64", "arm64"):
        layout = build_layout(tmpdir, seed=f"{seed}-{arch}", platform=("linux", arch))
        child = push_dir_by_digest(
            url, repo, docker_v2s2_dir(layout, layout.with_name("v2s2")), auth=auth
        )
        platform = {"architecture": arch, "os": "linux"}
        if arch == "arm64":
            platform["variant"] = "v8"
        manifests.append(descriptor(DOCKER_MANIFEST, child, platform=platform))
    body = _json_bytes({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": manifests})
    return put_manifest(url, repo, tag, body, DOCKER_LIST, auth=auth)


# --- raw distribution API ------------------------------------------------------------------------


def put_blob(url: str, repo: str, data: bytes, *, auth: Auth = None) -> tuple[str, int]:
    """Monolithic upload (POST then PUT ?digest=); returns (digest, size)."""
    digest = sha256_digest(data)
    start = requests.post(f"{url}/v2/{repo}/blobs/uploads/", auth=auth, timeout=HTTP_TIMEOUT)
    _check(start, 202)
    location = urljoin(f"{url}/", start.headers["Location"])
    done = requests.put(
        location,
        params={"digest": digest},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        auth=auth,
        timeout=HTTP_TIMEOUT,
    )
    _check(done, 201)
    return digest, len(data)


def put_manifest(
    url: str, repo: str, ref: str, body: bytes, media_type: str, *, auth: Auth = None
) -> str:
    """PUT the exact bytes under a tag or digest; returns the digest the registry reports."""
    resp = requests.put(
        f"{url}/v2/{repo}/manifests/{ref}",
        data=body,
        headers={"Content-Type": media_type},
        auth=auth,
        timeout=HTTP_TIMEOUT,
    )
    _check(resp, 201)
    digest = resp.headers.get("Docker-Content-Digest", "")
    if digest != sha256_digest(body):
        raise RuntimeError(f"registry stored {repo}:{ref} as {digest!r}, not as its bytes' digest")
    return digest


def get_manifest(
    url: str, repo: str, ref: str, *, auth: Auth = None, accept: str = MANIFEST_ACCEPT
) -> tuple[bytes, str, str]:
    """(raw bytes, Content-Type, Docker-Content-Digest) of a manifest, all types accepted.

    Without a v2 type in Accept, a schema1-enabled registry converts v2s2 to schema1 on the fly.
    """
    resp = requests.get(
        f"{url}/v2/{repo}/manifests/{ref}",
        headers={"Accept": accept},
        auth=auth,
        timeout=HTTP_TIMEOUT,
    )
    _check(resp, 200)
    return resp.content, resp.headers["Content-Type"], resp.headers["Docker-Content-Digest"]


def head_manifest(url: str, repo: str, ref: str, *, auth: Auth = None) -> str | None:
    resp = requests.head(
        f"{url}/v2/{repo}/manifests/{ref}",
        headers={"Accept": MANIFEST_ACCEPT},
        auth=auth,
        timeout=HTTP_TIMEOUT,
    )
    if resp.status_code == 404:
        return None
    _check(resp, 200)
    return resp.headers["Docker-Content-Digest"]


def get_blob(url: str, repo: str, digest: str, *, auth: Auth = None) -> bytes:
    resp = requests.get(f"{url}/v2/{repo}/blobs/{digest}", auth=auth, timeout=HTTP_TIMEOUT)
    _check(resp, 200)
    return resp.content


def list_tags(url: str, repo: str, *, auth: Auth = None) -> list[str]:
    """All tags, following Link pagination; [] for an unknown repository."""
    tags: list[str] = []
    next_url: str | None = f"{url}/v2/{repo}/tags/list?n={TAG_PAGE_SIZE}"
    while next_url:
        resp = requests.get(next_url, auth=auth, timeout=HTTP_TIMEOUT)
        if resp.status_code == 404:
            return tags
        _check(resp, 200)
        tags.extend(resp.json().get("tags") or [])
        link = resp.links.get("next", {}).get("url")
        next_url = urljoin(f"{url}/", link) if link else None
    return tags


def _check(resp: requests.Response, expected: int) -> None:
    if resp.status_code != expected:
        raise RuntimeError(
            f"{resp.request.method} {resp.url} -> {resp.status_code}, expected {expected}:"
            f" {resp.text[:500]}"
        )


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, indent=3).encode()


# --- hand-made blobs and the odd manifests --------------------------------------------------------


def make_layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    """A reproducible gzip-compressed tar of ``files``; returns (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), sha256_digest(tar_bytes)


def make_config(diff_ids: list[str], *, platform: tuple[str, str] = ("linux", "amd64")) -> bytes:
    os_name, arch = platform
    config = {
        "architecture": arch,
        "os": os_name,
        "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"seed layer {i}"} for i in range(len(diff_ids))],
    }
    return _json_bytes(config)


def _push_image(
    url: str,
    repo: str,
    tag: str,
    *,
    manifest_type: str,
    config_type: str,
    layer_types: list[str],
    seed: str,
    auth: Auth,
) -> str:
    layers = []
    diff_ids = []
    for index, media_type in enumerate(layer_types):
        content = f"seed={seed} layer={index} type={media_type}\n".encode()
        blob, diff_id = make_layer({f"{seed}/layer-{index}.txt": content})
        put_blob(url, repo, blob, auth=auth)
        layers.append(descriptor(media_type, blob))
        diff_ids.append(diff_id)
    config = make_config(diff_ids)
    put_blob(url, repo, config, auth=auth)
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": descriptor(config_type, config),
        "layers": layers,
    }
    return put_manifest(url, repo, tag, _json_bytes(manifest), manifest_type, auth=auth)


def push_mixed_kaniko(
    url: str, repo: str, tag: str, *, layers: int = 3, seed: str = "kaniko", auth: Auth = None
) -> str:
    """Kaniko's broken output: an OCI manifest and config whose LAST layer is Docker gzip."""
    layer_types = [OCI_LAYER_GZIP] * (layers - 1) + [DOCKER_LAYER_GZIP]
    return _push_image(
        url,
        repo,
        tag,
        manifest_type=OCI_MANIFEST,
        config_type=OCI_CONFIG,
        layer_types=layer_types,
        seed=seed,
        auth=auth,
    )


def push_docker_with_oci_layers(
    url: str, repo: str, tag: str, *, layers: int = 2, seed: str = "docker-oci", auth: Auth = None
) -> str:
    """A Docker v2s2 manifest and config whose layers all carry OCI media types."""
    return _push_image(
        url,
        repo,
        tag,
        manifest_type=DOCKER_MANIFEST,
        config_type=DOCKER_CONFIG,
        layer_types=[OCI_LAYER_GZIP] * layers,
        seed=seed,
        auth=auth,
    )
