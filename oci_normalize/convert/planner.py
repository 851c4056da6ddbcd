"""The one planner: what was read at the source, where it goes and the options in; the whole
write list out. Pure: no I/O, no clock.

Every path hands it the same three things and differs only in them:

==========================  ====================================  =============================
path                        source (:class:`Source`)              target (:class:`Target`)
==========================  ====================================  =============================
``convert REF`` in place    tree, plan, referrers of changed      the same repository and tag;
                            manifests                             the backup tag's digest
``convert SRC DEST``        tree, plan, referrers of every        another tag, repository or
                            manifest                              registry
``batch``                   as in place, once per root digest     each tag of the group
``batch --to`` / ``serve``  as ``convert SRC DEST``               ``DEST/PREFIX/REPO:TAG``, its
                                                                  digest as read (the guard)
==========================  ====================================  =============================

(``rollback`` puts journalled originals back: :func:`restore`.)

What happens to each thing that names a manifest of the image (one set of rules, every path):

* its subject keeps its digest → it travels with the image (*carried*; nothing to do in place);
* its subject changes and it is signed → *refused* (nothing is written), unless ``sign_with``
  re-signs the new digest (*re-signed*, the old signature stays on the old digest) or
  ``break_signatures`` (*left-behind* on the old digest);
* its subject changes and it is unsigned → a copy names the new digest (*reattached*), unless
  ``referrers`` is off (*left*).

The write list runs in this order (:func:`~.push.execute`): new blobs, copied blobs, children
by digest, the root by digest when something names it, referrer copies and their tags, the
``--sign-with`` runs (children before parents), the backup tag, the guard, the tag, verify.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

from oci_normalize import mediatypes as mt
from oci_normalize.convert import referrers as rf
from oci_normalize.convert.push import ManifestPut, SignStep, TagGuard, WritePlan
from oci_normalize.digest import Digest
from oci_normalize.errors import InvalidReferenceError
from oci_normalize.manifest import VerifiedManifest
from oci_normalize.models import Blob, Node, Plan, PlannedNode
from oci_normalize.options import ConvertOptions
from oci_normalize.reference import Location, Reference, same_repository
from oci_normalize.results import (
    ANNOTATION_UPDATED,
    BACKUP,
    BUILDKIT_ATTESTATION,
    CARRIED,
    COSIGN_ATTESTATION,
    COSIGN_SBOM,
    COSIGN_SIGNATURE,
    LEFT,
    LEFT_BEHIND,
    REATTACHED,
    REFERRERS_FALLBACK,
    REFUSED_BY,
    RESIGNED,
    TAG,
    WOULD_CARRY,
    WOULD_REATTACH,
    WOULD_RESIGN,
    ReferrerAction,
    TagRole,
)
from oci_normalize.store.referrers import Referrer, cosign_tag, fallback_tag
from oci_normalize.text import printable

if TYPE_CHECKING:  # the result models are built when asked for: a plan costs no pydantic
    from oci_normalize.result_models import ReferrerOut, TagMove

COSIGN_KINDS = frozenset({COSIGN_SIGNATURE, COSIGN_ATTESTATION, COSIGN_SBOM})


@dataclass(frozen=True)
class Attached:
    """A referrer found at the source, with what a copy of it needs: its manifest's exact
    bytes and, for a copy into another repository, its own tree (children and blobs)."""

    referrer: Referrer
    manifest: VerifiedManifest | None = None
    tree: Node | None = None


@dataclass(frozen=True)
class Source:
    """What was read at the source: the tree, its plan, and what names its manifests."""

    location: Location
    tree: Node
    plan: Plan
    attached: tuple[Attached, ...] = ()


@dataclass(frozen=True)
class Target:
    """Where the image goes, and what was read there.

    ``tag``: the tag to move (None: by digest only). ``tag_now``: the digest the tag held when
    read (None: absent), and ``tag_read`` whether it was read at all (a guard needs it; in place
    it is the source's root). ``tags``: the repository's tags as listed (cosign copies already
    there are not written again). ``fresh``: the repository did not exist when this run first
    listed it (no blob to look for) and, with a tag, this reference is the run's only one to
    create that tag (no guard: :func:`_guard`).
    ``referrers_api``: the registry indexes referrers itself; otherwise a copy is added to the
    fallback tag, whose current index is in ``fallback`` (subject → index, None: absent).
    ``backup_tag`` and ``backup_now``: the rendered backup tag and its digest as read.
    ``tree_present``: this run already wrote the tree and what names it here (another tag of
    the same root): only the tag moves. ``replaced``: the tag's manifest as read elsewhere than
    in place (what a rollback puts back).
    """

    location: Location
    in_place: bool
    tag_now: Digest | None = None
    tag_read: bool = False
    tags: frozenset[str] = frozenset()
    fresh: bool = False
    referrers_api: bool = False
    fallback: Mapping[Digest, VerifiedManifest | None] = field(default_factory=dict)
    backup_tag: str | None = None
    backup_now: Digest | None = None
    tree_present: bool = False
    replaced: VerifiedManifest | None = None  # what the tag held, as read (the journal's undo)

    @property
    def tag(self) -> str | None:
        return self.location.tag

    @property
    def repository(self) -> str:
        return self.location.repository


@dataclass(frozen=True)
class Decision:
    """What happens to one attached thing: the action and, for a copy, the subject it names."""

    attached: Attached
    node: PlannedNode
    action: ReferrerAction
    copy: bool = False


class Moved(NamedTuple):
    """A tag the writes move: from ``old`` (None: new) to ``new``."""

    tag: str
    role: TagRole
    old: str | None
    new: str


@dataclass(frozen=True)
class Outcome:
    """The planner's answer: the writes, and what the user is told.

    What is told is kept as plain data (each decision with its copy's new name, each tag
    move) and turned into result models when first asked for: a conversion loads pydantic
    after its writes, not before its first one.
    """

    writes: WritePlan
    said: tuple[tuple[Decision, str | None], ...] = ()
    moved: tuple[Moved, ...] = ()
    signing: tuple[SignStep, ...] = ()  # --sign-with runs, planned (also in a dry run)
    refusal: str | None = None
    present: bool = False  # the target tag already holds the converted image: nothing to write

    @cached_property
    def referrers(self) -> tuple[ReferrerOut, ...]:
        return tuple(_out(d, new_name) for d, new_name in self.said)

    @cached_property
    def tags(self) -> tuple[TagMove, ...]:
        from oci_normalize.result_models import TagMove

        return tuple(
            TagMove(tag=m.tag, role=m.role, old_digest=m.old, new_digest=m.new) for m in self.moved
        )

    @property
    def signatures(self) -> tuple[ReferrerOut, ...]:
        return tuple(r for r in self.referrers if r.signed)


def subjects_to_list(plan: Plan, *, same_repo: bool) -> list[Digest]:
    """Which manifests' referrers the reader lists: within the image's own repository only
    what changes (the rest stays where it is, valid), towards another repository every manifest
    (all of it travels)."""
    return [n.old_digest for n in plan.nodes if n.changed or not same_repo]


def decide(
    attached: Attached, plan: Plan, *, same_repo: bool, options: ConvertOptions, dry_run: bool
) -> Decision | None:
    """The one rule table (module docstring); None: nothing to do or say (an unchanged subject
    in its own repository: what names it is there already)."""
    ref = attached.referrer
    node = next(n for n in plan.nodes if n.old_digest == ref.subject)
    action: ReferrerAction
    copy = False
    if ref.kind == BUILDKIT_ATTESTATION:
        return Decision(attached, node, ANNOTATION_UPDATED) if node.changed else None
    if not node.changed:
        if same_repo:
            return None
        action, copy = (WOULD_CARRY if dry_run else CARRIED), True
    elif ref.signed:
        if options.sign_with:
            action = WOULD_RESIGN if dry_run else RESIGNED
        elif options.break_signatures:
            action = LEFT_BEHIND
        else:
            action = REFUSED_BY
    elif options.referrers:
        action, copy = (WOULD_REATTACH if dry_run else REATTACHED), True
    else:
        action = LEFT
    return Decision(attached, node, action, copy)


def decisions(
    source: Source, *, same_repo: bool, options: ConvertOptions, dry_run: bool
) -> list[Decision]:
    out = []
    for attached in source.attached:
        d = decide(attached, source.plan, same_repo=same_repo, options=options, dry_run=dry_run)
        if d is not None:
            out.append(d)
    return out


def seen(source: Source, options: ConvertOptions) -> tuple[ReferrerOut, ...]:
    """Everything that names a manifest of the image and what a conversion would do to it
    (``check``): a signature whose digest changes would be refused (or re-signed), one whose
    digest stays would travel with the image wherever it goes."""
    found = decisions(source, same_repo=False, options=options, dry_run=True)
    return tuple(_out(d, None) for d in found)


def copies_need_fallback(
    source: Source, *, same_repo: bool, options: ConvertOptions
) -> list[Digest]:
    """New subject digests that OCI-referrer copies will name (the reader reads their fallback
    index where the target lacks the referrers API)."""
    found = decisions(source, same_repo=same_repo, options=options, dry_run=False)
    subjects = [d.node.new_digest for d in found if d.copy and d.attached.referrer.digest]
    return list(dict.fromkeys(subjects))


def plan(
    source: Source, target: Target, options: ConvertOptions, *, dry_run: bool = False
) -> Outcome:
    """The whole write list that puts ``source`` at ``target``, and what to tell the user."""
    p = source.plan
    root = p.root
    in_place = target.in_place
    same_repo = same_repository(source.location, target.location)
    found = decisions(source, same_repo=same_repo, options=options, dry_run=dry_run)
    refused = [d for d in found if d.action == REFUSED_BY]
    refusal = _refusal(source.location, refused) if refused else None
    backup_at = target.backup_now
    if target.backup_tag is not None and backup_at not in (None, root.old_digest):
        refusal = refusal or (
            f"{source.location}: backup tag {target.backup_tag!r} already exists and points at "
            f"{backup_at}, not at the original {root.old_digest}; choose another --backup-tag"
        )
    hooks = _sign_steps(found, p, target) if options.sign_with else ()
    if hooks and not isinstance(target.location, Reference):
        refusal = refusal or (
            f"{target.location}: --sign-with signs in a registry; {len(hooks)} manifest(s) "
            "would need re-signing here"
        )

    puts: list[ManifestPut] = []
    blobs: list[Blob] = []
    fallback_adds: dict[Digest, list[ManifestPut]] = {}
    said: list[tuple[Decision, str | None]] = []
    for d in found:
        new_name = _copy(d, target, not same_repo, puts, blobs, fallback_adds) if d.copy else None
        if d.attached.referrer.kind == BUILDKIT_ATTESTATION:
            new_name = d.attached.referrer.name
        said.append((d, new_name))
    tags = [_move(put, put.role) for put in puts if put.role]  # cosign tags
    for subject, copies in fallback_adds.items():
        fallback = _fallback(subject, copies, target)
        if fallback is not None:
            puts.append(fallback)
            tags.append(_move(fallback, REFERRERS_FALLBACK))

    backup = _backup(source, target)
    if backup is not None:
        tags.append(_move(backup, BACKUP))
    if target.tag is not None and (p.changed or not in_place):
        old = target.tag_now if target.tag_read else None
        was = str(root.old_digest) if in_place else (str(old) if old else None)
        tags.append(Moved(target.tag, TAG, was, str(root.new_digest)))

    present = not in_place and target.tag_read and target.tag_now == root.new_digest
    if refusal is not None or dry_run or present or (in_place and not p.changed):
        empty = WritePlan(repository=target.repository)
        return Outcome(empty, tuple(said), tuple(tags), hooks, refusal, present)

    whole_tree = not same_repo  # within one repository every blob and unchanged child is there
    children = [n for n in p.nodes[:-1] if n.changed or whole_tree]
    manifests = [ManifestPut(str(n.new_digest), n.new_data, n.new_media_type) for n in children]
    if (puts or hooks) and target.tag is not None:  # something names the root: it goes first
        manifests.append(ManifestPut(str(root.new_digest), root.new_data, root.new_media_type))
    tree_blobs = [b for n in p.nodes for b in n.blobs] if whole_tree else []
    if target.tree_present:
        manifests, tree_blobs, blobs, puts, hooks = [], [], [], [], ()
    writes = WritePlan(
        repository=target.repository,
        new_blobs=() if target.tree_present else p.new_blobs,
        blobs=(*tree_blobs, *blobs),
        source_repository=source.location.repository,
        children=tuple(manifests),
        referrers=tuple(puts),
        hooks=hooks,
        backup=backup,
        guard=_guard(source, target, options, bool(puts or hooks or backup or found)),
        tag=ManifestPut(target.tag or str(root.new_digest), root.new_data, root.new_media_type),
        fresh=target.fresh,
    )
    return Outcome(writes, tuple(said), tuple(tags), hooks, None, False)


def restore(
    repository: str, tag: str, original: bytes, media_type: str, *, now: Digest | None
) -> WritePlan:
    """``rollback``'s write list for one step: the journalled original back under ``tag``,
    guarded (the tag must still be at ``now``, the digest the conversion wrote)."""
    put = ManifestPut(tag, original, media_type)
    return WritePlan(repository=repository, guard=TagGuard(tag, now), tag=put)


def _refusal(location: Location, refused: list[Decision]) -> str:
    names = ", ".join(d.attached.referrer.name for d in refused)
    return (
        f"{location}: refusing to convert: {len(refused)} signature(s) name a digest that "
        f"changes and would no longer verify: {names}; re-sign the new digests with "
        "--sign-with 'COMMAND {ref}' (or pass --break-signatures to leave them behind)"
    )


def _sign_steps(found: list[Decision], plan: Plan, target: Target) -> tuple[SignStep, ...]:
    """One run per manifest whose old digest carried a signature that the conversion breaks,
    children before parents (the plan's node order)."""
    signed = {d.node.old_digest for d in found if d.action in (RESIGNED, WOULD_RESIGN)}
    ordered = [n for n in plan.nodes if n.old_digest in signed]  # children before parents
    registry = target.location.registry if isinstance(target.location, Reference) else ""
    return tuple(
        SignStep(
            path=n.path,
            registry=registry,
            repository=target.repository,
            tag=target.tag if n is plan.root else None,  # a child is reached by digest
            old_digest=n.old_digest,
            new_digest=n.new_digest,
        )
        for n in ordered
    )


def _copy(
    d: Decision,
    target: Target,
    cross: bool,
    puts: list[ManifestPut],
    blobs: list[Blob],
    fallback_adds: dict[Digest, list[ManifestPut]],
) -> str | None:
    """Add the writes that put a copy of ``d``'s referrer at the target, naming the node's new
    digest; the copy's name (tag or digest), None when it is there already."""
    ref = d.attached.referrer
    got = d.attached.manifest
    node = d.node
    if got is None:
        return None  # not read (a dry run): nothing to copy
    data = got.data
    if node.changed and ref.kind not in COSIGN_KINDS:
        subject = rf.subject_descriptor(node.new_media_type, node.new_digest, len(node.new_data))
        data = rf.retarget(data, subject, f"{ref.name}")
    if ref.kind in COSIGN_KINDS:  # linked by its tag name only: same bytes, new name
        tag = cosign_tag(node.new_digest, ref.kind)
        if tag in target.tags:
            return None
        _with_tree(d, cross, puts, blobs)
        puts.append(ManifestPut(tag, data, got.media_type, role=_cosign_role(ref.kind)))
        return tag
    _with_tree(d, cross, puts, blobs)
    put = ManifestPut(str(Digest.of(data)), data, got.media_type)
    puts.append(put)
    if not target.referrers_api:
        fallback_adds.setdefault(node.new_digest, []).append(put)
    return put.ref


def _cosign_role(kind: str) -> TagRole:
    return (
        COSIGN_SBOM
        if kind == COSIGN_SBOM
        else (COSIGN_SIGNATURE if kind == COSIGN_SIGNATURE else COSIGN_ATTESTATION)
    )


def _with_tree(d: Decision, cross: bool, puts: list[ManifestPut], blobs: list[Blob]) -> None:
    """Towards another repository a referrer's own children and blobs go first."""
    tree = d.attached.tree
    if not cross or tree is None:
        return
    for child in tree.walk()[:-1]:
        puts.append(ManifestPut(str(child.digest), child.data, child.media_type))
    blobs.extend(b for n in tree.walk() for b in n.blobs)


def _fallback(subject: Digest, copies: list[ManifestPut], target: Target) -> ManifestPut | None:
    """The fallback tag ``sha256-<new hex>`` with the copies added (None: nothing new)."""
    tag = fallback_tag(subject)
    existing = target.fallback.get(subject)
    what = f"{target.location.store_name}/{target.repository}:{tag}"
    additions = [rf.referrer_descriptor(c.data, c.media_type, what) for c in copies]
    data = rf.merge_fallback_index(existing.data if existing else None, additions, what)
    if data is None:
        return None
    old = existing.digest if existing else None
    return ManifestPut(tag, data, mt.OCI_INDEX, role=REFERRERS_FALLBACK, old=old)


def _backup(source: Source, target: Target) -> ManifestPut | None:
    """In place: the original root under the backup tag, unless it is there already."""
    if target.backup_tag is None or not target.in_place or not source.plan.changed:
        return None
    root = source.plan.root
    if target.backup_now == root.old_digest:
        return None
    return ManifestPut(
        target.backup_tag, root.old_data, root.old_media_type, role=BACKUP, old=target.backup_now
    )


def _guard(source: Source, target: Target, options: ConvertOptions, wrote: bool) -> TagGuard | None:
    """Re-read the tag just before it moves, where a window was open since it was read.

    The guard is one HEAD between reading the tag and moving it: it narrows the window in
    which another writer's change would be overwritten unseen, it cannot close it (the HEAD
    and the PUT are two requests; a registry offers no conditional PUT).

    In place the window is open when more than the root's own PUT follows its GET: an index
    (children read and written), a schema1 image (layers streamed, a config uploaded), a backup
    tag, referrer copies or sign runs. Towards another repository the tag was read before the
    whole tree was copied, so the guard is kept (unless ``force``) wherever the tag existed,
    and wherever the repository did.

    It is dropped for a tag that did not exist in a repository that did not exist
    (``target.fresh``): the repository was absent when this run first listed it, and the
    reader claimed the tag for this one reference, so no other reference of the run can write
    it (a second one that maps to the same tag is not ``fresh`` and keeps its guard). What is
    left is a writer outside this run creating that repository and then that very tag while
    this reference's blobs are copied: a second run of the same migration, which writes the
    same bytes (the conversion is deterministic, so the tag ends where either would put it),
    or someone pushing into a repository the migration is bringing into being at that moment,
    which the journal then records as created, not replaced (docs/migration.md). Two
    migrations with different sources into one destination prefix at once are not told apart;
    run them one after the other, or split them with ``--shard`` (shards never share a tag)."""
    if options.force or target.tag is None:
        return None
    if target.in_place:
        if target.location.digest is not None:  # pinned by digest: the tag was never read
            return None
        window = len(source.tree.walk()) > 1 or bool(source.plan.new_blobs) or wrote
        return TagGuard(target.tag, source.plan.root.old_digest) if window else None
    if not target.tag_read:
        return None
    if target.fresh and target.tag_now is None:
        return None
    return TagGuard(target.tag, target.tag_now)


def _move(put: ManifestPut, role: TagRole) -> Moved:
    return Moved(put.ref, role, str(put.old) if put.old else None, str(put.digest))


def _out(d: Decision, new_name: str | None) -> ReferrerOut:
    from oci_normalize.result_models import ReferrerOut

    ref = d.attached.referrer
    return ReferrerOut(
        subject=str(ref.subject),
        new_subject=str(d.node.new_digest),
        kind=ref.kind,
        name=ref.name,
        artifact_type=ref.artifact_type,
        signed=ref.signed,
        action=d.action,
        new_name=new_name,
    )


def render_backup_tag(template: str, tag: str) -> str:
    """``{tag}-docker`` → ``v1-docker``; the result must be a valid tag. Parsed, not given to
    ``str.format``: a bare ``{tag}`` is the only field (``{tag.x}``, ``{tag:>999999}`` refused)."""
    shown = printable(template, limit=100)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidReferenceError(
            f"--backup-tag {shown!r}: not a template ({exc}); only {{tag}} may be used"
        ) from exc
    if any(name not in (None, "tag") or spec or conv for _, name, spec, conv in parsed):
        raise InvalidReferenceError(
            f"--backup-tag {shown!r}: only {{tag}} may be used in the template"
        )
    name = "".join(text + (tag if field_ is not None else "") for text, field_, _, _ in parsed)
    try:
        Reference.parse(f"localhost/x:{name}")
    except InvalidReferenceError as exc:
        raise InvalidReferenceError(
            f"--backup-tag {shown!r} gives {printable(name, limit=140)!r}, not a valid tag"
        ) from exc
    if name == tag:
        raise InvalidReferenceError(f"--backup-tag {shown!r} names the tag being converted")
    return name
