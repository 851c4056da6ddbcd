"""Many references, concurrently, over one pooled :class:`~oci_normalize.store.client.Client`.

Two kinds of task share one thread pool:

1. *read*: GET each reference's root manifest (one request per tag);
2. *convert*: once every tag of a repository is read, tags sharing a root digest form a group
   whose tree is read and planned once; each tag then goes through the one planner
   (:mod:`oci_normalize.convert.planner`): in place, or with ``destination`` (``--to``) into
   another registry. The first tag of a group brings the tree, its referrers and the sign runs;
   the others only move their tag.

Requests in place: one GET per manifest, one PUT per changed manifest, a guard HEAD per tag only
where a window was open between its GET and its PUT, no verify HEAD when the registry echoes our
digest; a v2s2 image costs 2, a two-platform list 7 for its 3 manifests.

A failing reference never stops the others: every outcome is a :class:`RefResult`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Container, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Final

from oci_normalize import mediatypes as mt
from oci_normalize.batch import DEFAULT_CONCURRENCY, MAX_CONCURRENCY
from oci_normalize.batch.destination import Destination
from oci_normalize.batch.journal import Journal
from oci_normalize.batch.tally import Tally
from oci_normalize.convert.pipeline import Signer, attach, read, read_target, sign_runs, write
from oci_normalize.convert.planner import Outcome, Source, Target, plan
from oci_normalize.convert.push import PushStats
from oci_normalize.digest import Digest
from oci_normalize.errors import HookError, JournalError, OciNormalizeError
from oci_normalize.manifest import VerifiedManifest, descriptors, parse_body
from oci_normalize.models import Node, Plan
from oci_normalize.options import DEFAULT_CONVERT_OPTIONS, ConvertOptions
from oci_normalize.reference import Reference
from oci_normalize.result_models import BatchSummary, ManifestMove, RefResult
from oci_normalize.results import (
    ALREADY_OCI,
    ARTIFACT,
    CONVERTED,
    FAILED,
    KIND_ARTIFACT,
    KIND_DOCKER,
    KIND_MIXED,
    KIND_OCI,
    PENDING,
    PRESENT,
    WOULD_CONVERT,
    BatchStatus,
    TreeKind,
)
from oci_normalize.store.client import Client


@dataclass(frozen=True, kw_only=True)
class BatchOptions:
    concurrency: int = DEFAULT_CONCURRENCY
    dry_run: bool = False
    #: What ``convert`` does in place, per tag: guard (``force``), ``backup_tag``, signatures
    #: and referrers (see :class:`~oci_normalize.options.ConvertOptions`).
    convert_options: ConvertOptions = DEFAULT_CONVERT_OPTIONS
    #: ``--to``: write each reference there instead of converting it in place.
    destination: Destination | None = None


WINDOW_PER_WORKER: Final = 4


def summarize(
    results: Iterable[RefResult],
    *,
    requests: int,
    seconds: float,
    dry_run: bool,
    shard: str | None = None,
    journal: str | None = None,
    destination: str | None = None,
) -> BatchSummary:
    """The summary of ``results``, counted one by one (:class:`~.tally.Tally`)."""
    return (
        Tally()
        .extend(results)
        .summary(
            requests=requests,
            seconds=seconds,
            dry_run=dry_run,
            shard=shard,
            journal=journal,
            destination=destination,
        )
    )


def failed(reference: str, error: str, *, repository: str = "") -> RefResult:
    return RefResult(reference=reference, repository=repository, status=FAILED, error=error)


def classify(tree: Node) -> TreeKind:
    """``oci``, ``docker`` (no OCI type anywhere) or ``mixed`` (both kinds in one tree)."""
    types: list[str] = []
    for node in tree.walk():
        types.append(node.media_type)
        if mt.is_schema1(node.media_type):
            continue
        try:
            body = parse_body(node.data, node.path)
            types.extend(d["mediaType"] for _, d in descriptors(body, node.media_type, node.path))
        except OciNormalizeError:
            continue
    docker = any(mt.is_docker(t) for t in types)
    oci = any(mt.base(t).startswith(mt.OCI_PREFIX) for t in types)
    if not docker:
        return KIND_OCI
    return KIND_MIXED if oci else KIND_DOCKER


def run(
    refs: Iterable[Reference],
    *,
    client: Client,
    options: BatchOptions = BatchOptions(),  # noqa: B008 - frozen
    journal: Journal | None = None,
    known_oci: Container[Digest] = frozenset(),
    on_result: Callable[[RefResult], None] | None = None,
) -> Iterator[RefResult]:
    """Convert every reference in place (or plan it, with ``dry_run``), lazily: the run
    advances as the returned iterator is consumed, and yields each result as it finishes.

    ``refs`` is read a bounded window ahead of what has finished (:func:`window`); give the
    tags of one repository one after another (the targets do), since a repository's tags are
    grouped by root digest once they are all read. ``on_result`` is called from the consuming
    thread with each result, just before it is yielded.
    """
    runner = _Runner(client, options, journal, known_oci)
    for result in runner.results(refs):
        if on_result is not None:
            on_result(result)
        yield result


def window(concurrency: int) -> int:
    """Reads and conversions in flight at once: enough to keep every worker busy while the
    results of the previous ones are handed out, and no more (each holds a manifest)."""
    return WINDOW_PER_WORKER * _workers(concurrency)


def _workers(concurrency: int) -> int:
    return max(1, min(concurrency, MAX_CONCURRENCY))


@dataclass
class _Group:
    refs: list[Reference]  # tags of one repository at one root digest, sorted
    root: VerifiedManifest


class _Runner:
    def __init__(
        self,
        client: Client,
        options: BatchOptions,
        journal: Journal | None,
        known_oci: Container[Digest],
    ) -> None:
        self.client = client
        self.options = options
        self.journal = journal
        self.known_oci = known_oci
        self.signer = Signer.of(options.convert_options)

    def run(self, refs: Iterable[Reference], emit: Callable[[RefResult], None]) -> None:
        """Run every reference, handing each result to ``emit`` as it finishes."""
        for result in self.results(refs):
            emit(result)

    def results(self, refs: Iterable[Reference]) -> Generator[RefResult, None, None]:
        """Every reference's result, as it finishes; ``refs`` is read lazily.

        At most :func:`window` references are taken from ``refs`` and not yet answered, with
        one exception: a repository with more tags than that is read whole before its first
        tag is answered (its tags are grouped by root digest), so then its tags are held.
        """
        todo = iter(refs)
        limit = window(self.options.concurrency)
        inflight: dict[Future[Any], _Read | _Group] = {}
        ready: deque[_Group] = deque()  # groups of finished repositories, waiting for a worker
        repo: _Repo | None = None  # the repository being read
        held = 0  # references taken from ``refs`` and not answered yet
        more = True
        with ThreadPoolExecutor(_workers(self.options.concurrency), "batch") as pool:
            try:
                while True:
                    while len(inflight) < limit and ready:  # finishing comes before reading on
                        group = ready.popleft()
                        inflight[pool.submit(self._convert, group)] = group
                    while more and len(inflight) < limit:
                        only_this_repo = repo is not None and held == repo.pending
                        if held >= limit and not only_this_repo:
                            break
                        ref = next(todo, None)
                        if ref is None or repo is None or repo.key != _key(ref):
                            if repo is not None:
                                repo.close(ready)
                            repo = None if ref is None else _Repo(_key(ref))
                        if ref is None or repo is None:
                            more = False
                            break
                        held += 1
                        repo.pending += 1
                        repo.outstanding += 1
                        inflight[pool.submit(self._read, ref)] = _Read(ref, repo)
                    if not inflight:
                        if ready:
                            continue
                        return
                    finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for future in finished:
                        task = inflight.pop(future)
                        if isinstance(task, _Read):
                            failure = task.repo.read_done(task.ref, future, ready)
                            if failure is not None:
                                held -= 1
                                yield self._failed(task.ref, failure)
                            continue
                        try:
                            group_results = future.result()
                        except Exception as exc:  # noqa: BLE001 - one group never stops the rest
                            group_results = [self._failed(r, exc) for r in task.refs]
                        for result in group_results:
                            held -= 1
                            yield result
            finally:
                for future in inflight:
                    future.cancel()

    def _read(self, ref: Reference) -> VerifiedManifest:
        if ref.tag is None and self.options.destination is not None:
            raise OciNormalizeError(f"{ref}: --to writes tags; give the reference a tag")
        if ref.tag is None:
            raise OciNormalizeError(f"{ref}: converting in place needs a tag to move")
        reg = self.client.registry(ref)
        return reg.get_manifest(ref.repository, ref.ref, expected=ref.digest, what=str(ref))

    def _target(self, ref: Reference) -> Reference:
        to = self.options.destination
        return ref if to is None else to.of(ref)

    def _convert(self, group: _Group) -> list[RefResult]:
        """One root digest's tags: read and plan once, then each tag through the planner."""
        first = group.refs[0]
        root = group.root
        in_place = self.options.destination is None
        if in_place and root.digest in self.known_oci and _root_is_oci(root):
            return [self._result(ref, group, ALREADY_OCI, kind=KIND_OCI) for ref in group.refs]
        try:
            src = read(self.client.registry(first), first.with_digest(root.digest), root)
        except OciNormalizeError as exc:
            return [self._failed(ref, exc, group) for ref in group.refs]
        p = src.plan
        if p.artifact is not None and in_place:  # counted apart, never a failure, never rewritten
            out = [
                self._result(ref, group, ARTIFACT, KIND_ARTIFACT, p).model_copy(
                    update={"warnings": [f"artifact, left alone: {p.artifact}"]}
                )
                for ref in group.refs
            ]
            return [self._noted(r, self._record(r, None)) for r in out]
        kind = classify(src.tree) if p.artifact is None else KIND_ARTIFACT
        if in_place and not p.changed:
            out = [self._result(ref, group, ALREADY_OCI, kind, p) for ref in group.refs]
            return [self._noted(r, self._record(r, None)) for r in out]
        options = self.options.convert_options
        dry_run = self.options.dry_run
        try:
            src = attach(self.client, src, same_repo=in_place, options=options, dry_run=dry_run)
        except OciNormalizeError as exc:
            return [self._failed(ref, exc, group, kind) for ref in group.refs]
        written: set[str] = set()  # target repositories this group's tree went to already
        shared: list[HookError] = []  # a failed re-sign fails every tag of the group
        said: set[tuple[str, str]] = set()  # signatures reported (once per group)
        return [self._one(ref, group, src, kind, written, shared, said) for ref in group.refs]

    def _one(
        self,
        ref: Reference,
        group: _Group,
        src: Source,
        kind: TreeKind,
        written: set[str],
        shared: list[HookError],
        said: set[tuple[str, str]],
    ) -> RefResult:
        """Plan and write one tag of a group (in place, or at its destination)."""
        options = self.options.convert_options
        dry_run = self.options.dry_run
        target = self._target(ref)
        moved = self.options.destination is not None
        base = self._result(ref, group, CONVERTED, kind, src.plan)
        if moved:
            base = base.model_copy(update={"destination": str(target)})
        try:
            tgt = read_target(
                self.client,
                src,
                target,
                options=options,
                read_tag=moved,
                tree_present=target.repository in written,
            )
        except OciNormalizeError as exc:
            return self._failed(ref, exc, group, kind)
        outcome = plan(src, tgt, options, dry_run=dry_run)
        base = _with_outcome(base, outcome, self.signer, tgt, said)
        if outcome.refusal is not None:
            error = f"would refuse: {outcome.refusal}" if dry_run else outcome.refusal
            result = base.model_copy(update={"status": FAILED, "error": error})
            return self._noted(result, self._record(result, None))
        if dry_run or outcome.present:
            result = base.model_copy(
                update={"status": PRESENT if outcome.present else WOULD_CONVERT}
            )
            return self._noted(result, self._record(result, None))
        undo = tgt.replaced.data if moved and tgt.replaced else None
        undo = src.plan.root.old_data if not moved else undo
        pending = base.model_copy(update={"status": PENDING})
        problem = self._record(pending, undo, tgt)
        if problem is not None:  # no move without its undo information on disk
            return base.model_copy(update={"status": FAILED, "error": str(problem)})
        stats = PushStats()
        try:
            if shared:
                raise shared[0]
            write(
                self.client,
                outcome,
                source=ref,
                target=target,
                options=options,
                signer=self.signer,
                stats=stats,
            )
        except OciNormalizeError as exc:
            if isinstance(exc, HookError) and not shared:
                shared.append(exc)
            # What landed before the failure (children, the backup tag) still counts.
            result = base.model_copy(
                update={"status": FAILED, "error": str(exc), "pushed_manifests": stats.manifests}
            )
        else:
            written.add(target.repository)
            ran = [x.model_copy(update={"ran": True}) for x in base.signing] if stats.signed else []
            update: dict[str, object] = {"pushed_manifests": stats.manifests}
            if ran:
                update["signing"] = ran
            result = base.model_copy(update=update)
        return self._noted(result, self._record(result, undo, tgt))

    def _result(
        self,
        ref: Reference,
        group: _Group,
        status: BatchStatus,
        kind: TreeKind | None = None,
        plan: Plan | None = None,
    ) -> RefResult:
        root = group.root
        changed = plan.changed if plan else ()
        return RefResult(
            reference=str(ref),
            repository=ref.repository,
            tag=ref.tag,
            status=status,
            kind=kind,
            old_digest=str(root.digest),
            old_media_type=root.media_type,
            new_digest=str(plan.root.new_digest) if plan else str(root.digest),
            new_media_type=plan.root.new_media_type if plan else root.media_type,
            moved=[
                ManifestMove(
                    path=n.path, old_digest=str(n.old_digest), new_digest=str(n.new_digest)
                )
                for n in changed
            ],
            same_digest=[str(r.tag) for r in group.refs if r != ref],
            warnings=list(plan.warnings) if plan else [],
        )

    def _failed(
        self,
        ref: Reference,
        exc: BaseException,
        group: _Group | None = None,
        kind: TreeKind | None = None,
        plan: Plan | None = None,
    ) -> RefResult:
        """A failed result; journalled here unless a move was attempted (the caller does)."""
        error = str(exc) if isinstance(exc, OciNormalizeError) else f"internal error: {exc!r}"
        if group is None:
            result = failed(str(ref), error, repository=ref.repository)
        else:
            base = self._result(ref, group, FAILED, kind, plan)
            result = base.model_copy(update={"error": error})
        if plan is None or isinstance(exc, JournalError):
            result = self._noted(result, self._record(result, None))
        return result

    @staticmethod
    def _noted(r: RefResult, problem: JournalError | None) -> RefResult:
        if problem is None:
            return r
        return r.model_copy(update={"warnings": [*r.warnings, f"not journalled: {problem}"]})

    def _record(
        self, r: RefResult, old_manifest: bytes | None, target: Target | None = None
    ) -> JournalError | None:
        """Journal ``r``; the error instead of raising, so one bad write stops one move only.

        Towards another registry the line names the destination tag and what it held before
        (what rollback restores); in place, the tag and its original."""
        if r.destination is not None:
            before = target.replaced if target is not None else None
            if before is None:
                return self._journal(r.destination, r, None, None, None)
            return self._journal(r.destination, r, before.digest, before.media_type, old_manifest)
        old_digest = Digest.parse(r.old_digest) if r.old_digest else None
        return self._journal(r.reference, r, old_digest, r.old_media_type, old_manifest)

    def _journal(
        self,
        reference: str,
        r: RefResult,
        old_digest: Digest | None,
        old_media_type: str | None,
        old_manifest: bytes | None,
    ) -> JournalError | None:
        """One journal line for ``reference``: ``r``'s outcome, with what the tag held before."""
        if self.journal is None:
            return None
        try:
            self.journal.record(
                reference,
                r.status,
                old_digest=old_digest,
                old_media_type=old_media_type,
                old_manifest=old_manifest,
                new_digest=Digest.parse(r.new_digest) if r.new_digest else None,
                new_media_type=r.new_media_type,
                error=r.error,
            )
        except JournalError as exc:
            return exc
        return None


def _with_outcome(
    r: RefResult,
    outcome: Outcome,
    signer: Signer | None,
    tgt: Target,
    said: set[tuple[str, str]],
) -> RefResult:
    """``r`` with what the plan says about signatures, referrers and sign runs; a signature is
    reported with the first tag of its group only (the others share it), so counts add up."""
    fresh = [x for x in outcome.signatures if (x.subject, x.name) not in said]
    said.update((x.subject, x.name) for x in fresh)
    update: dict[str, object] = {
        "signatures": fresh,
        "referrers": [x for x in outcome.referrers if not x.signed],
        "signing": sign_runs(outcome, signer, ran=False),
    }
    if tgt.replaced is not None:
        update["replaced_digest"] = str(tgt.replaced.digest)
    left = [x.name for x in outcome.signatures if x.action == "left-behind"]
    if left:
        update["warnings"] = [
            *r.warnings,
            f"{len(left)} signature(s) left behind on the old digest: {', '.join(left)}",
        ]
    return r.model_copy(update=update)


def _root_is_oci(root: VerifiedManifest) -> bool:
    """The journal vouches only for an index's children: the root's own types are checked."""
    node = Node(digest=root.digest, media_type=root.media_type, data=root.data, path="@")
    return classify(node) == KIND_OCI


def _groups(read: list[tuple[Reference, VerifiedManifest]]) -> list[_Group]:
    by_digest: dict[Digest, _Group] = {}
    for ref, fetched in sorted(read, key=lambda item: item[0].tag or ""):
        group = by_digest.get(fetched.digest)
        if group is None:
            by_digest[fetched.digest] = _Group(refs=[ref], root=fetched)
        else:
            group.refs.append(ref)
    return list(by_digest.values())


class _Repo:
    """One repository's tags while they are read: grouped by root digest once the last is."""

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key
        self.outstanding = 0  # reads submitted and not finished
        self.pending = 0  # tags taken and not yet grouped nor failed
        self.closed = False  # no more tags of it will come
        self.read: list[tuple[Reference, VerifiedManifest]] = []

    def read_done(
        self, ref: Reference, future: Future[VerifiedManifest], ready: deque[_Group]
    ) -> BaseException | None:
        """Note one finished read; the exception when it failed."""
        self.outstanding -= 1
        failure: BaseException | None = None
        try:
            self.read.append((ref, future.result()))
        except Exception as exc:  # noqa: BLE001 - one reference never stops the others
            failure = exc
            self.pending -= 1
        self._flush(ready)
        return failure

    def close(self, ready: deque[_Group]) -> None:
        self.closed = True
        self._flush(ready)

    def _flush(self, ready: deque[_Group]) -> None:
        if self.closed and self.outstanding == 0 and self.read:
            ready.extend(_groups(self.read))
            self.read = []
            self.pending = 0


@dataclass(frozen=True)
class _Read:
    ref: Reference
    repo: _Repo


def _key(ref: Reference) -> tuple[str, str]:
    return (ref.registry, ref.repository)
