"""Safe in-place rewrites: find what points at the old digests, refuse or re-attach, back up.

Reading (before anything moves): :func:`discover` lists cosign tags, OCI referrers and buildkit
attestations of every manifest whose digest changes; :func:`prepare` decides, per item, to
refuse (signed, without ``break_signatures``), to re-attach (unsigned: a copy whose ``subject``
names the new digest) or to leave it, and checks the backup tag. What it decides is data
(:class:`Prepared`): the writer (:func:`~.push.execute`) puts the copies and the backup tag in
after the children, then re-reads the tag when :func:`needs_guard` says a window was open, and
moves it. Nothing old is ever deleted.

Request budget: one ``tags/list`` per repository and one referrers-API probe per registry, both
cached in a :class:`ReferrerCache` that lives as long as the :class:`~oci_normalize.client.Client`.
On a registry without the API (distribution 2.8) the fallback tag ``sha256-<hex>`` is looked up
in the cached tag list, so a reference with nothing attached costs no further request.
"""

from __future__ import annotations

import string
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final, Literal

from oci_normalize import mediatypes as mt
from oci_normalize.convert import referrers as rf
from oci_normalize.convert.push import DEFAULT_BLOB_CONCURRENCY, ManifestPut
from oci_normalize.digest import Digest
from oci_normalize.errors import ReferenceError_, RefusedError
from oci_normalize.models import Node, Plan, PlannedNode
from oci_normalize.reference import Reference
from oci_normalize.results import (
    ANNOTATION_UPDATED,
    BACKUP,
    BLOCKS,
    BUILDKIT_ATTESTATION,
    COSIGN_SBOM,
    LEFT,
    OCI_REFERRER,
    REATTACHED,
    REFERRERS_FALLBACK,
    STALE,
    WOULD_REATTACH,
    ReferrerAction,
    TagRole,
)
from oci_normalize.store.registry import Registry
from oci_normalize.text import printable

if TYPE_CHECKING:  # the result models are imported where built: importing this costs no pydantic
    from oci_normalize.results import ReferrerOut, TagMove


@dataclass(frozen=True, kw_only=True)
class ConvertOptions:
    """How an in-place conversion treats what points at the old digest.

    ``force``: skip the re-read of the tag before it moves. ``backup_tag``: a template such as
    ``{tag}-docker``; the original manifest is tagged there first. ``break_signatures``: convert
    even when signatures point at the old digest (they become stale). ``referrers``: re-attach
    unsigned referrers to the new digest. ``before_tag``: called just before the tag is
    re-read and moved (a seam for tests that play another writer; None in production).
    ``blob_concurrency``: blobs streamed at once when a copy goes to another repository.
    """

    force: bool = False
    backup_tag: str | None = None
    break_signatures: bool = False
    referrers: bool = True
    before_tag: Callable[[], None] | None = None
    blob_concurrency: int = DEFAULT_BLOB_CONCURRENCY


DEFAULT_CONVERT_OPTIONS: Final = ConvertOptions()


class ReferrerCache:
    """Per-client memory of tag lists (per repository) and referrers-API support (per registry).

    Tags this tool writes are added to the cached list, so a batch sees its own writes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._tags: dict[tuple[str, str], set[str]] = {}
        self._api: dict[str, bool] = {}

    def _key_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def tags(self, registry: Registry, repository: str) -> frozenset[str]:
        key = (registry.registry, repository)
        with self._key_lock(key):
            with self._lock:
                cached = self._tags.get(key)
            if cached is None:
                cached = set(registry.list_tags(repository))
                with self._lock:
                    self._tags[key] = cached
            with self._lock:
                return frozenset(cached)

    def prime(self, registry: str, repository: str, tags: Iterable[str]) -> None:
        """Remember a tag list read elsewhere (batch enumerates every repository anyway)."""
        with self._lock:
            self._tags.setdefault((registry, repository), set(tags))

    def note_tag(self, registry: str, repository: str, tag: str) -> None:
        with self._lock:
            cached = self._tags.get((registry, repository))
            if cached is not None:
                cached.add(tag)

    def referrers_index(self, registry: Registry, repository: str, digest: Digest) -> bytes | None:
        """The referrers API's answer, or None when this registry lacks the API.

        The first call per registry is the probe (other threads wait for its verdict); after
        that, registries without the API cost nothing and those with it are asked in parallel.
        """
        with self._lock:
            supported = self._api.get(registry.registry)
        if supported is None:
            with self._key_lock((registry.registry, "")):
                with self._lock:
                    supported = self._api.get(registry.registry)
                if supported is None:
                    data = registry.referrers(repository, digest)
                    with self._lock:
                        self._api[registry.registry] = data is not None
                    return data
        return registry.referrers(repository, digest) if supported else None

    def has_api(self, registry: str) -> bool:
        with self._lock:
            return self._api.get(registry, False)


def discover(
    registry: Registry, cache: ReferrerCache, repository: str, subjects: Iterable[Digest]
) -> list[rf.Referrer]:
    """cosign tags and OCI referrers of each subject digest in ``repository``."""
    tags = cache.tags(registry, repository)
    found: list[rf.Referrer] = []
    for subject in dict.fromkeys(subjects):
        found.extend(rf.cosign_referrers(subject, tags))
        what = f"{registry.registry}/{repository} referrers of {subject.short}"
        index = cache.referrers_index(registry, repository, subject)
        if index is None and rf.fallback_tag(subject) in tags:
            index = registry.get_manifest(repository, rf.fallback_tag(subject), what=what).data
        if index is not None:
            for ref in rf.referrers_from_index(subject, index, what):
                found.append(_typed(registry, repository, ref) if not ref.artifact_type else ref)
    return found


def _typed(registry: Registry, repository: str, ref: rf.Referrer) -> rf.Referrer:
    """A referrer listed without artifactType, typed from its manifest: an unlisted type must
    not let a signature pass as unsigned (one GET, only for such listings)."""
    assert ref.digest is not None
    what = f"{registry.registry}/{repository}@{ref.digest}"
    got = registry.get_manifest(repository, str(ref.digest), expected=ref.digest, what=what)
    artifact_type = rf.referrer_descriptor(got.data, got.media_type, what).get("artifactType")
    return replace(ref, artifact_type=artifact_type, signed=rf.is_signature(artifact_type))


def needs_guard(tree: Node, plan: Plan, prepared: Prepared) -> bool:
    """Whether the tag must be re-read just before it moves.

    The guard protects the window in which other requests run between reading the tag and
    writing it. When the tag's PUT directly follows its GET — a single manifest, no blob the
    plan created, no backup, nothing found pointing at it — the GET already is the guard. An
    index (children read and written), a schema1 image (layers streamed, a config uploaded),
    a backup tag or referrers (read, re-attached) keep it.
    """
    return (
        len(tree.walk()) > 1
        or bool(plan.new_blobs)
        or bool(prepared.writes)
        or bool(prepared.referrers)
    )


def render_backup_tag(template: str, tag: str) -> str:
    """``{tag}-docker`` → ``v1-docker``; the result must be a valid tag. Parsed, not given to
    ``str.format``: a bare ``{tag}`` is the only field (``{tag.x}``, ``{tag:>999999}`` refused)."""
    shown = printable(template, limit=100)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ReferenceError_(
            f"--backup-tag {shown!r}: not a template ({exc}); only {{tag}} may be used"
        ) from exc
    if any(name not in (None, "tag") or spec or conv for _, name, spec, conv in parsed):
        raise ReferenceError_(f"--backup-tag {shown!r}: only {{tag}} may be used in the template")
    name = "".join(text + (tag if field_ is not None else "") for text, field_, _, _ in parsed)
    try:
        Reference.parse(f"localhost/x:{name}")
    except ReferenceError_ as exc:
        raise ReferenceError_(
            f"--backup-tag {shown!r} gives {printable(name, limit=140)!r}, not a valid tag"
        ) from exc
    if name == tag:
        raise ReferenceError_(f"--backup-tag {shown!r} names the tag being converted")
    return name


@dataclass(frozen=True)
class Write(ManifestPut):
    """One manifest PUT with what it means: ``role`` for tags (the TagMove role), ``old`` where
    such a tag pointed before."""

    role: TagRole | Literal[""] = ""
    old: Digest | None = None


@dataclass
class Prepared:
    """What an in-place conversion will write before its tag moves, and what it reports."""

    referrers: list[ReferrerOut] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    backup_tag: str | None = None
    refusal: str | None = None

    def in_push_order(self) -> list[Write]:
        """Referrer copies (by digest) first, then tags, the backup tag last."""
        return sorted(self.writes, key=lambda w: (bool(w.role), w.role == BACKUP))

    def referrer_puts(self, root: PlannedNode) -> tuple[ManifestPut, ...]:
        """The referrers step of the writer: the new root by digest first when a copy names it
        as its subject, then copies by digest, then tags (fallback indexes, cosign sbom tags)."""
        writes = [w for w in self.in_push_order() if w.role != BACKUP]
        head: list[ManifestPut] = []
        if any(not w.role for w in writes):
            head.append(ManifestPut(str(root.new_digest), root.new_data, root.new_media_type))
        return (*head, *writes)

    def backup_put(self) -> ManifestPut | None:
        return next((w for w in self.writes if w.role == BACKUP), None)

    def tag_moves(self) -> list[TagMove]:
        from oci_normalize.results import TagMove

        return [
            TagMove(
                tag=w.ref,
                role=w.role,
                old_digest=str(w.old) if w.old else None,
                new_digest=str(w.digest),
            )
            for w in self.in_push_order()
            if w.role
        ]


def prepare(
    *,
    registry: Registry,
    cache: ReferrerCache,
    source: Reference,
    tree: Node,
    plan: Plan,
    options: ConvertOptions,
    dry_run: bool,
) -> Prepared:
    """Discover, decide and (unless ``dry_run``) read what re-attachment needs.

    Raises :class:`RefusedError` before anything is written when signatures would break (and
    ``break_signatures`` is off) or the backup tag points elsewhere; in a dry run the refusal is
    returned as ``refusal`` instead, so the user sees the whole picture.
    """
    repo = source.repository
    changed = {n.old_digest: n for n in plan.changed}
    found = discover(registry, cache, repo, changed)
    found += rf.buildkit_attestations(tree, plan)
    out = Prepared()
    decided = [(ref, _decide(ref, changed[ref.subject], options)) for ref in found]
    out.referrers = [item for _, item in decided]
    signed = [ref for ref in found if ref.signed]
    if signed and not options.break_signatures:
        names = ", ".join(ref.name for ref in signed)
        out.refusal = (
            f"{source}: refusing to convert: {len(signed)} signature(s) name the old digest "
            f"and would no longer verify: {names}; they must be re-signed after conversion "
            "(pass --break-signatures to convert anyway)"
        )
        if not dry_run:
            raise RefusedError(out.refusal, details=tuple(r.model_dump() for r in out.referrers))

    tags = cache.tags(registry, repo)
    if options.backup_tag is not None and source.tag is not None:
        out.backup_tag = render_backup_tag(options.backup_tag, source.tag)
        try:
            backup = _backup_write(registry, repo, out.backup_tag, plan.root, tags, source)
        except RefusedError as exc:
            if not dry_run:
                raise
            out.refusal = out.refusal or str(exc)
            backup = None
        if backup is not None:
            out.writes.append(backup)
    if dry_run:
        return out

    reattach_api = cache.has_api(registry.registry)
    fallback_additions: dict[Digest, list[Write]] = {}
    for i, (ref, item) in enumerate(decided):
        if item.action != WOULD_REATTACH:
            continue
        new = changed[ref.subject]
        write = _reattach(registry, repo, ref, new, tags)
        new_name = None
        if write is not None:  # None: the copy is there already (a re-run)
            out.writes.append(write)
            new_name = write.ref if write.role else str(write.digest)
            if ref.kind == OCI_REFERRER and not reattach_api:
                fallback_additions.setdefault(new.new_digest, []).append(write)
        out.referrers[i] = item.model_copy(update={"action": REATTACHED, "new_name": new_name})
    for subject, copies in fallback_additions.items():
        out.writes.extend(_fallback_write(registry, repo, subject, copies, tags))
    return out


def _decide(ref: rf.Referrer, new: PlannedNode, options: ConvertOptions) -> ReferrerOut:
    action: ReferrerAction
    if ref.signed:
        action = STALE if options.break_signatures else BLOCKS
    elif ref.kind == BUILDKIT_ATTESTATION:
        action = ANNOTATION_UPDATED
    else:
        action = WOULD_REATTACH if options.referrers else LEFT
    from oci_normalize.results import ReferrerOut

    return ReferrerOut(
        subject=str(ref.subject),
        new_subject=str(new.new_digest),
        kind=ref.kind,
        name=ref.name,
        artifact_type=ref.artifact_type,
        signed=ref.signed,
        action=action,
        new_name=str(ref.digest) if ref.kind == BUILDKIT_ATTESTATION else None,
    )


def _reattach(
    registry: Registry, repo: str, ref: rf.Referrer, new: PlannedNode, tags: frozenset[str]
) -> Write | None:
    """The copy that re-attaches ``ref`` to ``new``'s digest, or None if it exists already."""
    if ref.kind == COSIGN_SBOM:
        # cosign's attachment is linked by its tag name only: same bytes under the new name.
        target = rf.cosign_tags(new.new_digest)
        new_tag = next(t for t, k in target.items() if k == COSIGN_SBOM)
        if new_tag in tags:
            return None
        got = registry.get_manifest(repo, ref.name)
        return Write(new_tag, got.data, got.media_type, role=COSIGN_SBOM)
    assert ref.digest is not None
    got = registry.get_manifest(repo, str(ref.digest), expected=ref.digest)
    subject = rf.subject_descriptor(new.new_media_type, new.new_digest, len(new.new_data))
    data = rf.retarget(got.data, subject, f"{registry.registry}/{repo}@{ref.digest}")
    return Write(str(Digest.of(data)), data, got.media_type)


def _fallback_write(
    registry: Registry, repo: str, subject: Digest, copies: list[Write], tags: frozenset[str]
) -> list[Write]:
    """The fallback tag ``sha256-<new hex>`` with the copies added (for registries without the
    referrers API)."""
    tag = rf.fallback_tag(subject)
    existing = registry.get_manifest(repo, tag) if tag in tags else None
    what = f"{registry.registry}/{repo}:{tag}"
    additions = [rf.referrer_descriptor(c.data, c.media_type, what) for c in copies]
    data = rf.merge_fallback_index(existing.data if existing else None, additions, what)
    if data is None:
        return []
    old = existing.digest if existing else None
    return [Write(tag, data, mt.OCI_INDEX, role=REFERRERS_FALLBACK, old=old)]


def _backup_write(
    registry: Registry,
    repo: str,
    backup: str,
    root: PlannedNode,
    tags: frozenset[str],
    source: Reference,
) -> Write | None:
    """The backup tag's write (same bytes as the original root), None if already in place.

    Refuses when the backup tag exists and points at anything else.
    """
    if backup in tags:
        now = registry.head_manifest(repo, backup)
        if now == root.old_digest:
            return None
        if now is not None:
            raise RefusedError(
                f"{source}: backup tag {backup!r} already exists and points at {now}, not at "
                f"the original {root.old_digest}; choose another --backup-tag"
            )
    return Write(backup, root.old_data, root.old_media_type, role=BACKUP)
