"""Convert many references in place, concurrently, over one pooled :class:`~.client.Client`.

Two kinds of task share one thread pool:

1. *read*: GET each reference's root manifest (one request per tag);
2. *convert*: once every tag of a repository is read, tags sharing a root digest form a group
   that fetches its children once, plans once, pushes the changed children once, then moves
   each tag through :func:`~.pipeline.push_in_place` (signatures, referrers, backup, guard).

Requests: one GET per manifest, one PUT per changed manifest, a guard HEAD per tag only where a
window was open between its GET and its PUT (:func:`~.inplace.needs_guard`), no verify HEAD when
the registry echoes our digest; a v2s2 image costs 2, a two-platform list 7 for its 3 manifests.
``--to`` (another registry) is :mod:`.migrate`: the same reads and plan, another writer target.

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
from oci_normalize.batch.journal import Journal
from oci_normalize.batch.tally import Tally
from oci_normalize.client import Client
from oci_normalize.convert.inplace import DEFAULT_CONVERT_OPTIONS, ConvertOptions
from oci_normalize.convert.pipeline import Planned, prepare, push_in_place, read
from oci_normalize.convert.push import PushStats
from oci_normalize.digest import Digest
from oci_normalize.errors import JournalError, OciNormalizeError
from oci_normalize.manifest import Fetched, descriptors, parse_body
from oci_normalize.models import Node, Plan
from oci_normalize.reference import Reference
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
    WOULD_CONVERT,
    BatchStatus,
    BatchSummary,
    ManifestMove,
    RefResult,
    TreeKind,
)


@dataclass(frozen=True, kw_only=True)
class BatchOptions:
    concurrency: int = DEFAULT_CONCURRENCY
    dry_run: bool = False
    #: What ``convert`` does in place, per tag: guard (``force``), ``backup_tag``, signatures
    #: and referrers (see :class:`~.inplace.ConvertOptions`).
    convert_options: ConvertOptions = DEFAULT_CONVERT_OPTIONS


#: In-flight tasks per worker (see :func:`window`).
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
    root: Fetched


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

    def _read(self, ref: Reference) -> Fetched:
        if ref.tag is None:
            raise OciNormalizeError(f"{ref}: converting in place needs a tag to move")
        reg = self.client.registry(ref)
        return reg.get_manifest(ref.repository, ref.ref, expected=ref.digest, what=str(ref))

    def _convert(self, group: _Group) -> list[RefResult]:
        first = group.refs[0]
        root = group.root
        if root.digest in self.known_oci and _root_is_oci(root):
            return [self._result(ref, group, ALREADY_OCI, kind=KIND_OCI) for ref in group.refs]
        try:
            planned = read(self.client.registry(first), first.with_digest(root.digest), root)
            tree, plan = planned.tree, planned.plan
        except OciNormalizeError as exc:
            return [self._failed(ref, exc, group) for ref in group.refs]
        if plan.artifact is not None:  # counted apart, never a failure, never rewritten
            out = [
                self._result(ref, group, ARTIFACT, KIND_ARTIFACT, plan).model_copy(
                    update={"warnings": [f"artifact, left alone: {plan.artifact}"]}
                )
                for ref in group.refs
            ]
            return [self._noted(r, self._record(r, None)) for r in out]
        kind = classify(tree)
        if not plan.changed or self.options.dry_run:
            status: BatchStatus = ALREADY_OCI if not plan.changed else WOULD_CONVERT
            try:
                refusal = self._refusal(first, tree, plan) if plan.changed else None
            except OciNormalizeError as exc:
                return [self._failed(ref, exc, group, kind) for ref in group.refs]
            out = [
                self._result(ref, group, status, kind, plan)
                if refusal is None
                else self._result(ref, group, FAILED, kind, plan).model_copy(
                    update={"error": f"would refuse: {refusal}"}
                )
                for ref in group.refs
            ]
            return [self._noted(r, self._record(r, None)) for r in out]
        results = []
        children_pushed = False
        for ref in group.refs:
            pending = self._result(ref, group, PENDING, kind, plan)
            problem = self._record(pending, plan.root.old_data)
            if problem is not None:  # no move without its undo information on disk
                results.append(self._failed(ref, problem, group, kind, plan))
                continue
            stats = PushStats()
            try:
                pushed = self._move(tree, plan, ref, stats, with_children=not children_pushed)
            except OciNormalizeError as exc:
                # What landed before the failure (children, the backup tag) still counts.
                result = self._failed(ref, exc, group, kind, plan).model_copy(
                    update={"pushed_manifests": stats.manifests}
                )
            else:
                children_pushed = True
                result = pending.model_copy(
                    update={"status": CONVERTED, "pushed_manifests": pushed}
                )
            results.append(self._noted(result, self._record(result, plan.root.old_data)))
        return results

    def _refusal(self, ref: Reference, tree: Node, plan: Plan) -> str | None:
        """Why a real run would refuse this tag (signatures, backup tag), read-only."""
        planned = Planned(ref.with_tag(ref.tag or ""), tree, plan)
        options = self.options.convert_options
        return prepare(self.client, planned, options, dry_run=True).refusal

    def _move(
        self, tree: Node, plan: Plan, ref: Reference, stats: PushStats, *, with_children: bool
    ) -> int:
        """Convert one tag in place through the single-reference path; manifests pushed.

        After the first tag of a group, the children are there: only the root moves.
        """
        if not with_children:
            plan = Plan(nodes=(plan.root,), findings=plan.findings, warnings=plan.warnings)
        assert ref.tag is not None
        planned = Planned(reference=ref.with_tag(ref.tag), tree=tree, plan=plan)
        push_in_place(
            planned,
            client=self.client,
            options=self.options.convert_options,
            trust_echo=True,
            stats=stats,
        )
        return stats.manifests

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

    def _record(self, r: RefResult, old_manifest: bytes | None) -> JournalError | None:
        """Journal ``r``; the error instead of raising, so one bad write stops one move only."""
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


def _root_is_oci(root: Fetched) -> bool:
    """The journal vouches only for an index's children: the root's own types are checked."""
    node = Node(digest=root.digest, media_type=root.media_type, data=root.data, path="@")
    return classify(node) == KIND_OCI


def _groups(read: list[tuple[Reference, Fetched]]) -> list[_Group]:
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
        self.read: list[tuple[Reference, Fetched]] = []

    def read_done(
        self, ref: Reference, future: Future[Fetched], ready: deque[_Group]
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
