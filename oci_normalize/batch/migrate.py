"""``batch … --to HOST[:PORT][/PREFIX]``: the same sweep, written into another registry.

Repository ``R`` of the source goes to ``HOST/PREFIX/R`` with the same tags, normalized on the
way. Per group of source tags sharing a root digest, the tree is read from the source and
planned once. Per destination repository, its tag list is read once; per tag, a listed
destination tag is read (its digest, and its bytes: the journal's undo information). Then the
writer puts blobs (streamed once per destination repository, mounted from a repository of the
destination that already holds them; a repository that did not exist needs no blob HEAD),
children, referrer copies, the guard (the destination tag must still be where it was read) and
the tag. A destination tag already at the planned digest is ``present``: nothing is written,
which is what makes an interrupted run resume by running it again. The source is only read.

Referrers follow the in-place rules (:mod:`~oci_normalize.convert.inplace`): a signature naming
a digest that changes refuses the reference unless ``break_signatures`` (then it stays behind:
it would not verify); unsigned referrers of a changed manifest are copied with ``subject``
naming the new digest (unless ``referrers`` is off); referrers of a manifest that keeps its
digest, signed or not, are copied as they are. A destination without the referrers API gets
the fallback tag ``sha256-<hex>`` as well.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Final

from oci_normalize import mediatypes as mt
from oci_normalize.batch.journal import Journal
from oci_normalize.batch.run import BatchOptions, _Group, _Runner, classify
from oci_normalize.batch.targets import registry_reference
from oci_normalize.client import Client
from oci_normalize.convert import inplace
from oci_normalize.convert import referrers as rf
from oci_normalize.convert.pipeline import read
from oci_normalize.convert.push import ManifestPut, TagGuard, execute, plan_writes
from oci_normalize.convert.tree import build_tree
from oci_normalize.digest import Digest
from oci_normalize.errors import (
    JournalError,
    NotFoundError,
    OciNormalizeError,
    ReferenceError_,
    RefusedError,
)
from oci_normalize.manifest import Fetched
from oci_normalize.models import Blob, Node, Plan, PlannedNode
from oci_normalize.reference import Reference
from oci_normalize.results import (
    CONVERTED,
    COSIGN_ATTESTATION,
    COSIGN_SBOM,
    COSIGN_SIGNATURE,
    FAILED,
    PENDING,
    PRESENT,
    WOULD_CONVERT,
    RefResult,
    TreeKind,
)
from oci_normalize.store.registry import Registry

COSIGN_KINDS: Final = frozenset({COSIGN_SIGNATURE, COSIGN_ATTESTATION, COSIGN_SBOM})


@dataclass(frozen=True)
class Destination:
    """``HOST[:PORT][/PREFIX]``: where ``--to`` puts each source repository."""

    registry: str
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> Destination:
        host, _, prefix = text.partition("/")
        prefix = prefix.strip("/")
        probe = registry_reference(host)
        if prefix:
            try:
                Reference.parse(f"{probe.registry}/{prefix}/x")
            except ReferenceError_ as exc:
                raise ReferenceError_(f"--to {text!r}: bad repository prefix {prefix!r}") from exc
        return cls(probe.registry, prefix)

    def of(self, ref: Reference) -> Reference:
        repository = f"{self.prefix}/{ref.repository}" if self.prefix else ref.repository
        return Reference(registry=self.registry, repository=repository, tag=ref.tag)

    def __str__(self) -> str:
        return f"{self.registry}/{self.prefix}" if self.prefix else self.registry


@dataclass
class Carried:
    """Referrers that follow the image: their blobs, their manifests (copies), what stays."""

    blobs: list[Blob] = field(default_factory=list)
    puts: list[ManifestPut] = field(default_factory=list)
    fallback: dict[Digest, list[ManifestPut]] = field(default_factory=dict)  # subject -> copies
    warnings: list[str] = field(default_factory=list)


class MigrationRunner(_Runner):
    """The batch runner with another destination: same reads, plan, journal and results."""

    def __init__(
        self, client: Client, options: BatchOptions, journal: Journal | None, to: Destination
    ) -> None:
        super().__init__(client, options, journal, frozenset())
        self.to = to
        self._replaced: dict[str, Fetched] = {}
        self._lock = threading.Lock()
        self._listing: dict[tuple[str, str], threading.Lock] = {}
        self._tags: dict[tuple[str, str], frozenset[str] | None] = {}

    def _read(self, ref: Reference) -> Fetched:
        if ref.tag is None:
            raise OciNormalizeError(f"{ref}: --to writes tags; give the reference a tag")
        return super()._read(ref)

    def _convert(self, group: _Group) -> list[RefResult]:
        first = group.refs[0]
        source = self.client.registry(first)
        try:
            planned = read(source, first.with_digest(group.root.digest), group.root)
            tree, plan = planned.tree, planned.plan
            kind = classify(tree)
        except OciNormalizeError as exc:
            return [self._failed(ref, exc, group) for ref in group.refs]
        try:
            carried = self._referrers(first, tree, plan)
        except OciNormalizeError as exc:
            if self.options.dry_run and isinstance(exc, RefusedError):
                exc = RefusedError(f"would refuse: {exc}")
            return [self._failed(ref, exc, group, kind) for ref in group.refs]
        written: set[str] = set()  # destination repositories that hold the tree already
        return [self._one(ref, group, tree, plan, kind, carried, written) for ref in group.refs]

    def _one(
        self,
        ref: Reference,
        group: _Group,
        tree: Node,
        plan: Plan,
        kind: TreeKind,
        carried: Carried,
        written: set[str],
    ) -> RefResult:
        dest = self.to.of(ref)
        assert dest.tag is not None
        base = self._result(ref, group, CONVERTED, kind, plan).model_copy(
            update={"destination": str(dest), "warnings": [*plan.warnings, *carried.warnings]}
        )
        dest_reg = self.client.registry(dest)
        try:
            tags = self._dest_tags(dest_reg, dest.repository)
            now = _read_tag(dest_reg, dest) if tags is not None and dest.tag in tags else None
        except OciNormalizeError as exc:
            return self._failed(ref, exc, group, kind).model_copy(update={"destination": str(dest)})
        if now is not None:
            self._replaced[str(dest)] = now
            base = base.model_copy(update={"replaced_digest": str(now.digest)})
        if self.options.dry_run or (now is not None and now.digest == plan.root.new_digest):
            done = now is not None and now.digest == plan.root.new_digest
            result = base.model_copy(update={"status": PRESENT if done else WOULD_CONVERT})
            return self._noted(result, self._record(result, None))
        pending = base.model_copy(update={"status": PENDING})
        problem = self._record(pending, None)
        if problem is not None:  # no move without its undo information on disk
            return base.model_copy(update={"status": FAILED, "error": str(problem)})
        options = self.options.convert_options
        guard = None if options.force else TagGuard(dest.tag, now.digest if now else None)
        writes = plan_writes(
            plan,
            repository=dest.repository,
            tag=dest.tag,
            source_repository=ref.repository,
            whole_tree=True,
            guard=guard,
            fresh=tags is None,
        )
        try:
            if dest.repository in written:  # another tag of this group brought the tree
                writes = replace(writes, new_blobs=(), blobs=(), children=())
            else:
                referrers = (*carried.puts, *self._fallback_puts(dest_reg, dest, carried))
                blobs = (*writes.blobs, *carried.blobs)
                writes = replace(writes, blobs=blobs, referrers=referrers)
            stats = execute(
                writes,
                dest=dest_reg,
                source=self.client.registry(ref),
                homes=self.client.blob_homes,
                blob_concurrency=options.blob_concurrency,
                trust_echo=True,
            )
        except OciNormalizeError as exc:
            result = base.model_copy(update={"status": FAILED, "error": str(exc)})
        else:
            written.add(dest.repository)
            result = base.model_copy(update={"pushed_manifests": stats.manifests})
        return self._noted(result, self._record(result, None))

    def _dest_tags(self, registry: Registry, repository: str) -> frozenset[str] | None:
        """The destination repository's tags, listed once per run; None: no such repository
        (then no blob in it needs looking for either)."""
        key = (registry.registry, repository)
        with self._lock:
            lock = self._listing.setdefault(key, threading.Lock())
        with lock:
            if key not in self._tags:
                try:
                    self._tags[key] = frozenset(registry.list_tags(repository))
                except NotFoundError:
                    self._tags[key] = None
            return self._tags[key]

    def _record(self, r: RefResult, old_manifest: bytes | None) -> JournalError | None:
        """Journal the destination tag's move: what it held before is what rollback restores."""
        if self.journal is None or r.destination is None:
            return super()._record(r, old_manifest)
        before = self._replaced.get(r.destination)
        if before is None:
            return self._journal(r.destination, r, None, None, None)
        return self._journal(r.destination, r, before.digest, before.media_type, before.data)

    # ---- referrers ------------------------------------------------------------------------------

    def _referrers(self, first: Reference, tree: Node, plan: Plan) -> Carried:
        """What follows the image (read at the source); RefusedError for signatures that break."""
        options = self.options.convert_options
        source = self.client.registry(first)
        by_old = {n.old_digest: n for n in plan.nodes}
        found = inplace.discover(source, self.client.referrers, first.repository, by_old)
        out = Carried()
        breaking = [r for r in found if r.signed and by_old[r.subject].changed]
        if breaking and not options.break_signatures:
            names = ", ".join(r.name for r in breaking)
            raise RefusedError(
                f"{first}: refusing to migrate: {len(breaking)} signature(s) name a digest that "
                f"changes and would no longer verify: {names}; re-sign after migrating (pass "
                "--break-signatures to migrate anyway; they stay behind)"
            )
        if breaking:
            out.warnings.append(
                f"{len(breaking)} signature(s) left behind (they name the old digest): "
                + ", ".join(r.name for r in breaking)
            )
        if self.options.dry_run:
            return out
        for ref in found:
            node = by_old[ref.subject]
            if ref in breaking or (not ref.signed and node.changed and not options.referrers):
                continue
            self._carry(source, first.repository, ref, node, out)
        return out

    def _carry(
        self, source: Registry, repo: str, ref: rf.Referrer, node: PlannedNode, out: Carried
    ) -> None:
        name = ref.name if ref.digest is None else str(ref.digest)
        got = source.get_manifest(repo, name, expected=ref.digest)
        at = Reference(registry=source.registry, repository=repo, digest=got.digest)
        referrer = build_tree(source, at, got)
        for child in referrer.walk()[:-1]:
            out.puts.append(ManifestPut(str(child.digest), child.data, child.media_type))
        out.blobs.extend(b for n in referrer.walk() for b in n.blobs)
        data = got.data
        if node.changed and ref.kind != COSIGN_SBOM:
            subject = rf.subject_descriptor(
                node.new_media_type, node.new_digest, len(node.new_data)
            )
            data = rf.retarget(data, subject, f"{source.registry}/{repo}@{got.digest}")
        if ref.kind in COSIGN_KINDS:  # linked by tag name only
            tags = rf.cosign_tags(node.new_digest)
            tag = next(t for t, k in tags.items() if k == ref.kind)
            out.puts.append(ManifestPut(tag, data, got.media_type))
            return
        put = ManifestPut(str(Digest.of(data)), data, got.media_type)
        out.puts.append(put)
        out.fallback.setdefault(node.new_digest, []).append(put)

    def _fallback_puts(
        self, dest_reg: Registry, dest: Reference, carried: Carried
    ) -> list[ManifestPut]:
        """Fallback-tag indexes at a destination without the referrers API (merged with what
        is there already)."""
        out: list[ManifestPut] = []
        cache = self.client.referrers
        for subject, copies in carried.fallback.items():
            if cache.referrers_index(dest_reg, dest.repository, subject) is not None:
                continue  # the API indexes the copies itself
            tag = rf.fallback_tag(subject)
            what = f"{dest_reg.registry}/{dest.repository}:{tag}"
            existing = _read_tag(dest_reg, dest.with_tag(tag))
            additions = [rf.referrer_descriptor(c.data, c.media_type, what) for c in copies]
            data = rf.merge_fallback_index(existing.data if existing else None, additions, what)
            if data is not None:
                out.append(ManifestPut(tag, data, mt.OCI_INDEX))
        return out


def _read_tag(registry: Registry, ref: Reference) -> Fetched | None:
    """The destination tag's manifest, or None when the tag (or its repository) is absent."""
    assert ref.tag is not None
    try:
        return registry.get_manifest(ref.repository, ref.tag, what=str(ref))
    except NotFoundError:
        return None
