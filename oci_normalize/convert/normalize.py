"""The pure core: a fetched manifest tree in, a :class:`~oci_normalize.models.Plan` out.

No I/O happens here: no requests, no files. A node changes only when one of its media types
(or a child's digest) changes; a changed node is written by :func:`serialize`, which keeps key
order and every field it does not touch. Unchanged nodes keep their exact bytes, so running the
normalizer on its own output changes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import (
    MalformedManifestError,
    OciNormalizeError,
    UnsupportedMediaTypeError,
)
from oci_normalize.manifest import descriptors, parse_body, serialize
from oci_normalize.models import Finding, LayerFacts, NewBlob, Node, Plan, PlannedNode

ATTESTATION_DIGEST_KEY = "vnd.docker.reference.digest"


def find_docker_types(root: Node) -> list[Finding]:
    """Every Docker media type in the tree, where it stands. Never raises on odd types.

    Artifacts (see :func:`artifact_reason`) are left alone, so nothing in them is a finding;
    a v2s2 image's ``application/octet-stream`` config is one (its twin is the OCI config).
    """
    findings: list[Finding] = []
    artifacts = artifact_digests(root)
    for node in root.walk():
        if node.digest in artifacts:
            continue
        what = f"{node.path} {node.digest.short}"
        if mt.is_docker(node.media_type):
            twin = mt.oci_twin(node.media_type)  # None for schema1: rebuilt, not renamed
            findings.append(Finding(node.digest, node.path, "mediaType", node.media_type, twin))
        if mt.is_schema1(node.media_type):
            continue
        body = parse_body(node.data, what)
        for where, desc in descriptors(body, node.media_type, what):
            dtype = desc["mediaType"]
            if mt.is_index(node.media_type) and _digest_in(desc, artifacts):
                continue
            if where == "config":
                twin = mt.config_twin(node.media_type, dtype)
            else:
                twin = mt.oci_twin(dtype)
            if mt.is_docker(dtype) or (twin is not None and twin != mt.base(dtype)):
                findings.append(Finding(node.digest, node.path, where, dtype, twin))
    return findings


def artifact_reason(node: Node, memo: dict[Digest, str | None] | None = None) -> str | None:
    """Why ``node`` is an artifact rather than an image (None for images and image indexes).

    An image manifest is an artifact when it has an ``artifactType``, when its config type is
    not an image config (see :func:`~oci_normalize.mediatypes.is_image_config`) or when a layer
    has a known artifact type (cosign signatures and attestations keep an image config type);
    an index when it has an ``artifactType``, lists artifacts only, or lists a Docker artifact
    (a plugin): an OCI index would hide that from the only client that reads it.

    ``memo`` (digest → reason) makes a walk over a tree cost one look per distinct manifest:
    an index can name the same child under many paths.
    """
    memo = {} if memo is None else memo
    if node.digest not in memo:
        memo[node.digest] = _artifact_reason(node, memo)
    return memo[node.digest]


def _artifact_reason(node: Node, memo: dict[Digest, str | None]) -> str | None:
    mtype = mt.base(node.media_type)
    if mtype == mt.OCI_ARTIFACT_MANIFEST:
        return "OCI artifact manifest"
    if not (mt.is_index(mtype) or mt.is_image_manifest(mtype)):
        return None
    body = parse_body(node.data, f"{node.path} {node.digest.short}")
    atype = body.get("artifactType")
    if isinstance(atype, str) and atype:
        return f"{mt.artifact_name(atype)} (artifactType {mt.base(atype)})"
    if mt.is_index(mtype):
        reasons = [(c, artifact_reason(c, memo)) for c in node.children]
        if reasons and all(r for _, r in reasons):
            return "index of artifacts only"
        docker = [r for c, r in reasons if r and mt.is_docker(c.media_type)]
        return f"index listing a Docker artifact: {docker[0]}" if docker else None
    config = body.get("config")
    ctype = config.get("mediaType") if isinstance(config, dict) else None
    if isinstance(ctype, str) and not mt.is_image_config(mtype, ctype):
        return f"{mt.artifact_name(ctype)} (config {mt.base(ctype)})"
    layers = body.get("layers")
    for layer in layers if isinstance(layers, list) else ():
        ltype = layer.get("mediaType") if isinstance(layer, dict) else None
        if isinstance(ltype, str) and mt.base(ltype) in mt.ARTIFACT_NAMES:
            return f"{mt.artifact_name(ltype)} (layer {mt.base(ltype)})"
    return None


def artifact_digests(root: Node) -> set[Digest]:
    """The digests of every artifact in the tree and of everything under one (an index that is
    an artifact is left alone whole, images it lists included), as check and convert treat them."""
    out: set[Digest] = set()
    memo: dict[Digest, str | None] = {}
    for node in root.walk():
        if node.digest not in out and artifact_reason(node, memo) is not None:
            out.update(n.digest for n in node.walk())
    return out


def _digest_in(desc: dict[str, Any], digests: set[Digest]) -> bool:
    try:
        return Digest.parse(desc["digest"]) in digests
    except OciNormalizeError:
        return False


def require_image(root: Node) -> None:
    """Refuse a root that is not an image index, an image manifest, schema1 or an artifact."""
    rtype = mt.base(root.media_type)
    if not mt.is_manifest(rtype) and rtype != mt.OCI_ARTIFACT_MANIFEST:
        raise UnsupportedMediaTypeError(
            f"{root.path} {root.digest.short}: {root.media_type or 'no media type'!r} is not an "
            "image manifest or index; nothing to convert"
        )


def normalize(root: Node, *, schema1_layers: Mapping[Digest, LayerFacts] | None = None) -> Plan:
    """Plan the OCI-pure version of ``root``'s tree. Raises on types that cannot convert.

    Schema1 manifests convert only with ``schema1_layers``: the facts (diff_id, size) of their
    layer blobs, which take streaming every layer (see :func:`schema1_layer_blobs`).
    """
    require_image(root)
    findings = tuple(find_docker_types(root))
    warnings: list[str] = []
    memo: dict[Digest, PlannedNode] = {}
    new_blobs: dict[Digest, NewBlob] = {}
    _plan(root, memo, warnings, new_blobs, schema1_layers, artifact_digests(root))
    ordered = tuple(memo[n.digest] for n in root.walk())
    return Plan(
        nodes=ordered,
        findings=findings,
        warnings=tuple(dict.fromkeys(warnings)),
        new_blobs=tuple(new_blobs.values()),
        artifact=artifact_reason(root),
    )


def schema1_layer_blobs(root: Node) -> list[Digest]:
    """The layer blobs whose facts :func:`normalize` needs for the schema1 manifests in the tree."""
    out: dict[Digest, None] = {}
    for node in root.walk():
        if mt.is_schema1(node.media_type):
            what = f"{node.path} {node.digest.short}"
            from oci_normalize.convert import schema1  # only for schema1 trees (start-up)

            out.update(dict.fromkeys(schema1.layer_blobs(parse_body(node.data, what), what)))
    return list(out)


def _plan(
    node: Node,
    memo: dict[Digest, PlannedNode],
    warnings: list[str],
    new_blobs: dict[Digest, NewBlob],
    schema1_layers: Mapping[Digest, LayerFacts] | None,
    left_alone: set[Digest],
) -> PlannedNode:
    if node.digest in memo:
        return memo[node.digest]
    if node.digest in left_alone:  # an artifact, or under one: keeps its bytes
        memo[node.digest] = _unchanged(node)
        for child in node.children:
            _plan(child, memo, warnings, new_blobs, schema1_layers, left_alone)
        return memo[node.digest]
    for child in node.children:
        _plan(child, memo, warnings, new_blobs, schema1_layers, left_alone)
    what = f"{node.path} {node.digest.short}"
    mtype = mt.base(node.media_type)
    if mt.is_schema1(mtype):
        if schema1_layers is None:
            raise UnsupportedMediaTypeError(
                f"{what}: Docker schema1 manifest ({mtype}) has no config blob; converting it "
                "needs every layer's diff_id (convert streams the layers to compute them)"
            )
        from oci_normalize.convert import schema1  # only for schema1 trees (start-up)

        built = schema1.convert(node.data, schema1_layers, what)
        warnings.extend(built.warnings)
        new_blobs[built.config.digest] = built.config
        planned = PlannedNode(
            path=node.path,
            old_digest=node.digest,
            old_media_type=mtype,
            old_data=node.signed or node.data,  # a registry takes schema1 back signed only
            new_digest=Digest.of(built.manifest),
            new_media_type=mt.OCI_MANIFEST,
            new_data=built.manifest,
            blobs=built.blobs,
        )
        memo[node.digest] = planned
        return planned
    if not (mt.is_index(mtype) or mt.is_image_manifest(mtype)):
        warnings.append(f"{what}: unknown manifest type {mtype!r} left as it is")
        planned = _unchanged(node)
        memo[node.digest] = planned
        return planned

    original = parse_body(node.data, what)
    body = copy.deepcopy(original)
    changed = False
    for where, desc in descriptors(body, mtype, what):
        if mt.is_index(mtype):
            changed |= _rewrite_entry(desc, node, memo, where, what, warnings)
        else:
            changed |= _rewrite_blob_descriptor(desc, mtype, where, what, warnings)
    if mt.is_index(mtype):
        changed |= _follow_attestations(body, memo)

    new_type = mt.oci_twin(mtype) or mtype
    declared = body.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise MalformedManifestError(f"{what}: mediaType is not a string")
    if declared is not None and mt.is_docker(declared):
        body["mediaType"] = new_type
        changed = True
    elif declared is None and (changed or mt.is_docker(mtype)):
        body = _insert_after(body, "schemaVersion", "mediaType", new_type)
        changed = True
    if changed and mt.is_image_manifest(mtype) and body.get("layers") is None:
        body["layers"] = []  # null read as empty; written as the schema's array

    if not changed:
        planned = _unchanged(node, media_type=new_type)
    else:
        data = serialize(body)
        planned = PlannedNode(
            path=node.path,
            old_digest=node.digest,
            old_media_type=mtype,
            old_data=node.data,
            new_digest=Digest.of(data),
            new_media_type=new_type,
            new_data=data,
            blobs=node.blobs,
        )
    memo[node.digest] = planned
    return planned


def _unchanged(node: Node, media_type: str | None = None) -> PlannedNode:
    mtype = mt.base(node.media_type)
    return PlannedNode(
        path=node.path,
        old_digest=node.digest,
        old_media_type=mtype,
        old_data=node.data,
        new_digest=node.digest,
        new_media_type=media_type or mtype,
        new_data=node.data,
        blobs=node.blobs,
    )


def _rewrite_blob_descriptor(
    desc: dict[str, Any], manifest_type: str, where: str, what: str, warnings: list[str]
) -> bool:
    dtype = mt.base(desc["mediaType"])
    if where == "config" and dtype == mt.OCTET_STREAM:
        twin = mt.config_twin(manifest_type, dtype)
        if twin is not None:  # a v2s2 image's config, typed as early Docker Hub pushes did
            desc["mediaType"] = twin
            return True
    if mt.is_docker(dtype):
        twin = mt.oci_twin(dtype)
        if twin is None:
            raise UnsupportedMediaTypeError(
                f"{what}: {where} has Docker media type {dtype!r} with no OCI equivalent"
                + (" (a Docker plugin, not an image)" if dtype == mt.DOCKER_PLUGIN_CONFIG else "")
            )
        if dtype in mt.FOREIGN:
            warnings.append(
                f"{what}: {where} is a foreign layer; it becomes {twin} "
                "(non-distributable, urls kept) and its blob is not copied"
            )
        desc["mediaType"] = twin
        return True
    if dtype not in mt.KNOWN_OCI:
        warnings.append(f"{what}: {where} has unknown media type {dtype!r}, left as it is")
    return False


def _rewrite_entry(
    desc: dict[str, Any],
    node: Node,
    memo: dict[Digest, PlannedNode],
    where: str,
    what: str,
    warnings: list[str],
) -> bool:
    digest = Digest.parse(desc["digest"])
    child = memo.get(digest) if any(c.digest == digest for c in node.children) else None
    dtype = mt.base(desc["mediaType"])
    changed = False
    if child is None:
        if mt.is_docker(dtype):
            raise UnsupportedMediaTypeError(
                f"{what}: {where} has Docker media type {dtype!r} that cannot be converted"
            )
        if not mt.is_manifest(dtype):
            warnings.append(f"{what}: {where} points at unknown type {dtype!r}, left as it is")
        return False
    if child.changed:
        desc["digest"] = str(child.new_digest)
        desc["size"] = len(child.new_data)
        changed = True
    if dtype != child.new_media_type and (mt.is_docker(dtype) or child.changed):
        desc["mediaType"] = child.new_media_type
        changed = True
    return changed


def _follow_attestations(body: dict[str, Any], memo: dict[Digest, PlannedNode]) -> bool:
    """Buildkit attestation entries name their image by digest: follow the image's new one."""
    moved = {str(old): str(p.new_digest) for old, p in memo.items() if p.changed}
    changed = False
    for entry in body["manifests"]:
        annotations = entry.get("annotations")
        if isinstance(annotations, dict):
            target = annotations.get(ATTESTATION_DIGEST_KEY)
            if isinstance(target, str) and target in moved:
                annotations[ATTESTATION_DIGEST_KEY] = moved[target]
                changed = True
    return changed


def _insert_after(body: dict[str, Any], after: str, key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if after not in body:
        out[key] = value
    for k, v in body.items():
        out[k] = v
        if k == after:
            out[key] = value
    return out
