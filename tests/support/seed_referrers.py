"""Seed what points at an image digest: cosign-shaped tags, OCI referrers, buildkit indexes.

Written with raw ``requests`` (through ``tests.support.seed``), independently of oci_normalize, in the
shapes the real tools produce: cosign's ``sha256-<hex>.sig`` simple-signing manifest, an SBOM
referrer with ``subject`` listed in the referrers fallback tag (what ORAS/cosign do on a
registry without the referrers API), and buildkit's attestation manifests inside an OCI index.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.support import seed

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIG_ANNOTATION = "dev.cosignproject.cosign/signature"
SPDX = "application/spdx+json"
IN_TOTO = "application/vnd.in-toto+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"


def tag_stem(digest: str) -> str:
    return digest.replace(":", "-")


def push_docker_image(
    url: str, repo: str, ref: str | None, *, seed_text: str, arch: str = "amd64"
) -> bytes:
    """A Docker v2s2 image (Docker config and layer types) under ``ref`` (None: by digest
    only); its manifest bytes."""
    blob, diff_id = seed.make_layer({f"{seed_text}.txt": f"{seed_text} {arch}\n".encode()})
    seed.put_blob(url, repo, blob)
    config = seed.make_config([diff_id], platform=("linux", arch))
    seed.put_blob(url, repo, config)
    body = seed._json_bytes(
        {
            "schemaVersion": 2,
            "mediaType": seed.DOCKER_MANIFEST,
            "config": seed.descriptor(seed.DOCKER_CONFIG, config),
            "layers": [seed.descriptor(seed.DOCKER_LAYER_GZIP, blob)],
        }
    )
    seed.put_manifest(url, repo, ref or seed.sha256_digest(body), body, seed.DOCKER_MANIFEST)
    return body


def push_cosign_signature(url: str, repo: str, image_digest: str) -> str:
    """cosign's signature for ``image_digest`` under tag ``sha256-<hex>.sig``; the tag name."""
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": f"{url}/{repo}"},
                "image": {"docker-manifest-digest": image_digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    ).encode()
    seed.put_blob(url, repo, payload)
    config = json.dumps({"architecture": "", "os": "", "rootfs": {"type": "layers"}}).encode()
    seed.put_blob(url, repo, config)
    layer = seed.descriptor(
        SIMPLESIGNING,
        payload,
        annotations={COSIGN_SIG_ANNOTATION: base64.b64encode(b"not-a-real-signature").decode()},
    )
    body = _compact(
        {
            "schemaVersion": 2,
            "mediaType": seed.OCI_MANIFEST,
            "config": seed.descriptor(seed.OCI_CONFIG, config),
            "layers": [layer],
        }
    )
    tag = f"{tag_stem(image_digest)}.sig"
    seed.put_manifest(url, repo, tag, body, seed.OCI_MANIFEST)
    return tag


def push_cosign_sbom(url: str, repo: str, image_digest: str) -> tuple[str, str]:
    """cosign attach sbom's shape: an SBOM layer under ``sha256-<hex>.sbom``; (tag, digest)."""
    sbom = b'{"spdxVersion":"SPDX-2.3","name":"cosign-attached"}'
    seed.put_blob(url, repo, sbom)
    seed.put_blob(url, repo, EMPTY_JSON)
    body = _compact(
        {
            "schemaVersion": 2,
            "mediaType": seed.OCI_MANIFEST,
            "config": seed.descriptor(OCI_EMPTY, EMPTY_JSON),
            "layers": [seed.descriptor(SPDX, sbom)],
        }
    )
    tag = f"{tag_stem(image_digest)}.sbom"
    return tag, seed.put_manifest(url, repo, tag, body, seed.OCI_MANIFEST)


def push_referrer(
    url: str,
    repo: str,
    subject: bytes,
    subject_type: str,
    *,
    artifact_type: str = SPDX,
    content: bytes = b'{"spdxVersion":"SPDX-2.3","name":"referrer"}',
    layer_type: str | None = None,
) -> str:
    """An OCI 1.1 referrer of ``subject``, pushed by digest and listed in the fallback tag.

    Its one layer is ``content`` typed ``layer_type`` (default: the artifact type)."""
    seed.put_blob(url, repo, content)
    seed.put_blob(url, repo, EMPTY_JSON)
    body = _compact(
        {
            "schemaVersion": 2,
            "mediaType": seed.OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": seed.descriptor(OCI_EMPTY, EMPTY_JSON),
            "layers": [seed.descriptor(layer_type or artifact_type, content)],
            "subject": seed.descriptor(subject_type, subject),
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        }
    )
    digest = seed.put_manifest(url, repo, seed.sha256_digest(body), body, seed.OCI_MANIFEST)
    tag = tag_stem(seed.sha256_digest(subject))
    try:
        existing = json.loads(seed.get_manifest(url, repo, tag)[0])
    except RuntimeError:
        existing = {"schemaVersion": 2, "mediaType": seed.OCI_INDEX, "manifests": []}
    existing["manifests"].append(
        seed.descriptor(seed.OCI_MANIFEST, body, artifactType=artifact_type)
    )
    seed.put_manifest(url, repo, tag, _compact(existing), seed.OCI_INDEX)
    return digest


def push_buildkit_index(url: str, repo: str, tag: str) -> dict[str, Any]:
    """A buildkit-style OCI index: two Docker v2s2 images plus one attestation manifest each.

    Returns {"index": digest, "children": {arch: digest}, "attestations": {arch: digest}}.
    """
    entries: list[dict[str, Any]] = []
    children: dict[str, str] = {}
    attestations: dict[str, str] = {}
    images = {}
    for arch in ("amd64", "arm64"):
        body = push_docker_image(url, repo, None, seed_text=f"bk-{tag}", arch=arch)
        images[arch] = body
        children[arch] = seed.sha256_digest(body)
        entries.append(
            seed.descriptor(
                seed.DOCKER_MANIFEST, body, platform={"architecture": arch, "os": "linux"}
            )
        )
    for arch, body in images.items():
        statement = json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v0.1",
                "predicateType": "https://spdx.dev/Document",
                "subject": [{"name": "x", "digest": {"sha256": children[arch].split(":")[1]}}],
                "predicate": {"spdxVersion": "SPDX-2.3"},
            }
        ).encode()
        seed.put_blob(url, repo, statement)
        config = json.dumps({"architecture": "unknown", "os": "unknown", "rootfs": {}}).encode()
        seed.put_blob(url, repo, config)
        att = _compact(
            {
                "schemaVersion": 2,
                "mediaType": seed.OCI_MANIFEST,
                "config": seed.descriptor(seed.OCI_CONFIG, config),
                "layers": [
                    seed.descriptor(
                        IN_TOTO,
                        statement,
                        annotations={"in-toto.io/predicate-type": "https://spdx.dev/Document"},
                    )
                ],
            }
        )
        attestations[arch] = seed.put_manifest(
            url, repo, seed.sha256_digest(att), att, seed.OCI_MANIFEST
        )
        entries.append(
            seed.descriptor(
                seed.OCI_MANIFEST,
                att,
                platform={"architecture": "unknown", "os": "unknown"},
                annotations={
                    "vnd.docker.reference.digest": seed.sha256_digest(body),
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            )
        )
    index = _compact({"schemaVersion": 2, "mediaType": seed.OCI_INDEX, "manifests": entries})
    digest = seed.put_manifest(url, repo, tag, index, seed.OCI_INDEX)
    return {"index": digest, "children": children, "attestations": attestations}


def _compact(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
