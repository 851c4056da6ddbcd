"""What points at a manifest digest, and how to point it at a new one (pure: no I/O).

Three ways an artifact names an image by digest, all of which a media-type rewrite breaks:

* cosign's tag scheme: ``sha256-<hex>.sig`` / ``.att`` / ``.sbom`` in the image's repository;
* OCI referrers: a manifest whose ``subject`` is the image, found through
  ``GET /v2/<repo>/referrers/<digest>`` or, on registries without that API, through the
  fallback tag ``sha256-<hex>`` (an index listing the referrers);
* buildkit attestation manifests inside an index, whose entry carries the annotation
  ``vnd.docker.reference.digest: <image digest>`` (the normalizer already rewrites those).

Signed things cannot follow a new digest without being re-signed (the signature covers the old
digest); unsigned ones can be re-attached by a copy whose ``subject`` names the new digest.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Final

from oci_normalize import mediatypes as mt
from oci_normalize.convert.normalize import ATTESTATION_DIGEST_KEY
from oci_normalize.digest import Digest
from oci_normalize.errors import MalformedManifestError
from oci_normalize.manifest import parse_body, serialize
from oci_normalize.models import Node, Plan
from oci_normalize.results import (
    BUILDKIT_ATTESTATION,
    COSIGN_ATTESTATION,
    COSIGN_SBOM,
    COSIGN_SIGNATURE,
    OCI_REFERRER,
    ReferrerKind,
)

ATTESTATION_TYPE_KEY: Final = "vnd.docker.reference.type"
ATTESTATION_MANIFEST: Final = "attestation-manifest"
#: OCI distribution-spec: fallback tags are ``<alg>-<hex>`` truncated to the tag length limit.
MAX_TAG_LENGTH: Final = 128

#: Artifact types whose content is a signature over the subject digest: they cannot be moved
#: to a new digest, only re-created by whoever holds the key. Matched on the base type.
SIGNATURE_ARTIFACT_TYPES: Final = frozenset(
    {
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        "application/vnd.dev.cosign.simplesigning.v1+json",
        "application/vnd.cncf.notary.signature",
        "application/vnd.dsse.envelope.v1+json",
    }
)
#: Prefixes of signed artifact types that carry a version (sigstore bundles embed a signature).
SIGNATURE_ARTIFACT_PREFIXES: Final = ("application/vnd.dev.sigstore.bundle",)

_COSIGN_KINDS: Final[dict[str, ReferrerKind]] = {
    ".sig": COSIGN_SIGNATURE,
    ".att": COSIGN_ATTESTATION,
    ".sbom": COSIGN_SBOM,
}


@dataclass(frozen=True)
class Referrer:
    """Something that names ``subject`` (an old digest) and breaks when it changes.

    ``name`` is a tag (cosign kinds) or the referrer manifest's digest; ``signed`` means it
    cannot follow the image without being re-signed.
    """

    subject: Digest
    kind: ReferrerKind
    name: str
    signed: bool
    artifact_type: str | None = None
    digest: Digest | None = None
    media_type: str | None = None
    size: int | None = None


def fallback_tag(digest: Digest) -> str:
    """The referrers fallback tag of ``digest``: ``sha256-<hex>`` (also cosign's tag stem)."""
    return f"{digest.algorithm}-{digest.hex}"[:MAX_TAG_LENGTH]


def cosign_tags(digest: Digest) -> dict[str, ReferrerKind]:
    """cosign tag name → kind for ``digest``: ``sha256-<hex>.sig`` etc."""
    stem = f"{digest.algorithm}-{digest.hex}"
    return {f"{stem}{suffix}": kind for suffix, kind in _COSIGN_KINDS.items()}


def is_signature(artifact_type: str | None) -> bool:
    """True for artifact types that sign the subject digest (cosign, notation, sigstore)."""
    if not artifact_type:
        return False
    base = mt.base(artifact_type)
    return base in SIGNATURE_ARTIFACT_TYPES or base.startswith(SIGNATURE_ARTIFACT_PREFIXES)


def cosign_referrers(digest: Digest, tags: frozenset[str] | set[str]) -> list[Referrer]:
    """The cosign-scheme tags of ``digest`` present in ``tags``.

    ``.sig`` is a signature; ``.att`` holds DSSE envelopes signed over an in-toto statement that
    names the old digest, so it is treated as signed too; ``.sbom`` is an unsigned attachment.
    """
    return [
        Referrer(subject=digest, kind=kind, name=tag, signed=kind != COSIGN_SBOM)
        for tag, kind in cosign_tags(digest).items()
        if tag in tags
    ]


def referrers_from_index(subject: Digest, data: bytes, what: str) -> list[Referrer]:
    """The referrers listed by a referrers-API answer or a fallback-tag index."""
    body = parse_body(data, what)
    entries = body.get("manifests")
    if not isinstance(entries, list):
        raise MalformedManifestError(f"{what}: referrers index has no 'manifests' list")
    out: list[Referrer] = []
    seen: set[Digest] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
            raise MalformedManifestError(f"{what}: manifests[{i}] is not a descriptor")
        digest = Digest.parse(entry["digest"])
        if digest in seen:
            continue
        seen.add(digest)
        artifact_type = entry.get("artifactType")
        artifact_type = artifact_type if isinstance(artifact_type, str) else None
        size = entry.get("size")
        out.append(
            Referrer(
                subject=subject,
                kind=OCI_REFERRER,
                name=str(digest),
                signed=is_signature(artifact_type),
                artifact_type=artifact_type,
                digest=digest,
                media_type=str(entry.get("mediaType") or mt.OCI_MANIFEST),
                size=size if isinstance(size, int) else None,
            )
        )
    return out


def buildkit_attestations(root: Node, plan: Plan) -> list[Referrer]:
    """Attestation entries of every index in the tree whose image's digest changes.

    The normalizer rewrites their ``vnd.docker.reference.digest``; this lists them so the
    user sees what followed.
    """
    moved = plan.digest_map
    out: list[Referrer] = []
    for node in root.walk():
        if not mt.is_index(node.media_type):
            continue
        entries = parse_body(node.data, f"{node.path} {node.digest.short}").get("manifests")
        for entry in entries if isinstance(entries, list) else []:
            annotations = entry.get("annotations") if isinstance(entry, dict) else None
            if not isinstance(annotations, dict):
                continue
            if annotations.get(ATTESTATION_TYPE_KEY) != ATTESTATION_MANIFEST:
                continue
            target = annotations.get(ATTESTATION_DIGEST_KEY)
            if not isinstance(target, str) or not isinstance(entry.get("digest"), str):
                continue
            subject = Digest.parse(target)
            if subject in moved:
                out.append(
                    Referrer(
                        subject=subject,
                        kind=BUILDKIT_ATTESTATION,
                        name=entry["digest"],
                        signed=False,
                        digest=Digest.parse(entry["digest"]),
                        media_type=entry.get("mediaType"),
                    )
                )
    return out


def retarget(data: bytes, subject: dict[str, Any], what: str) -> bytes:
    """A referrer manifest's bytes with ``subject`` replaced; every other field kept in order."""
    body = parse_body(data, what)
    if not isinstance(body.get("subject"), dict):
        raise MalformedManifestError(f"{what}: referrer has no 'subject' descriptor")
    body["subject"] = dict(subject)
    return serialize(body)


def subject_descriptor(media_type: str, digest: Digest, size: int) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(digest), "size": size}


def referrer_descriptor(data: bytes, media_type: str, what: str) -> dict[str, Any]:
    """The descriptor a referrers index lists for a referrer manifest (spec: artifactType is the
    manifest's ``artifactType``, else its config's mediaType; annotations are copied)."""
    body = parse_body(data, what)
    desc: dict[str, Any] = {
        "mediaType": media_type,
        "digest": str(Digest.of(data)),
        "size": len(data),
    }
    artifact_type = body.get("artifactType")
    config = body.get("config")
    if not isinstance(artifact_type, str) and isinstance(config, dict):
        artifact_type = config.get("mediaType")
    if isinstance(artifact_type, str):
        desc["artifactType"] = artifact_type
    if isinstance(body.get("annotations"), dict) and body["annotations"]:
        desc["annotations"] = body["annotations"]
    return desc


def merge_fallback_index(
    existing: bytes | None, additions: list[dict[str, Any]], what: str
) -> bytes | None:
    """The fallback-tag index with ``additions`` appended (deduplicated by digest).

    None when nothing is new (the tag need not be written). A fresh index is created when
    ``existing`` is None.
    """
    if existing is None:
        body: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
    else:
        body = copy.deepcopy(parse_body(existing, what))
        if not isinstance(body.get("manifests"), list):
            raise MalformedManifestError(f"{what}: fallback index has no 'manifests' list")
    present = {m.get("digest") for m in body["manifests"] if isinstance(m, dict)}
    added = False
    for desc in additions:
        if desc["digest"] not in present:
            body["manifests"].append(desc)
            present.add(desc["digest"])
            added = True
    return serialize(body) if added else None
