"""Seed many Docker images fast, with raw distribution API calls (for batch tests and bench/).

Every image is real enough for a registry and its peers: gzip tar layers and a config whose
diff_ids match them (``tests.support.seed.make_layer``/``make_config``). Images differ by ``seed``, so
their digests differ; a handful of shared blobs can back thousands of manifests
(:func:`docker_manifest_variant` varies only an annotation). Like ``tests/support/seed.py``, this never
imports the package under test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests

from tests.support import seed

HTTP_TIMEOUT = 30.0
ARCHS = ("amd64", "arm64")


@dataclass(frozen=True)
class Image:
    """A pushed single-platform image: its manifest bytes and the blobs it needs."""

    manifest: bytes
    blobs: tuple[str, ...]  # config first, then layers

    @property
    def digest(self) -> str:
        return seed.sha256_digest(self.manifest)


@dataclass(frozen=True)
class ListImage:
    """A pushed Docker manifest list and its children."""

    manifest: bytes
    children: tuple[Image, ...]

    @property
    def digest(self) -> str:
        return seed.sha256_digest(self.manifest)


class Seeder:
    """Raw pushes to one registry over one keep-alive session."""

    def __init__(self, url: str, *, auth: seed.Auth = None) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.auth = auth

    def close(self) -> None:
        self.session.close()

    def put_blob(self, repo: str, data: bytes) -> str:
        digest = seed.sha256_digest(data)
        start = self.session.post(f"{self.url}/v2/{repo}/blobs/uploads/", timeout=HTTP_TIMEOUT)
        _check(start, 202)
        location = start.headers["Location"]
        if location.startswith("/"):
            location = self.url + location
        done = self.session.put(
            location,
            params={"digest": digest},
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=HTTP_TIMEOUT,
        )
        _check(done, 201)
        return digest

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> None:
        resp = self.session.post(
            f"{self.url}/v2/{repo}/blobs/uploads/",
            params={"mount": digest, "from": from_repo},
            timeout=HTTP_TIMEOUT,
        )
        _check(resp, 201)

    def put_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        resp = self.session.put(
            f"{self.url}/v2/{repo}/manifests/{ref}",
            data=body,
            headers={"Content-Type": media_type},
            timeout=HTTP_TIMEOUT,
        )
        _check(resp, 201)
        return seed.sha256_digest(body)

    def docker_image(
        self,
        repo: str,
        tag: str | None,
        *,
        key: str,
        platform: tuple[str, str] = ("linux", "amd64"),
    ) -> Image:
        """A one-layer Docker v2s2 image unique to ``key``; tagged when ``tag`` is given."""
        layer, diff_id = seed.make_layer({f"{key}/file.txt": f"{key} {platform}\n".encode()})
        config = seed.make_config([diff_id], platform=platform)
        blobs = (self.put_blob(repo, config), self.put_blob(repo, layer))
        body = _docker_manifest(config, [layer])
        self.put_manifest(repo, tag or seed.sha256_digest(body), body, seed.DOCKER_MANIFEST)
        return Image(manifest=body, blobs=blobs)

    def oci_image(self, repo: str, tag: str, *, key: str) -> Image:
        """Like :meth:`docker_image`, all OCI (manifest without ``mediaType``, as skopeo does)."""
        layer, diff_id = seed.make_layer({f"{key}/file.txt": f"{key} oci\n".encode()})
        config = seed.make_config([diff_id])
        blobs = (self.put_blob(repo, config), self.put_blob(repo, layer))
        manifest = {
            "schemaVersion": 2,
            "config": seed.descriptor(seed.OCI_CONFIG, config),
            "layers": [seed.descriptor(seed.OCI_LAYER_GZIP, layer)],
        }
        body = json.dumps(manifest).encode()
        self.put_manifest(repo, tag, body, seed.OCI_MANIFEST)
        return Image(manifest=body, blobs=blobs)

    def docker_list(self, repo: str, tag: str, *, key: str) -> ListImage:
        """A Docker manifest list of two Docker v2s2 children (linux/amd64, linux/arm64)."""
        children = tuple(
            self.docker_image(repo, None, key=f"{key}-{arch}", platform=("linux", arch))
            for arch in ARCHS
        )
        body = docker_list_body(children)
        self.put_manifest(repo, tag, body, seed.DOCKER_LIST)
        return ListImage(manifest=body, children=children)

    def copy_image(self, image: Image | ListImage, from_repo: str, repo: str, tag: str) -> None:
        """Put an identical copy of ``image`` at ``repo:tag`` (blobs mounted, not uploaded)."""
        if isinstance(image, ListImage):
            for child in image.children:
                self.copy_image(child, from_repo, repo, child.digest)
            self.put_manifest(repo, tag, image.manifest, seed.DOCKER_LIST)
            return
        if repo != from_repo:
            for blob in image.blobs:
                self.mount_blob(repo, blob, from_repo)
        self.put_manifest(repo, tag, image.manifest, seed.DOCKER_MANIFEST)


def docker_list_body(children: tuple[Image, ...], archs: tuple[str, ...] = ARCHS) -> bytes:
    manifests = [
        seed.descriptor(
            seed.DOCKER_MANIFEST, child.manifest, platform={"architecture": arch, "os": "linux"}
        )
        for child, arch in zip(children, archs, strict=True)
    ]
    body = {"schemaVersion": 2, "mediaType": seed.DOCKER_LIST, "manifests": manifests}
    return json.dumps(body, indent=3).encode()


def docker_manifest_variant(image: Image, variant: int) -> bytes:
    """``image``'s manifest with one extra annotation: a distinct digest on the same blobs."""
    body: dict[str, Any] = json.loads(image.manifest)
    body["annotations"] = {"org.example.variant": str(variant)}
    return json.dumps(body, indent=3).encode()


def _docker_manifest(config: bytes, layers: list[bytes]) -> bytes:
    body = {
        "schemaVersion": 2,
        "mediaType": seed.DOCKER_MANIFEST,
        "config": seed.descriptor(seed.DOCKER_CONFIG, config),
        "layers": [seed.descriptor(seed.DOCKER_LAYER_GZIP, layer) for layer in layers],
    }
    return json.dumps(body, indent=3).encode()


def _check(resp: requests.Response, expected: int) -> None:
    if resp.status_code != expected:
        raise RuntimeError(
            f"{resp.request.method} {resp.url} -> {resp.status_code}, expected {expected}:"
            f" {resp.text[:300]}"
        )
