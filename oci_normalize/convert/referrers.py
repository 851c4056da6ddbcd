"""Pointing what names an old digest at a new one (pure: no I/O).

What names a digest is listed by the store (:mod:`oci_normalize.store.referrers`); this module
holds the pure rewrites the planner uses: a referrer's copy whose ``subject`` names the new
digest, the descriptor a referrers index lists for it, a fallback-tag index with copies added,
and the buildkit attestation entries of an index (the normalizer rewrites their digest
annotation; they are listed so the user sees what followed).
"""

from __future__ import annotations

import copy
from typing import Any, Final

from oci_normalize import mediatypes as mt
from oci_normalize.convert.normalize import ATTESTATION_DIGEST_KEY
from oci_normalize.digest import Digest
from oci_normalize.errors import MalformedManifestError
from oci_normalize.manifest import parse_body, serialize
from oci_normalize.models import Node, Plan
from oci_normalize.results import BUILDKIT_ATTESTATION
from oci_normalize.store.referrers import Referrer, artifact_type_of

ATTESTATION_TYPE_KEY: Final = "vnd.docker.reference.type"
ATTESTATION_MANIFEST: Final = "attestation-manifest"


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
    artifact_type = artifact_type_of(data, what)
    if artifact_type is not None:
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
