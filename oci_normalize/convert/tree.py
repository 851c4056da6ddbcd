"""Fetch a manifest tree (index → children) as raw, verified bytes, each digest once.

The walk goes level by level: the children a level names are fetched together on a small pool
(:data:`~oci_normalize.limits.TREE_FETCH_THREADS`), each distinct digest once however many
indexes name it, and the whole walk fetches at most
:func:`~oci_normalize.limits.max_tree_manifests` manifests and nests at most :data:`MAX_DEPTH`
deep. So an index fanning out wide and deep costs one GET per distinct manifest and a fixed
number of threads, or a clear error. Every child must match its descriptor's digest and size.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from oci_normalize import limits
from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import DigestMismatchError, MalformedManifestError
from oci_normalize.manifest import VerifiedManifest, descriptors, effective_media_type, parse_body
from oci_normalize.models import Blob, Node
from oci_normalize.reference import Location, place
from oci_normalize.store.base import Store
from oci_normalize.text import printable

#: Kept for callers that read it: the threads one walk uses (see :mod:`oci_normalize.limits`).
CHILD_FETCH_CONCURRENCY: Final = limits.TREE_FETCH_THREADS
#: Longest platform field (os, architecture, variant) shown in a manifest's label.
MAX_LABEL_PART: Final = 64
#: Deeper nesting than this is refused rather than followed (indexes can point at indexes).
MAX_DEPTH: Final = 8


@dataclass(frozen=True)
class _ParsedManifest:
    """One verified manifest of the walk: its bytes, effective type, label, parsed children."""

    data: bytes
    media_type: str
    path: str
    size: int
    signed: bytes | None
    #: (digest, descriptor mediaType, descriptor size, label) of every manifest it names.
    children: tuple[tuple[Digest, str, int, str], ...] = ()
    blobs: tuple[Blob, ...] = ()


def fetch_tree(registry: Store, ref: Location) -> Node:
    """The whole tree under ``ref``; every manifest verified against its digest."""
    fetched = registry.get_manifest(ref.repository, ref.ref, expected=ref.digest, what=str(ref))
    return build_tree(registry, ref, fetched)


def build_tree(registry: Store, ref: Location, root: VerifiedManifest) -> Node:
    """The tree under an already fetched root (batch reads roots first to group tags by digest)."""
    prefix = place(ref)
    limit = limits.max_tree_manifests()
    got: dict[Digest, _ParsedManifest] = {}
    got[root.digest] = _parse(prefix, root, root.media_type, "@")
    level = [root.digest]
    with ThreadPoolExecutor(limits.TREE_FETCH_THREADS) as pool:
        for depth in range(MAX_DEPTH + 2):
            wanted = _wanted(got, level)
            if not wanted:
                break
            if depth >= MAX_DEPTH:
                raise MalformedManifestError(
                    f"{prefix}@{root.digest}: indexes nested deeper than {MAX_DEPTH}"
                )
            if len(got) + len(wanted) > limit:
                raise MalformedManifestError(
                    f"{prefix}@{root.digest}: the tree names more than {limit} manifests "
                    f"(set {limits.ENV_MAX_TREE_MANIFESTS} to allow more)"
                )

            def fetch(item: tuple[Digest, tuple[str, str]]) -> tuple[Digest, _ParsedManifest]:
                digest, (desc_type, label) = item
                what = f"{prefix}@{digest} {label}"
                one = registry.get_manifest(ref.repository, str(digest), expected=digest, what=what)
                # The body's own mediaType wins; without one, the descriptor names the type.
                ctype = effective_media_type(one.data, desc_type, fallback=one.media_type)
                return digest, _parse(prefix, one, ctype, label)

            for digest, parsed in pool.map(fetch, list(wanted.items())):
                got[digest] = parsed
            level = list(wanted)
    _check_sizes(prefix, got)
    return _node(root.digest, got, {}, set())


def _check_sizes(prefix: str, got: dict[Digest, _ParsedManifest]) -> None:
    """Every descriptor names its child's size exactly (an index is pushed as it is)."""
    for parent in got.values():
        for child, _, size, label in parent.children:
            actual = got[child].size
            if actual != size:
                raise DigestMismatchError(
                    f"{prefix}@{child} {label}: manifest is {actual} bytes, "
                    f"its descriptor says {size}"
                )


def _wanted(
    got: dict[Digest, _ParsedManifest], level: list[Digest]
) -> dict[Digest, tuple[str, str]]:
    """Children named by ``level`` and not fetched yet: digest → (descriptor type, label)."""
    out: dict[Digest, tuple[str, str]] = {}
    for parent in level:
        for child, desc_type, _, label in got[parent].children:
            if child not in got and child not in out:
                out[child] = (desc_type, label)
    return out


def _parse(prefix: str, one: VerifiedManifest, media_type: str, path: str) -> _ParsedManifest:
    what = f"{prefix}@{one.digest}"
    data, size = one.data, one.body_size
    if mt.is_schema1(media_type) or not (
        mt.is_index(media_type) or mt.is_image_manifest(media_type)
    ):
        return _ParsedManifest(data, media_type, path, size, one.signed)
    descs = descriptors(parse_body(data, what), media_type, what)
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
        return _ParsedManifest(data, media_type, path, size, None, blobs=blobs)
    children = tuple(
        (Digest.parse(d["digest"]), d["mediaType"], int(d["size"]), _label(path, where, d))
        for where, d in descs
        if mt.is_manifest(d["mediaType"])
    )
    return _ParsedManifest(data, media_type, path, size, None, children=children)


def _node(
    digest: Digest,
    got: dict[Digest, _ParsedManifest],
    built: dict[Digest, Node],
    open_: set[Digest],
) -> Node:
    """The :class:`Node` for ``digest``, each distinct manifest built once."""
    if digest in built:
        return built[digest]
    if digest in open_:  # only a hash collision could make a manifest name an ancestor
        raise MalformedManifestError(f"{digest}: a manifest names one of its own ancestors")
    open_.add(digest)
    one = got[digest]
    kids = tuple(dict.fromkeys(c for c, _, _, _ in one.children))
    node = Node(
        digest=digest,
        media_type=one.media_type,
        data=one.data,
        path=one.path,
        children=tuple(_node(c, got, built, open_) for c in kids),
        blobs=one.blobs,
        signed=one.signed,
    )
    built[digest] = node
    return node


def _label(parent: str, where: str, desc: dict[str, object]) -> str:
    platform = desc.get("platform")
    name = where
    if isinstance(platform, dict):
        parts = [
            printable(str(platform.get(k)), limit=MAX_LABEL_PART)
            for k in ("os", "architecture", "variant")
            if platform.get(k)
        ]
        if parts:
            name = f"{where}({'/'.join(parts)})"
    return name if parent == "@" else f"{parent}/{name}"
