"""Value types shared by the fetcher, the pure normalizer and the pusher.

The manifest tree travels as raw bytes (:class:`Node`); the normalizer's output is a
:class:`Plan`. Results handed to API callers and rendered as JSON are the pydantic models of
:mod:`oci_normalize.result_models`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from oci_normalize.digest import Digest


@dataclass(frozen=True)
class Blob:
    """A config or layer descriptor as found in a manifest (never rewritten)."""

    digest: Digest
    size: int
    media_type: str
    urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class Node:
    """One manifest or index exactly as the registry holds it.

    ``media_type`` is the effective type: the body's ``mediaType`` when present, else the
    response Content-Type or the parent descriptor's type. ``children`` follow the order of the
    index's ``manifests`` list (deduplicated by digest); ``blobs`` are config first, then layers.
    """

    digest: Digest
    media_type: str
    data: bytes
    path: str = "@"
    children: tuple[Node, ...] = ()
    blobs: tuple[Blob, ...] = ()
    #: A signed schema1 manifest's body as served (``data`` is its verified JWS payload): only
    #: for putting the original back, never parsed (see :class:`~.manifest.VerifiedManifest`).
    signed: bytes | None = None

    def walk(self) -> list[Node]:
        """Every node below and including this one, children before parents, once each."""
        seen: set[Digest] = set()
        out: list[Node] = []

        def visit(node: Node) -> None:
            if node.digest in seen:
                return
            seen.add(node.digest)
            for child in node.children:
                visit(child)
            out.append(node)

        visit(self)
        return out


@dataclass(frozen=True)
class PlannedNode:
    """A node of the output tree: its old identity and its new bytes (same bytes if unchanged)."""

    path: str
    old_digest: Digest
    old_media_type: str
    old_data: bytes
    new_digest: Digest
    new_media_type: str
    new_data: bytes
    blobs: tuple[Blob, ...] = ()

    @property
    def changed(self) -> bool:
        return self.new_digest != self.old_digest


@dataclass(frozen=True)
class Finding:
    """One Docker media type found somewhere in the tree."""

    manifest: Digest
    path: str
    where: str  # "mediaType", "config", "layers[2]", "manifests[0]"
    media_type: str
    oci_media_type: str | None


@dataclass(frozen=True)
class LayerFacts:
    """What streaming one compressed layer blob taught us (schema1 manifests lack it)."""

    diff_id: Digest  # sha256 of the uncompressed tar
    size: int  # bytes of the blob as stored
    media_type: str  # OCI layer type matching the blob's compression


@dataclass(frozen=True)
class NewBlob:
    """A blob the plan creates (a schema1 image's new config): pushed before any manifest."""

    digest: Digest
    media_type: str
    data: bytes


@dataclass(frozen=True)
class Plan:
    """What normalizing a tree yields: every node (children first), findings and warnings."""

    nodes: tuple[PlannedNode, ...]
    findings: tuple[Finding, ...] = ()
    warnings: tuple[str, ...] = field(default=())
    new_blobs: tuple[NewBlob, ...] = ()
    #: Why the root is an artifact, not an image (then every node is unchanged), else None.
    artifact: str | None = None

    @property
    def root(self) -> PlannedNode:
        return self.nodes[-1]

    @property
    def changed(self) -> tuple[PlannedNode, ...]:
        return tuple(n for n in self.nodes if n.changed)

    @property
    def digest_map(self) -> dict[Digest, Digest]:
        return {n.old_digest: n.new_digest for n in self.nodes if n.changed}
