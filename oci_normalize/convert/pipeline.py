"""One conversion in three phases a reader can follow: read → plan → write.

- **read**: :func:`read` takes the tree under a reference as raw verified bytes (every schema1
  layer streamed once for its diff_id) and normalizes it (pure, :mod:`.normalize`);
  :func:`attach` lists what names its manifests and reads the copies the rules will make;
  :func:`read_target` reads what the target holds (the tag, its repository's tags, the
  backup tag, fallback indexes).
- **plan**: :func:`.planner.plan`, pure: the whole write list and what to tell the user.
- **write**: :func:`write` runs it with the one writer, :func:`.push.execute`.

Every path goes through here: ``convert`` in place and to a DEST (api), ``batch`` and
``batch --to`` (:mod:`oci_normalize.batch.run`) and ``serve``. They differ in what they hand
over: where the image goes, and how much of the target was read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from oci_normalize.convert import planner
from oci_normalize.convert import referrers as rf
from oci_normalize.convert.blobio import layer_facts
from oci_normalize.convert.hooks import SignHook, SignRequest, describe, run_hook
from oci_normalize.convert.normalize import normalize, schema1_layer_blobs
from oci_normalize.convert.planner import Attached, Outcome, Source, Target
from oci_normalize.convert.push import PushStats, SignStep, execute
from oci_normalize.convert.tree import build_tree, fetch_tree
from oci_normalize.digest import Digest
from oci_normalize.errors import NotFoundError, OciNormalizeError
from oci_normalize.limits import CHUNK
from oci_normalize.manifest import VerifiedManifest
from oci_normalize.models import LayerFacts, Node
from oci_normalize.options import ConvertOptions
from oci_normalize.reference import Location, Reference, located, same_repository
from oci_normalize.store.base import Store
from oci_normalize.store.client import Client
from oci_normalize.store.referrers import fallback_tag

if TYPE_CHECKING:
    from oci_normalize.result_models import SignRun


def schema1_facts(tree: Node, store: Store, loc: Location) -> dict[Digest, LayerFacts]:
    """Stream every layer of the tree's schema1 manifests once: digest check, size, diff_id."""
    facts: dict[Digest, LayerFacts] = {}
    for blob in schema1_layer_blobs(tree):
        what = located(loc, blob)
        with store.open_blob(loc.repository, blob) as resp:
            facts[blob] = layer_facts(resp.iter_content(CHUNK), blob, what)
    return facts


def read(store: Store, loc: Location, root: VerifiedManifest | None = None) -> Source:
    """The tree under ``loc`` (its root already fetched, when given) and its plan."""
    tree = fetch_tree(store, loc) if root is None else build_tree(store, loc, root)
    return Source(loc, tree, normalize(tree, schema1_layers=schema1_facts(tree, store, loc)))


def attach(
    client: Client, source: Source, *, same_repo: bool, options: ConvertOptions, dry_run: bool
) -> Source:
    """``source`` with what names its manifests (registry sources only): cosign tags and OCI
    referrers of the manifests :func:`.planner.subjects_to_list` names, and buildkit
    attestations of the tree. Outside a dry run, each one the rules copy is read: its manifest,
    and towards another repository its own tree."""
    loc = source.location
    p = source.plan
    if not isinstance(loc, Reference):
        return source
    if same_repo and not p.changed:
        return source
    registry = client.registry(loc)
    subjects = planner.subjects_to_list(p, same_repo=same_repo)
    found = client.referrers.of(registry, loc.repository, subjects)
    found += rf.buildkit_attestations(source.tree, p)
    attached = [Attached(ref) for ref in found]
    out = replace(source, attached=tuple(attached))
    if dry_run:
        return out
    read_ = []
    for a in attached:
        d = planner.decide(a, p, same_repo=same_repo, options=options, dry_run=False)
        if d is None or not d.copy:
            read_.append(a)
            continue
        ref = a.referrer
        name = str(ref.digest) if ref.digest is not None else ref.name
        got = registry.get_manifest(loc.repository, name, expected=ref.digest)
        tree = None
        if not same_repo:
            at = Reference(registry=loc.registry, repository=loc.repository, digest=got.digest)
            tree = build_tree(registry, at, got)
        read_.append(Attached(ref, got, tree))
    return replace(source, attached=tuple(read_))


def read_target(
    client: Client,
    source: Source,
    target: Location,
    *,
    options: ConvertOptions,
    read_tag: bool,
    tree_present: bool = False,
) -> Target:
    """What the target holds that the plan depends on.

    In place: the repository's tags (cached per run), the backup tag's digest, the fallback
    indexes copies will join. Elsewhere: the repository's tags when a copy or ``read_tag``
    needs them (absent: a fresh repository), and with ``read_tag`` the tag's manifest when the
    listing names it (the guard, the journal's undo and "already there"); a tag the listing
    lacks costs no request. In a fresh repository (none when this run first listed it), a tag
    this run has not written is claimed for this reference
    (:meth:`~oci_normalize.store.referrers.Referrers.claim_new_tag`); a reference that finds
    its tag written or claimed already gets ``fresh`` False and so keeps its guard
    (:func:`.planner._guard`). Nothing is read for a non-registry target.
    """
    same_repo = same_repository(source.location, target)
    in_place = same_repo and source.location.tag == target.tag
    if not isinstance(target, Reference):
        return Target(target, in_place, tree_present=tree_present)
    p = source.plan
    registry = client.registry(target)
    copies = planner.copies_need_fallback(source, same_repo=same_repo, options=options)
    any_copy = bool(copies) or any(a.manifest is not None for a in source.attached)
    want_tags = (in_place and p.changed) or any_copy or read_tag
    listed = client.referrers.listed(registry, target.repository) if want_tags else frozenset()
    tags = listed or frozenset()
    # The repository did not exist when this run first listed it (the tags in ``tags`` are
    # then this run's own): no blob to look for, and a tag it never wrote is absent.
    fresh = not in_place and want_tags and not client.referrers.exists(registry, target.repository)
    tag_now: Digest | None = None
    tag_read = False
    replaced = None
    if in_place:
        tag_now, tag_read = p.root.old_digest, True
    elif read_tag and target.tag is not None:
        tag_read = True
        if target.tag in tags:  # its bytes are the journal's undo information
            replaced = _optional(registry, target.repository, target.tag)
            tag_now = replaced.digest if replaced else None
        # In a fresh repository the tag is this reference's own to create only when no other
        # reference of this run wrote or claimed it (two sources mapping to one tag).
        fresh = (
            fresh
            and target.tag not in tags
            and client.referrers.claim_new_tag(registry.name, target.repository, target.tag)
        )
    api = False
    if copies:
        client.referrers.index(registry, target.repository, copies[0])  # the probe, once
        api = client.referrers.has_api(registry.name)
    fallback: dict[Digest, VerifiedManifest | None] = {}
    if copies and not api:
        for subject in copies:
            tag = fallback_tag(subject)
            fallback[subject] = _optional(registry, target.repository, tag) if tag in tags else None
    backup_tag = backup_now = None
    if options.backup_tag is not None and in_place and target.tag is not None and p.changed:
        backup_tag = planner.render_backup_tag(options.backup_tag, target.tag)
        if backup_tag in tags:
            backup_now = registry.head_manifest(target.repository, backup_tag)
    return Target(
        target,
        in_place,
        tag_now=tag_now,
        tag_read=tag_read,
        tags=tags,
        fresh=fresh,
        referrers_api=api,
        fallback=fallback,
        backup_tag=backup_tag,
        backup_now=backup_now,
        tree_present=tree_present,
        replaced=replaced,
    )


def _optional(store: Store, repository: str, tag: str) -> VerifiedManifest | None:
    try:
        return store.get_manifest(repository, tag)
    except NotFoundError:
        return None


@dataclass(frozen=True)
class Signer:
    """Runs ``--sign-with`` for one sign step, at most ``limiter``'s count at once."""

    hook: SignHook
    timeout: float
    limiter: threading.Semaphore

    @classmethod
    def of(cls, options: ConvertOptions) -> Signer | None:
        if not options.sign_with:
            return None
        hook = SignHook.parse(options.sign_with)
        return cls(hook, options.sign_timeout, threading.Semaphore(options.sign_concurrency))

    def __call__(self, step: SignStep) -> None:
        run_hook(self.hook, request(step), timeout=self.timeout, limiter=self.limiter)

    def command(self, step: SignStep) -> str:
        """The exact command for ``step``, shell-quoted for display, secrets masked."""
        return describe(self.hook, request(step))


def request(step: SignStep) -> SignRequest:
    return SignRequest(
        registry=step.registry,
        repository=step.repository,
        tag=step.tag,
        old_digest=step.old_digest,
        new_digest=step.new_digest,
    )


def write(
    client: Client,
    outcome: Outcome,
    *,
    source: Location,
    target: Location,
    options: ConvertOptions,
    signer: Signer | None = None,
    stats: PushStats | None = None,
    streaming: Callable[[], None] | None = None,
) -> PushStats:
    """Run the outcome's writes with the client's stores, blob memory and tag cache; ``stats``
    (counted into as writes land) lets a caller report what landed before a failure;
    ``streaming``: see :func:`.push.execute`."""
    dest = client.store(target)
    if outcome.writes.hooks and signer is None:
        raise OciNormalizeError("sign steps were planned without a --sign-with command")

    def on_tag(tag: str) -> None:
        client.referrers.note_tag(dest.name, target.repository, tag)

    stats = execute(
        outcome.writes,
        dest=dest,
        source=client.store(source),
        homes=client.blob_homes,
        blob_concurrency=options.blob_concurrency,
        sign=signer,
        before_tag=options.before_tag,
        on_tag=on_tag,
        stats=stats,
        streaming=streaming,
    )
    if target.tag is not None and outcome.writes.tag is not None:
        on_tag(target.tag)
    return stats


def sign_runs(outcome: Outcome, signer: Signer | None, *, ran: bool) -> list[SignRun]:
    """The ``--sign-with`` runs of a plan, each with its exact command (secrets masked)."""
    from oci_normalize.result_models import SignRun

    if signer is None:
        return []
    return [
        SignRun(
            path=step.path,
            old_digest=str(step.old_digest),
            new_digest=str(step.new_digest),
            command=signer.command(step),
            ran=ran and bool(outcome.writes.hooks),
        )
        for step in outcome.signing
    ]
