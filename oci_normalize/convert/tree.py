"""Fetch a manifest tree (index → children) as raw, digest-verified bytes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Final

from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import MalformedManifestError
from oci_normalize.manifest import Fetched, descriptors, effective_media_type, parse_body
from oci_normalize.models import Blob, Node
from oci_normalize.reference import Location, located
from oci_normalize.store.base import Store

#: Children of one index fetched at once (manifests are small; latency dominates).
CHILD_FETCH_CONCURRENCY: Final = 4
#: Deeper nesting than this is refused rather than followed (indexes can point at indexes).
MAX_DEPTH: Final = 8


def fetch_tree(registry: Store, ref: Location) -> Node:
    """The whole tree under ``ref``; every manifest verified against its digest."""
    fetched = registry.get_manifest(ref.repository, ref.ref, expected=ref.digest, what=str(ref))
    return build_tree(registry, ref, fetched)


def build_tree(registry: Store, ref: Location, root: Fetched) -> Node:
    """The tree under an already fetched root (batch reads roots first to group tags by digest)."""
    return _build(registry, ref, root.data, root.media_type, root.digest, "@", 0)


def _build(
    registry: Store,
    ref: Location,
    data: bytes,
    media_type: str,
    digest: Digest,
    path: str,
    depth: int,
) -> Node:
    what = located(ref, digest)
    if depth > MAX_DEPTH:
        raise MalformedManifestError(f"{what}: indexes nested deeper than {MAX_DEPTH}")
    if mt.is_schema1(media_type) or not (
        mt.is_index(media_type) or mt.is_image_manifest(media_type)
    ):
        return Node(digest=digest, media_type=media_type, data=data, path=path)
    body = parse_body(data, what)
    descs = descriptors(body, media_type, what)
    if mt.is_image_manifest(media_type):
        blobs = tuple(
            Blob(
                digest=Digest.parse(d["digest"]),
                size=int(d["size"]),
                media_type=d["mediaType"],
                urls=tuple(d.get("urls") or ()),
            )
            for _, d in descs
        )
        return Node(digest=digest, media_type=media_type, data=data, path=path, blobs=blobs)

    wanted: dict[Digest, tuple[str, str]] = {}
    for where, desc in descs:
        child_digest = Digest.parse(desc["digest"])
        if mt.is_manifest(desc["mediaType"]) and child_digest not in wanted:
            wanted[child_digest] = (desc["mediaType"], _label(path, where, desc))

    def fetch(item: tuple[Digest, tuple[str, str]]) -> Node:
        child_digest, (parent_type, label) = item
        got = registry.get_manifest(
            ref.repository, str(child_digest), expected=child_digest, what=f"{what} {label}"
        )
        # The body's own mediaType wins; without one, the descriptor names the type.
        ctype = effective_media_type(got.data, parent_type, fallback=got.media_type)
        return _build(registry, ref, got.data, ctype, child_digest, label, depth + 1)

    items = list(wanted.items())
    if len(items) <= 1:
        children = [fetch(i) for i in items]
    else:
        with ThreadPoolExecutor(min(CHILD_FETCH_CONCURRENCY, len(items))) as pool:
            children = list(pool.map(fetch, items))
    return Node(
        digest=digest, media_type=media_type, data=data, path=path, children=tuple(children)
    )


def _label(parent: str, where: str, desc: dict[str, object]) -> str:
    platform = desc.get("platform")
    name = where
    if isinstance(platform, dict):
        parts = [str(platform.get(k)) for k in ("os", "architecture", "variant") if platform.get(k)]
        if parts:
            name = f"{where}({'/'.join(parts)})"
    return name if parent == "@" else f"{parent}/{name}"
