"""Seed a :class:`~tests.support.memstore.MemoryStore` with the images the planner meets.

Plain JSON over real gzip tars (:func:`tests.support.seed.make_layer`), in the shapes the
registry seeders push: a Docker v2s2 image, Kaniko's mixed image, a Docker manifest list of two,
a cosign ``sha256-<hex>.sig`` signature, and an OCI 1.1 referrer with ``subject``. Seeding is
neither logged nor counted by the store.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from tests.support.memstore import MemoryStore
from tests.support.seed import descriptor, make_config, make_layer
from tests.support.seed_referrers import COSIGN_SIG_ANNOTATION, EMPTY_JSON, SIMPLESIGNING, SPDX


@dataclass(frozen=True)
class Image:
    """A seeded manifest: where, its exact bytes and type, the blobs and children it names."""

    repository: str
    digest: Digest
    data: bytes
    media_type: str
    blobs: tuple[Digest, ...] = ()
    children: tuple[Image, ...] = ()

    @property
    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": str(self.digest), "size": len(self.data)}


def oci_index(*entries: dict[str, object]) -> bytes:
    """An OCI index listing ``entries`` (descriptors), as a referrers API answers."""
    return json.dumps(
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    ).encode()


def _body(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=3).encode()


def _image(
    store: MemoryStore,
    repo: str,
    tag: str | None,
    *,
    manifest_type: str,
    config_type: str,
    layer_types: list[str],
    key: str,
    arch: str = "amd64",
) -> Image:
    layers, diff_ids, blobs = [], [], []
    for i, layer_type in enumerate(layer_types):
        blob, diff_id = make_layer({f"{key}/{i}.txt": f"{key} {arch} {i}\n".encode()})
        blobs.append(store.add_blob(repo, blob))
        layers.append(descriptor(layer_type, blob))
        diff_ids.append(diff_id)
    config = make_config(diff_ids, platform=("linux", arch))
    blobs.insert(0, store.add_blob(repo, config))
    data = _body(
        {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": descriptor(config_type, config),
            "layers": layers,
        }
    )
    digest = store.add_manifest(repo, tag, data, manifest_type)
    return Image(repo, digest, data, manifest_type, tuple(blobs))


def docker_image(
    store: MemoryStore, repo: str, tag: str | None, *, key: str = "docker", arch: str = "amd64"
) -> Image:
    """A Docker v2s2 image: Docker manifest, config and gzip layer (``tag`` None: by digest)."""
    return _image(
        store,
        repo,
        tag,
        manifest_type=mt.DOCKER_MANIFEST,
        config_type=mt.DOCKER_CONFIG,
        layer_types=[mt.DOCKER_LAYER_GZIP],
        key=key,
        arch=arch,
    )


def kaniko_image(
    store: MemoryStore, repo: str, tag: str, *, key: str = "kaniko", layers: int = 3
) -> Image:
    """Kaniko's mixed image: an OCI manifest and config whose last layer is Docker gzip."""
    return _image(
        store,
        repo,
        tag,
        manifest_type=mt.OCI_MANIFEST,
        config_type=mt.OCI_CONFIG,
        layer_types=[mt.OCI_LAYER_GZIP] * (layers - 1) + [mt.DOCKER_LAYER_GZIP],
        key=key,
    )


def docker_list(store: MemoryStore, repo: str, tag: str, *, key: str = "list") -> Image:
    """A Docker manifest list naming two v2s2 images (amd64, arm64) pushed by digest."""
    children = tuple(
        docker_image(store, repo, None, key=f"{key}-{arch}", arch=arch)
        for arch in ("amd64", "arm64")
    )
    data = _body(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_LIST,
            "manifests": [
                {**child.descriptor, "platform": {"architecture": arch, "os": "linux"}}
                for child, arch in zip(children, ("amd64", "arm64"), strict=True)
            ],
        }
    )
    digest = store.add_manifest(repo, tag, data, mt.DOCKER_LIST)
    return Image(repo, digest, data, mt.DOCKER_LIST, children=children)


def sig_tag(digest: Digest) -> str:
    """cosign's tag for what points at ``digest``: ``sha256-<hex>`` (+ ``.sig``, ``.att`` …)."""
    return f"{digest.algorithm}-{digest.hex}"


def cosign_signature(store: MemoryStore, repo: str, signed: Digest) -> Image:
    """cosign's signature of ``signed``: a simple-signing OCI manifest under ``sha256-<hex>.sig``."""
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": f"{store.name}/{repo}"},
                "image": {"docker-manifest-digest": str(signed)},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    ).encode()
    config = json.dumps({"architecture": "", "os": "", "rootfs": {"type": "layers"}}).encode()
    blobs = (store.add_blob(repo, config), store.add_blob(repo, payload))
    signature = base64.b64encode(b"not-a-real-signature").decode()
    data = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": descriptor(mt.OCI_CONFIG, config),
            "layers": [
                descriptor(SIMPLESIGNING, payload, annotations={COSIGN_SIG_ANNOTATION: signature})
            ],
        },
        separators=(",", ":"),
    ).encode()
    digest = store.add_manifest(repo, f"{sig_tag(signed)}.sig", data, mt.OCI_MANIFEST)
    return Image(repo, digest, data, mt.OCI_MANIFEST, blobs)


def referrer(
    store: MemoryStore,
    repo: str,
    subject: Image,
    *,
    artifact_type: str = SPDX,
    content: bytes = b'{"spdxVersion":"SPDX-2.3","name":"referrer"}',
    fallback_tag: bool | None = None,
) -> Image:
    """An OCI 1.1 referrer of ``subject`` (with ``subject`` and ``artifactType``), by digest.

    ``fallback_tag`` (default: when the store has no referrers API) also lists it in the
    referrers fallback tag ``sha256-<hex>``, as ORAS and cosign do on such a registry.
    """
    blobs = (store.add_blob(repo, EMPTY_JSON), store.add_blob(repo, content))
    data = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": descriptor(mt.OCI_EMPTY, EMPTY_JSON),
            "layers": [descriptor(artifact_type, content)],
            "subject": subject.descriptor,
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        },
        separators=(",", ":"),
    ).encode()
    digest = store.add_manifest(repo, None, data, mt.OCI_MANIFEST)
    made = Image(repo, digest, data, mt.OCI_MANIFEST, blobs)
    if fallback_tag if fallback_tag is not None else not store.referrers_api:
        _list_in_fallback_tag(store, repo, subject.digest, made, artifact_type)
    return made


def _list_in_fallback_tag(
    store: MemoryStore, repo: str, subject: Digest, made: Image, artifact_type: str
) -> None:
    tag = sig_tag(subject)
    held = store.tags.get((repo, tag))
    index: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
    if held is not None:
        index = json.loads(store.manifests[(repo, held)][0])
    index["manifests"].append({**made.descriptor, "artifactType": artifact_type})
    store.add_manifest(repo, tag, json.dumps(index).encode(), mt.OCI_INDEX)


def oci_image(store: MemoryStore, repo: str, tag: str | None, *, key: str = "oci") -> Image:
    """An OCI-pure image manifest (its digest never changes in a conversion)."""
    return _image(
        store,
        repo,
        tag,
        manifest_type=mt.OCI_MANIFEST,
        config_type=mt.OCI_CONFIG,
        layer_types=[mt.OCI_LAYER_GZIP],
        key=key,
    )
