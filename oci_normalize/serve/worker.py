"""The worker pool: leases in, one conversion per item through :func:`Processor.process`.

:meth:`Processor.process` is the one adapter between a queued item and the project's normal
paths (``api.convert`` in place or into ``--to``, ``api.check`` for ``--check-only``); keep it
small, the rest of ``serve`` only sees its :class:`Outcome`.

Before converting in place it reads the root manifest once: when that is a digest this process
wrote (see :mod:`.written`) with OCI types, or a single OCI image manifest whose config and
layers are all OCI, the item is done with that one GET and no write. That is how ``serve`` never
loops on its own pushes.

Failures are retried with exponential backoff, then parked after ``max_attempts`` with the
reason; a refusal (a signed image) is parked at once, since retrying cannot change it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from oci_normalize import api
from oci_normalize import mediatypes as mt
from oci_normalize.batch.destination import Destination
from oci_normalize.batch.journal import Journal
from oci_normalize.digest import Digest
from oci_normalize.errors import JournalError, NotFoundError, OciNormalizeError, RefusedError
from oci_normalize.manifest import VerifiedManifest, descriptors, parse_body
from oci_normalize.once import OncePerKey
from oci_normalize.options import DEFAULT_CONVERT_OPTIONS, ConvertOptions
from oci_normalize.reference import Reference
from oci_normalize.result_models import ManifestChange
from oci_normalize.results import CONVERTED, COPIED
from oci_normalize.serve.defaults import DEFAULT_MAX_ATTEMPTS
from oci_normalize.serve.metrics import OWN_WRITE, Metrics
from oci_normalize.serve.queue import Lease, QueueClosedError, WorkItem, WorkQueue
from oci_normalize.serve.written import WrittenDigests
from oci_normalize.text import printable

#: First retry delay; each further attempt doubles it, up to MAX_BACKOFF_S.
BASE_BACKOFF_S: Final = 1.0
MAX_BACKOFF_S: Final = 300.0
#: A tag not written yet is usually there within milliseconds: its retries start sooner.
NOT_FOUND_BACKOFF_FACTOR: Final = 0.25
#: How long a worker waits for a lease before looking at the stop flag again.
TAKE_TIMEOUT_S: Final = 0.5

# Outcome statuses beyond the api's own (converted, already-oci, copied, artifact).
GONE: Final = "gone"  # the tag or digest no longer exists: nothing to do
CHECKED_OCI: Final = "checked-oci"
CHECKED_DOCKER: Final = "checked-docker"


@dataclass(frozen=True, kw_only=True)
class Mode:
    """What to do with each item: in place (default), into ``to``, or only check."""

    registry: str
    to: Destination | None = None
    check_only: bool = False
    options: ConvertOptions = DEFAULT_CONVERT_OPTIONS


@dataclass(frozen=True)
class Outcome:
    status: str
    old_digest: str | None = None
    new_digest: str | None = None
    detail: str = ""


def backoff(attempt: int) -> float:
    """Seconds before retry number ``attempt`` (1-based): 1, 2, 4, 8 … capped."""
    return float(min(BASE_BACKOFF_S * 2 ** max(attempt - 1, 0), MAX_BACKOFF_S))


class Processor:
    def __init__(
        self,
        client: api.Client,
        mode: Mode,
        written: WrittenDigests,
        *,
        journal: Journal | None = None,
        log: Callable[..., None] | None = None,
    ) -> None:
        self._client = client
        self._mode = mode
        self._written = written
        self._journal = journal
        self._log = log
        self._busy: OncePerKey[tuple[str, str], None] = OncePerKey()

    def process(self, item: WorkItem) -> Outcome:
        """Do what the mode says for one item; raises OciNormalizeError on failure.

        One reference is worked on by one thread at a time: the event of a tag being converted
        right now waits, then finds the digest just written and costs one GET.
        """
        with self._busy.exclusive((item.repository, item.ref)):
            return self._process(item)

    def _process(self, item: WorkItem) -> Outcome:
        ref = reference_of(self._mode.registry, item)
        client = self._client.view()  # tags and signatures pushed since the last item
        if self._mode.check_only:
            checked = api.check(ref, client=client)
            status = CHECKED_OCI if checked.oci or checked.artifact else CHECKED_DOCKER
            detail = "; ".join(f"{f.where}: {f.media_type}" for f in checked.findings[:5])
            return Outcome(status, checked.digest, None, detail)
        if self._mode.to is not None:
            result = api.convert(
                ref, self._mode.to.of(ref), client=client, options=self._mode.options
            )
            return Outcome(result.status, result.old_digest, result.new_digest)
        root = client.registry(ref).get_manifest(ref.repository, ref.ref, what=str(ref))
        if self._already_done(root):
            return Outcome(OWN_WRITE, str(root.digest), str(root.digest))
        result = api.convert(ref, client=client, options=self._mode.options, root=root)
        if result.status == CONVERTED and result.new_digest:
            self._written.add(result.new_digest)
            self._record(ref, root, result.old_digest, result.new_digest, result.changes)
        return Outcome(result.status, result.old_digest, result.new_digest)

    def _record(
        self,
        ref: Reference,
        root: VerifiedManifest,
        old: str | None,
        new: str,
        changes: list[ManifestChange],
    ) -> None:
        """A ``converted`` journal line with the original root bytes, for ``rollback``.

        Only when the tag converted is the root read above (it did not move in between), and
        not for schema1, whose served body differs from the verified payload.
        """
        if self._journal is None or old != str(root.digest) or mt.is_schema1(root.media_type):
            return
        new_type = next((c.new_media_type for c in changes if c.path == "@"), None)
        try:
            self._journal.record(
                str(ref),
                CONVERTED,
                old_digest=root.digest,
                old_media_type=root.media_type,
                old_manifest=root.data,
                new_digest=Digest.parse(new),
                new_media_type=new_type,
            )
        except JournalError as exc:
            if self._log is not None:
                self._log("journal", reference=str(ref), outcome="not-journalled", detail=str(exc))

    def _already_done(self, root: VerifiedManifest) -> bool:
        media_type = mt.base(root.media_type)
        if mt.is_docker(media_type):
            return False
        if str(root.digest) in self._written:
            return True
        if media_type != mt.OCI_MANIFEST:
            return False  # an index: its children need reading, which convert does
        try:
            body = parse_body(root.data, "root manifest")
            found = descriptors(body, media_type, "root manifest")
        except OciNormalizeError:
            return False
        return all(mt.base(str(d.get("mediaType", ""))) in mt.KNOWN_OCI for _, d in found)


def reference_of(registry: str, item: WorkItem) -> Reference:
    """The item as a reference on the configured registry, parsed like user input again."""
    if item.ref.startswith("sha256:"):
        return Reference.parse(f"{registry}/{item.repository}@{item.ref}")
    return Reference.parse(f"{registry}/{item.repository}:{item.ref}")


ProcessFn = Callable[[WorkItem], Outcome]
LogFn = Callable[..., None]


class WorkerPool:
    """``concurrency`` threads taking leases until :meth:`stop`."""

    def __init__(
        self,
        queue: WorkQueue,
        process: ProcessFn,
        *,
        metrics: Metrics,
        log: LogFn,
        concurrency: int,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._process = process
        self._metrics = metrics
        self._log = log
        self._max_attempts = max_attempts
        self._clock = clock
        self._stop = threading.Event()
        self._held: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._loop, name=f"serve-worker-{i}", daemon=True)
            for i in range(concurrency)
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                lease = self._queue.take(TAKE_TIMEOUT_S)
            except QueueClosedError:
                return
            if lease is None:
                continue
            with self._lock:
                self._held[lease.token] = lease
            try:
                self.handle(lease)
            except QueueClosedError:
                return
            finally:
                with self._lock:
                    self._held.pop(lease.token, None)

    def handle(self, lease: Lease) -> None:
        """Process one lease and settle it: ack, retry later, or park."""
        item = lease.item
        started = self._clock()
        try:
            outcome = self._process(item)
        except NotFoundError as exc:
            # distribution sends the push event before it writes the tag: not there yet is
            # retried; still missing after the last attempt, it was deleted, and that is fine.
            if lease.attempt >= self._max_attempts:
                self._queue.ack(lease)
                self._log(
                    "item",
                    repository=item.repository,
                    ref=item.ref,
                    outcome=GONE,
                    detail=str(exc),
                )
                return
            self._retry(lease, str(exc), factor=NOT_FOUND_BACKOFF_FACTOR)
            return
        except RefusedError as exc:
            self._give_up(lease, f"refused: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - any failure of one item is retried, never fatal
            reason = (
                str(exc) if isinstance(exc, OciNormalizeError) else f"{type(exc).__name__}: {exc}"
            )
            self._metrics.failed.inc()
            if lease.attempt >= self._max_attempts:
                self._give_up(lease, reason)
                return
            self._retry(lease, reason)
            return
        self._queue.ack(lease)
        self._metrics.note(outcome.status)
        if outcome.status in (CONVERTED, COPIED):
            self._metrics.latency.observe(max(self._clock() - item.received, 0.0))
        self._log(
            "item",
            repository=item.repository,
            ref=item.ref,
            outcome=outcome.status,
            old=outcome.old_digest,
            new=outcome.new_digest,
            seconds=round(self._clock() - started, 3),
            detail=outcome.detail or None,
        )

    def _retry(self, lease: Lease, reason: str, *, factor: float = 1.0) -> None:
        delay = backoff(lease.attempt) * factor
        self._queue.retry(lease, delay, reason)
        self._log(
            "item",
            repository=lease.item.repository,
            ref=lease.item.ref,
            outcome="retry",
            attempt=lease.attempt,
            delay=delay,
            detail=reason,
        )

    def _give_up(self, lease: Lease, reason: str) -> None:
        shown = printable(reason)
        self._queue.park(lease, shown)
        self._metrics.parked.inc()
        self._log(
            "item",
            repository=lease.item.repository,
            ref=lease.item.ref,
            outcome="parked",
            attempt=lease.attempt,
            detail=shown,
        )

    def stop(self, grace: float) -> int:
        """Stop taking; wait up to ``grace`` seconds for items in hand, then give back the rest
        (they stay queued for the next start). Returns how many were given back."""
        self._stop.set()
        deadline = time.monotonic() + grace
        for t in self._threads:
            if t.is_alive():
                t.join(max(deadline - time.monotonic(), 0.0))
        with self._lock:
            left = list(self._held.values())
            self._held.clear()
        for lease in left:
            try:
                self._queue.release(lease)
            except QueueClosedError:
                break
        return len(left)
