"""What events miss: a sweep of the whole scope, as ``batch`` does, on start and periodically.

distribution keeps undelivered events in memory only; a registry restart, or ``serve`` being
down long enough, loses them. Each sweep enumerates the catalog and tags lazily
(:mod:`oci_normalize.batch.targets`) and runs the one batch runner (in place, or with ``--to``
as its destination; dry run with ``--check-only``) under its own journal in the state directory
(``reconcile.journal``; rollback reads it like any batch journal). Results are counted and let
go, so a sweep runs in the same constant memory as ``batch``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Final

from oci_normalize import api
from oci_normalize.batch.journal import Journal, KnownOci
from oci_normalize.batch.run import BatchOptions, run
from oci_normalize.batch.tally import Tally
from oci_normalize.batch.targets import Selection, stream_registry
from oci_normalize.errors import OciNormalizeError
from oci_normalize.result_models import RefResult
from oci_normalize.results import CONVERTED, FAILED, WOULD_CONVERT
from oci_normalize.serve.events import Scope
from oci_normalize.serve.logs import Logger
from oci_normalize.serve.metrics import Metrics
from oci_normalize.serve.worker import Mode
from oci_normalize.serve.written import WrittenDigests

JOURNAL_FILE: Final = "reconcile.journal"
#: Conversions driven by events, journalled as a batch would (``rollback`` reads it).
EVENTS_JOURNAL_FILE: Final = "events.journal"
#: Every sweep journals every reference; past this size the journal is set aside (one old copy,
#: ``reconcile.journal.1``, kept for rollback) and a fresh one begins.
MAX_JOURNAL_BYTES: Final = 64 * 1024 * 1024
DEFAULT_RECONCILE_S: Final = 3600.0


class Reconciler:
    def __init__(
        self,
        client: api.Client,
        *,
        mode: Mode,
        scope: Scope,
        state: Path,
        concurrency: int,
        written: WrittenDigests,
        metrics: Metrics,
        log: Logger,
        max_journal: int = MAX_JOURNAL_BYTES,
    ) -> None:
        self._max_journal = max_journal
        self._client = client
        self._mode = mode
        self._scope = scope
        self._journal_path = state / JOURNAL_FILE
        self._concurrency = concurrency
        self._written = written
        self._metrics = metrics
        self._log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> Tally:
        """One sweep of the scope, streamed (constant memory whatever the registry's size):
        references enumerated lazily, each result logged, counted and let go; failures of
        single references are counted, not raised."""
        client = self._client.view()
        selection = Selection(repos=self._scope.repos, tags=self._scope.tags)
        targets = stream_registry(
            client, self._mode.registry, selection, concurrency=self._concurrency
        )
        scope = self._scope
        refs = (
            r for r in targets.refs if not (scope.excludes(r.repository) or scope.is_backup(r.tag))
        )
        options = BatchOptions(
            concurrency=self._concurrency,
            dry_run=self._mode.check_only,
            convert_options=self._mode.options,
            destination=self._mode.to,
        )
        rotated(self._journal_path, self._max_journal)
        tally = Tally()

        def on_result(r: RefResult) -> None:
            tally.add(r)
            if r.status == CONVERTED and r.new_digest and self._mode.to is None:
                self._written.add(r.new_digest)
            if r.status in (CONVERTED, FAILED, WOULD_CONVERT):
                self._log(
                    "reconcile",
                    reference=r.reference,
                    outcome=r.status,
                    old=r.old_digest,
                    new=r.new_digest,
                    detail=r.error,
                )
            if r.status == CONVERTED:
                self._metrics.converted.inc()

        known = KnownOci(self._journal_path) if self._journal_path.exists() else None
        try:
            with Journal(self._journal_path) as journal:
                for _ in run(
                    refs,
                    client=client,
                    options=options,
                    journal=journal,
                    known_oci=known if known is not None and self._mode.to is None else (),
                    on_result=on_result,
                ):
                    pass
        finally:
            if known is not None:
                known.close()
        for what, why in targets.failures:
            self._log("reconcile", reference=what, outcome=FAILED, detail=why)
        return tally

    def start(self, every: float) -> None:
        """Sweep now in the background, then every ``every`` seconds (0: only this once)."""
        self._thread = threading.Thread(
            target=self._loop, args=(every,), name="serve-reconcile", daemon=True
        )
        self._thread.start()

    def _loop(self, every: float) -> None:
        while not self._stop.is_set():
            self._once()
            if every <= 0 or self._stop.wait(every):
                return

    def _once(self) -> None:
        self._log("reconcile", outcome="started")
        try:
            results = self.sweep()
        except (OciNormalizeError, OSError) as exc:
            self._metrics.reconciles.labels(result="failed").inc()
            self._log("reconcile", outcome="sweep-failed", detail=str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the next sweep tries again; serve goes on
            self._metrics.reconciles.labels(result="failed").inc()
            self._log("reconcile", outcome="sweep-failed", detail=f"{type(exc).__name__}: {exc}")
            return
        self._metrics.reconciles.labels(result="done").inc()
        counts = dict(results.statuses)
        self._log("reconcile", outcome="done", references=results.references, **counts)

    def stop(self) -> None:
        self._stop.set()


def rotated(path: Path, max_bytes: int) -> Path:
    """``path``, after moving it to ``PATH.1`` (replacing an older one) if it outgrew
    ``max_bytes``; ``rollback`` reads either."""
    if path.exists() and path.stat().st_size > max_bytes:
        path.replace(path.with_name(path.name + ".1"))
    return path
