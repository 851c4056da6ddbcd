"""One conversion in three phases a reader can follow: read → plan → write.

- **read** (:func:`read`): the tree under a reference as raw verified bytes, every schema1 layer
  streamed once for its diff_id, and the normalized plan (pure, :mod:`.normalize`); in place,
  :func:`prepare` then reads what points at the old digests and the backup tag.
- **plan** (:func:`writes_for`): pure; the plan, the referrer copies and the backup become one
  ordered list of writes (:class:`~.push.Writes`), with a guard only where a window was open
  between reading the tag and moving it (:func:`.inplace.needs_guard`).
- **write** (:func:`write`): the one writer, :func:`.push.execute`, runs them.

``convert`` (api), ``batch`` in place (:func:`push_in_place`) and ``batch --to`` go through here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from oci_normalize.convert import inplace
from oci_normalize.convert.blobio import layer_facts
from oci_normalize.convert.inplace import DEFAULT_CONVERT_OPTIONS, ConvertOptions
from oci_normalize.convert.normalize import normalize, schema1_layer_blobs
from oci_normalize.convert.push import PushStats, TagGuard, Writes, execute, plan_writes
from oci_normalize.convert.tree import build_tree, fetch_tree
from oci_normalize.digest import Digest
from oci_normalize.errors import OciNormalizeError
from oci_normalize.limits import CHUNK
from oci_normalize.manifest import Fetched
from oci_normalize.models import LayerFacts, Node, Plan
from oci_normalize.reference import Location, Reference, located, same_repository
from oci_normalize.store.base import Store

if TYPE_CHECKING:
    from oci_normalize.client import Client


@dataclass(frozen=True)
class Planned:
    """A fetched tree with its plan."""

    reference: Location
    tree: Node
    plan: Plan


def schema1_facts(tree: Node, store: Store, loc: Location) -> dict[Digest, LayerFacts]:
    """Stream every layer of the tree's schema1 manifests once: digest check, size, diff_id."""
    facts: dict[Digest, LayerFacts] = {}
    for blob in schema1_layer_blobs(tree):
        what = located(loc, blob)
        with store.open_blob(loc.repository, blob) as resp:
            facts[blob] = layer_facts(resp.iter_content(CHUNK), blob, what)
    return facts


def read(store: Store, loc: Location, root: Fetched | None = None) -> Planned:
    """The tree under ``loc`` (its root already fetched, when given) and its plan."""
    tree = fetch_tree(store, loc) if root is None else build_tree(store, loc, root)
    return Planned(loc, tree, normalize(tree, schema1_layers=schema1_facts(tree, store, loc)))


def prepare(
    client: Client, planned: Planned, options: ConvertOptions, *, dry_run: bool
) -> inplace.Prepared:
    """In place, the second read: what points at the old digests, and the backup tag
    (:func:`.inplace.prepare`; refuses before anything is written unless ``dry_run``). Nothing
    to read when nothing changes or the image is not in a registry."""
    source = planned.reference
    if not planned.plan.changed or not isinstance(source, Reference):
        return inplace.Prepared()
    return inplace.prepare(
        registry=client.registry(source),
        cache=client.referrers,
        source=source,
        tree=planned.tree,
        plan=planned.plan,
        options=options,
        dry_run=dry_run,
    )


def writes_for(
    planned: Planned,
    *,
    source: Location,
    target: Location,
    in_place: bool,
    prepared: inplace.Prepared,
    options: ConvertOptions,
) -> Writes:
    """The ordered writes that put ``planned`` at ``target`` (pure)."""
    p = planned.plan
    guard = None
    watch = in_place and source.digest is None and not options.force and target.tag is not None
    if watch and inplace.needs_guard(planned.tree, p, prepared):
        assert target.tag is not None
        guard = TagGuard(target.tag, p.root.old_digest)
    return plan_writes(
        p,
        repository=target.repository,
        tag=target.tag,
        source_repository=source.repository,
        whole_tree=not same_repository(source, target),
        referrers=prepared.referrer_puts(p.root),
        backup=prepared.backup_put(),
        guard=guard,
    )


def write(
    client: Client,
    writes: Writes,
    *,
    source: Location,
    target: Location,
    options: ConvertOptions,
    trust_echo: bool = False,
    stats: PushStats | None = None,
) -> PushStats:
    """Run ``writes`` with the client's stores, blob memory and tag cache; ``stats`` (counted
    into as writes land) lets a caller report what landed before a failure."""
    dest = client.store(target)

    def on_tag(tag: str) -> None:
        client.referrers.note_tag(dest.registry, target.repository, tag)

    return execute(
        writes,
        dest=dest,
        source=client.store(source),
        homes=client.blob_homes,
        blob_concurrency=options.blob_concurrency,
        before_tag=options.before_tag,
        on_tag=on_tag,
        trust_echo=trust_echo,
        stats=stats,
    )


def push_in_place(
    planned: Planned,
    *,
    client: Client,
    options: ConvertOptions = DEFAULT_CONVERT_OPTIONS,
    trust_echo: bool = False,
    stats: PushStats | None = None,
) -> tuple[PushStats, inplace.Prepared]:
    """The writing half of an in-place ``convert`` of a registry tag planned elsewhere.

    ``batch`` reads each root once and plans once per digest, then moves every tag through
    here: referrers and signatures checked (:func:`.inplace.prepare`, may raise RefusedError),
    then the writes. ``trust_echo``: see :func:`.push.execute`.
    """
    source = planned.reference
    if not isinstance(source, Reference) or source.tag is None:
        raise OciNormalizeError(f"{source}: converting in place needs a registry tag")
    prepared = prepare(client, planned, options, dry_run=False)
    writes = writes_for(
        planned, source=source, target=source, in_place=True, prepared=prepared, options=options
    )
    stats = write(
        client,
        writes,
        source=source,
        target=source,
        options=options,
        trust_echo=trust_echo,
        stats=stats,
    )
    return stats, prepared
