"""Apply a :class:`~oci_normalize.models.Plan`: blobs, then children, then the root, the tag last.

In place (same repository) only changed manifests move: every blob and every unchanged child is
already there. Towards another repository the whole tree goes, and each missing blob is made
present the cheapest way: HEAD (already there), cross-repository mount (same registry), or a
streamed copy that is hashed on the way and never held in memory whole.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import DigestMismatchError, PushError
from oci_normalize.models import Blob, NewBlob, Plan, PlannedNode
from oci_normalize.reference import Location, same_repository
from oci_normalize.store.base import BlobStream, Store
from oci_normalize.store.registry import CHUNK, Registry


@dataclass
class PushStats:
    manifests: int = 0
    blobs_uploaded: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    blobs_skipped: int = 0  # non-distributable (foreign) layers, left where their urls say


def push_plan(
    plan: Plan,
    *,
    source: Store,
    src: Location,
    dest_registry: Store,
    dest: Location,
    guard: Digest | None = None,
    before_tag: Callable[[], int] | None = None,
    trust_echo: bool = False,
    stats: PushStats | None = None,
) -> PushStats:
    """Push ``plan`` to ``dest``; the root always goes (under dest's tag), children as needed.

    ``guard``: the digest the dest tag must still point at just before it moves.
    ``before_tag`` runs after the children and before the tag is re-read and moved (referrer
    copies and the backup tag go there); it returns how many manifests it pushed.
    ``trust_echo``: skip the verifying HEAD after the tag PUT when a registry confirmed that PUT
    (it echoed our digest in ``Docker-Content-Digest``): it then stored exactly our bytes under
    the tag, and a HEAD after it could only race other writers, not add certainty.
    ``stats``: counted into as the writes land, so a caller still knows them after a failure.
    """
    stats = stats if stats is not None else PushStats()
    same_repo = same_repository(src, dest)
    root = plan.root
    # In the same repository every blob and every unchanged child is already there.
    children = [n for n in plan.nodes[:-1] if n.changed or not same_repo]

    # Blobs the plan created (a schema1 image's new config) go first, in place too.
    created = {blob.digest for blob in plan.new_blobs}
    for blob in plan.new_blobs:
        _put_new_blob(blob, dest_registry, dest, stats)
    if not same_repo:
        _ensure_blobs(list(plan.nodes), source, src, dest_registry, dest, stats, skip=created)

    for node in children:
        dest_registry.put_manifest(
            dest.repository, str(node.new_digest), node.new_data, node.new_media_type
        )
        stats.manifests += 1

    if before_tag is not None:
        stats.manifests += before_tag()

    target = dest.tag if dest.tag is not None else str(root.new_digest)
    if dest.tag is not None and guard is not None:
        now = dest_registry.head_manifest(dest.repository, dest.tag)
        if now != guard:
            raise PushError(
                f"{dest}: tag moved during conversion (now {now}, expected {guard}); "
                "nothing was tagged"
            )
    confirmed = False
    if trust_echo and isinstance(dest_registry, Registry):
        _, confirmed = dest_registry.put_manifest_confirmed(
            dest.repository, target, root.new_data, root.new_media_type
        )
    else:
        dest_registry.put_manifest(dest.repository, target, root.new_data, root.new_media_type)
    stats.manifests += 1

    if dest.tag is not None and not confirmed:
        landed = dest_registry.head_manifest(dest.repository, dest.tag)
        if landed != root.new_digest:
            raise PushError(
                f"{dest}: after push the tag resolves to {landed}, not {root.new_digest}"
            )
    return stats


def _ensure_blobs(
    nodes: list[PlannedNode],
    source: Store,
    src: Location,
    dest_registry: Store,
    dest: Location,
    stats: PushStats,
    *,
    skip: set[Digest],
) -> None:
    seen: set[Digest] = set(skip)
    same_registry = source.registry == dest_registry.registry
    for node in nodes:
        for blob in node.blobs:
            if blob.digest in seen:
                continue
            seen.add(blob.digest)
            if blob.urls and _non_distributable(blob):
                stats.blobs_skipped += 1
                continue
            if dest_registry.blob_exists(dest.repository, blob.digest):
                stats.blobs_present += 1
            elif same_registry and dest_registry.mount_blob(
                dest.repository, blob.digest, src.repository
            ):
                stats.blobs_mounted += 1
            else:
                _copy_blob(blob, source, src, dest_registry, dest)
                stats.blobs_uploaded += 1


def _put_new_blob(blob: NewBlob, dest_registry: Store, dest: Location, stats: PushStats) -> None:
    if dest_registry.blob_exists(dest.repository, blob.digest):
        stats.blobs_present += 1
        return
    dest_registry.upload_blob(dest.repository, blob.digest, len(blob.data), [blob.data])
    stats.blobs_uploaded += 1


def _non_distributable(blob: Blob) -> bool:
    return mt.base(blob.media_type) in mt.FOREIGN | {mt.OCI_ND_LAYER_GZIP, mt.OCI_ND_LAYER_TAR}


def _copy_blob(
    blob: Blob, source: Store, src: Location, dest_registry: Store, dest: Location
) -> None:
    @contextlib.contextmanager
    def open_body() -> Iterator[Iterator[bytes]]:
        """One upload try: a fresh source stream, hashed on the way through."""
        resp = source.open_blob(src.repository, blob.digest)
        with resp:
            yield _verified_chunks(resp, blob, src)

    # A callable body lets the registry client restart the whole upload after a failure.
    dest_registry.upload_blob(dest.repository, blob.digest, blob.size, open_body)


def _verified_chunks(resp: BlobStream, blob: Blob, src: Location) -> Iterator[bytes]:
    hasher = blob.digest.hasher()
    count = 0
    for chunk in resp.iter_content(CHUNK):
        hasher.update(chunk)
        count += len(chunk)
        yield chunk
    if hasher.hexdigest() != blob.digest.hex or count != blob.size:
        # Raising inside the body generator aborts the upload before it completes.
        raise DigestMismatchError(
            f"{src.registry}/{src.repository}@{blob.digest}: blob content does not "
            f"match its digest/size ({count} bytes)"
        )
