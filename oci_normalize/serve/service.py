"""``serve`` put together: queue, workers, reconcile, HTTP, signals; and ``--status``.

:func:`run_service` returns the process exit code (0 after a SIGTERM/SIGINT drain). The CLI
builds :class:`ServeConfig` from its options and the client from the shared connection options.
"""

from __future__ import annotations

import importlib
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

from oci_normalize import api
from oci_normalize.batch.journal import Journal
from oci_normalize.errors import OciNormalizeError
from oci_normalize.serve.app import EventsApp, HttpServer, Intake
from oci_normalize.serve.defaults import DEFAULT_MAX_ATTEMPTS, DEFAULT_SERVE_CONCURRENCY
from oci_normalize.serve.events import MAX_BODY_BYTES, Scope
from oci_normalize.serve.logs import TEXT, Logger
from oci_normalize.serve.metrics import Metrics
from oci_normalize.serve.queue import QUEUE_FILE, SqliteQueue, WorkQueue, open_sqlite, status_of
from oci_normalize.serve.reconcile import (
    DEFAULT_RECONCILE_S,
    EVENTS_JOURNAL_FILE,
    MAX_JOURNAL_BYTES,
    Reconciler,
    rotated,
)
from oci_normalize.serve.worker import Mode, Processor, WorkerPool
from oci_normalize.serve.written import WRITTEN_FILE, WrittenDigests

#: Threads waitress answers HTTP requests with.
HTTP_THREADS: Final = 8
NATS_SCHEME: Final = "nats://"


class ServeError(OciNormalizeError):
    """``serve`` cannot start (bad option combination, state or queue unusable)."""


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    mode: Mode
    scope: Scope
    listen: tuple[str, int]
    state: Path
    token: str | None
    queue_url: str | None = None  # nats://HOST:PORT/STREAM; None: SQLite in state
    events_url: str | None = None  # nats://…: consume events from NATS as well
    reconcile_every: float = DEFAULT_RECONCILE_S
    concurrency: int = DEFAULT_SERVE_CONCURRENCY
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    grace: float = 20.0
    log_format: str = TEXT


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ServeError(f"--listen {text!r}: expected ADDR:PORT, e.g. 127.0.0.1:8080")
    return host, int(port)


_UNITS: Final = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, option: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h``, ``1d`` (``0``: off) as seconds."""
    raw = text.strip().lower()
    number = raw.rstrip("smhd")
    unit = raw[len(number) :]
    try:
        value = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        value = -1.0
    if not (0 <= value <= 366 * 86400.0):
        raise ServeError(f"{option} {text!r}: expected a duration such as 30s, 15m, 1h or 0")
    return value


def open_queue(config: ServeConfig) -> WorkQueue:
    if config.queue_url is None:
        return open_sqlite(config.state)
    if not config.queue_url.startswith(NATS_SCHEME):
        raise ServeError(f"--queue {config.queue_url!r}: expected nats://HOST:PORT/STREAM")
    module = _optional("oci_normalize.serve.natsqueue", "--queue nats://")
    queue: WorkQueue = module.open_queue(config.queue_url)
    return queue


def _optional(name: str, what: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ServeError(f"{what} is not available in this build ({exc})") from exc


@dataclass
class _Stop:
    event: threading.Event = field(default_factory=threading.Event)
    signum: int = 0


def run_service(config: ServeConfig, client: api.Client, *, log: Logger | None = None) -> int:
    log = log or Logger(config.log_format)
    config.state.mkdir(parents=True, exist_ok=True)
    metrics = Metrics()
    queue = open_queue(config)
    written = WrittenDigests(config.state / WRITTEN_FILE)
    metrics.watch(queue.depth, lambda: len(queue.parked()))
    app = EventsApp(
        Intake(scope=config.scope, queue=queue, token=config.token), metrics=metrics, log=log
    )
    journal = None
    if config.mode.to is None and not config.mode.check_only:
        journal = Journal(rotated(config.state / EVENTS_JOURNAL_FILE, MAX_JOURNAL_BYTES))
    processor = Processor(client, config.mode, written, journal=journal, log=log)
    pool = WorkerPool(
        queue,
        processor.process,
        metrics=metrics,
        log=log,
        concurrency=config.concurrency,
        max_attempts=config.max_attempts,
    )
    reconciler = Reconciler(
        client,
        mode=config.mode,
        scope=config.scope,
        state=config.state,
        concurrency=config.concurrency,
        written=written,
        metrics=metrics,
        log=log,
    )
    host, port = config.listen
    server = HttpServer(app, host, port, threads=HTTP_THREADS, max_body=MAX_BODY_BYTES)
    events_sub = None
    if config.events_url is not None:
        module = _optional("oci_normalize.serve.natsevents", "--events nats://")
        events_sub = module.subscribe(config.events_url, app.accept)
    stop = _Stop()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.signum = signum
        stop.event.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    server.start()
    pool.start()
    app.mark_ready()
    if config.reconcile_every > 0:  # 0: events only, not even a sweep at start
        reconciler.start(config.reconcile_every)
    log(
        "started",
        listen=f"{host}:{port}",
        registry=config.mode.registry,
        mode=_mode_name(config.mode),
        queue=shown_queue(config),
        depth=queue.depth(),
    )
    try:
        while not stop.event.wait(1.0):
            pass
    finally:
        began = time.monotonic()
        app.drain()
        reconciler.stop()
        if events_sub is not None:
            events_sub.close()
        released = pool.stop(max(config.grace - 1.0, 0.0))
        log("stopping", signal=stop.signum, released=released, depth=_safe_depth(queue))
        server.close()
        queue.close()
        written.close()
        if journal is not None:
            journal.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
        log("stopped", seconds=round(time.monotonic() - began, 3))
    return 0


def _mode_name(mode: Mode) -> str:
    if mode.check_only:
        return "check-only"
    return f"to {mode.to}" if mode.to is not None else "in-place"


def shown_queue(config: ServeConfig) -> str:
    """The queue for the log: a NATS URL without its user and password."""
    if config.queue_url is None:
        return str(config.state / QUEUE_FILE)
    scheme, _, rest = config.queue_url.partition("://")
    authority, slash, path = rest.partition("/")
    host = authority.rpartition("@")[2]
    return f"{scheme}://{host}{slash}{path}"


def _safe_depth(queue: WorkQueue) -> int:
    try:
        return queue.depth()
    except Exception:  # noqa: BLE001
        return -1


Status = dict[str, Any]


def status(state: Path, queue_url: str | None = None) -> Status:
    """Depth and parked items of the queue in ``state`` (for ``serve --status``), or of the
    shared NATS stream with ``queue_url``; read only, so a running ``serve`` keeps its leases."""
    if queue_url is not None:
        if not queue_url.startswith(NATS_SCHEME):
            raise ServeError(f"--queue {queue_url!r}: expected nats://HOST:PORT/STREAM")
        found: Status = _optional("oci_normalize.serve.natsqueue", "--queue nats://").status(
            queue_url
        )
        return found
    path = state / QUEUE_FILE
    if not path.is_file():
        raise ServeError(f"--state {state}: no queue here (serve has not run with this state)")
    return status_of(SqliteQueue(path, read_only=True))
