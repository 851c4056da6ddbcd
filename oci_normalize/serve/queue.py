"""The work queue: what ``serve`` acknowledged and has not finished yet.

:class:`WorkQueue` is the protocol every queue follows (the embedded SQLite one here, the NATS
JetStream one in :mod:`.natsqueue`). An item is a (repository, tag or digest) pair and the time
its event arrived. :meth:`~WorkQueue.put` returns only once the items are durable, so the HTTP
side answers 2xx after it; an item already waiting is not added twice. A worker takes a
:class:`Lease`, then acknowledges, retries (later), parks (gives up, with a reason) or releases
(gives it back unfinished on shutdown).

:class:`SqliteQueue` is the default: one file in ``--state DIR`` (WAL, synchronous commits).
Leases held by a process that was killed are taken again on the next open.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

#: File name of the embedded queue inside ``--state DIR``.
QUEUE_FILE: Final = "queue.sqlite"
#: Longest single wait inside :meth:`SqliteQueue.take` before it looks again (delayed items).
POLL_S: Final = 0.5
#: Seconds SQLite waits for a lock held by another connection before failing.
BUSY_TIMEOUT_S: Final = 30.0

READY: Final = "ready"
LEASED: Final = "leased"
PARKED: Final = "parked"


@dataclass(frozen=True)
class WorkItem:
    repository: str
    ref: str  # a tag, or "sha256:…"
    received: float  # unix time the event arrived (for the latency histogram)


@dataclass(frozen=True)
class Lease:
    item: WorkItem
    attempt: int  # 1 on the first take
    token: str


class WorkQueue(Protocol):
    def put(self, items: Sequence[WorkItem]) -> None: ...

    def take(self, timeout: float) -> Lease | None: ...

    def ack(self, lease: Lease) -> None: ...

    def retry(self, lease: Lease, delay: float, reason: str) -> None: ...

    def park(self, lease: Lease, reason: str) -> None: ...

    def release(self, lease: Lease) -> None: ...

    def depth(self) -> int: ...

    def parked(self) -> list[tuple[WorkItem, str]]: ...

    def close(self) -> None: ...


_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repository TEXT NOT NULL,
    ref TEXT NOT NULL,
    received REAL NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    token TEXT,
    reason TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS items_waiting ON items(repository, ref) WHERE state = 'ready';
CREATE INDEX IF NOT EXISTS items_next ON items(state, not_before, id);
CREATE UNIQUE INDEX IF NOT EXISTS items_token ON items(token);
"""


class SqliteQueue:
    """:class:`WorkQueue` in one SQLite file; every change committed before the call returns.

    One process owns the file (one replica); threads share it through one connection and a lock.
    ``clock`` (unix seconds) decides when a delayed retry is due: tests pass their own.
    """

    def __init__(
        self, path: Path, *, clock: Callable[[], float] = time.time, read_only: bool = False
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._closed = False
        target = f"file:{path}?mode=ro" if read_only else str(path)
        self._db = sqlite3.connect(
            target,
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,
            uri=read_only,
        )
        if read_only:  # serve --status beside a running serve: look, take nothing back
            return
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._lock:
            self._db.executescript(_SCHEMA)
            self._recover()
        self._intake = _GroupCommit(path, self._insert)

    def _recover(self) -> None:
        """Leases a killed process held go back to the queue (their attempt still counts).

        One waiting row per reference: a leased row goes if the reference already waits, or if
        an older leased row of it stays (two workers may each have held one).
        """
        with self._tx():
            self._db.execute(
                "DELETE FROM items WHERE state = ? AND EXISTS (SELECT 1 FROM items o "
                "WHERE o.repository = items.repository AND o.ref = items.ref "
                "AND (o.state = ? OR (o.state = ? AND o.id < items.id)))",
                (LEASED, READY, LEASED),
            )
            self._db.execute(
                "UPDATE items SET state = ?, token = NULL, not_before = 0 WHERE state = ?",
                (READY, LEASED),
            )

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def put(self, items: Sequence[WorkItem]) -> None:
        self._check_open()
        if items:
            self._intake.put(items)  # committed (with whatever arrived meanwhile) on return
        with self._lock:
            self._ready.notify_all()

    @staticmethod
    def _insert(db: sqlite3.Connection, items: list[WorkItem]) -> None:
        with _Transaction(db):
            db.executemany(
                "INSERT OR IGNORE INTO items (repository, ref, received, state) "
                "VALUES (?, ?, ?, ?)",
                [(i.repository, i.ref, i.received, READY) for i in items],
            )

    def take(self, timeout: float) -> Lease | None:
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._lock:
            while True:
                self._check_open()
                lease = self._claim()
                if lease is not None:
                    return lease
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._ready.wait(min(left, POLL_S))

    def _claim(self) -> Lease | None:
        token = secrets.token_hex(12)
        with self._tx():
            row = self._db.execute(
                "SELECT id, repository, ref, received, attempts FROM items "
                "WHERE state = ? AND not_before <= ? ORDER BY not_before, id LIMIT 1",
                (READY, self._clock()),
            ).fetchone()
            if row is None:
                return None
            row_id, repository, ref, received, attempts = row
            self._db.execute(
                "UPDATE items SET state = ?, token = ?, attempts = ? WHERE id = ?",
                (LEASED, token, attempts + 1, row_id),
            )
        return Lease(WorkItem(repository, ref, received), attempts + 1, token)

    def ack(self, lease: Lease) -> None:
        with self._lock:
            self._check_open()
            with self._tx():
                self._db.execute("DELETE FROM items WHERE token = ?", (lease.token,))
                # A success also settles an earlier give-up for the same reference.
                self._db.execute(
                    "DELETE FROM items WHERE state = ? AND repository = ? AND ref = ?",
                    (PARKED, lease.item.repository, lease.item.ref),
                )

    def retry(self, lease: Lease, delay: float, reason: str) -> None:
        self._back(lease, not_before=self._clock() + max(delay, 0.0), reason=reason, taken=True)

    def release(self, lease: Lease) -> None:
        self._back(lease, not_before=0.0, reason=None, taken=False)

    def _back(self, lease: Lease, *, not_before: float, reason: str | None, taken: bool) -> None:
        """The leased row waits again; if a newer event already queued the same reference,
        that row stands for both and this one goes."""
        with self._lock:
            self._check_open()
            with self._tx():
                waiting = self._db.execute(
                    "SELECT 1 FROM items WHERE state = ? AND repository = ? AND ref = ?",
                    (READY, lease.item.repository, lease.item.ref),
                ).fetchone()
                if waiting:
                    self._db.execute("DELETE FROM items WHERE token = ?", (lease.token,))
                else:
                    self._db.execute(
                        "UPDATE items SET state = ?, token = NULL, not_before = ?, reason = ?, "
                        "attempts = attempts - ? WHERE token = ?",
                        (READY, not_before, reason, 0 if taken else 1, lease.token),
                    )
            self._ready.notify_all()

    def park(self, lease: Lease, reason: str) -> None:
        with self._lock:
            self._check_open()
            with self._tx():
                self._db.execute(
                    "DELETE FROM items WHERE state = ? AND repository = ? AND ref = ?",
                    (PARKED, lease.item.repository, lease.item.ref),
                )
                self._db.execute(
                    "UPDATE items SET state = ?, token = NULL, reason = ? WHERE token = ?",
                    (PARKED, reason, lease.token),
                )

    def depth(self) -> int:
        with self._lock:
            self._check_open()
            row = self._db.execute(
                "SELECT COUNT(*) FROM items WHERE state IN (?, ?)", (READY, LEASED)
            ).fetchone()
        return int(row[0])

    def parked(self) -> list[tuple[WorkItem, str]]:
        with self._lock:
            self._check_open()
            rows = self._db.execute(
                "SELECT repository, ref, received, reason FROM items WHERE state = ? ORDER BY id",
                (PARKED,),
            ).fetchall()
        return [(WorkItem(r, ref, t), reason or "") for r, ref, t, reason in rows]

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()
                if hasattr(self, "_intake"):
                    self._intake.close()
            self._ready.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise QueueClosedError("the work queue is closed")


class QueueClosedError(RuntimeError):
    """A call on a queue after :meth:`~WorkQueue.close` (a worker outliving shutdown)."""


class _GroupCommit:
    """Puts from many threads share commits: while one transaction is being made durable, the
    items that arrive wait and go together in the next one (one fsync for all of them).

    A connection of its own, so that takes and acks on the main one do not wait behind it
    longer than SQLite's write lock needs.
    """

    def __init__(
        self, path: Path, insert: Callable[[sqlite3.Connection, list[WorkItem]], None]
    ) -> None:
        self._db = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA synchronous=FULL")
        self._insert = insert
        self._cond = threading.Condition()
        self._open: list[WorkItem] = []  # the batch being filled
        self._open_no = 0
        self._done_no = -1  # the last batch committed (or failed)
        self._failed: tuple[int, BaseException] | None = None
        self._committing = False
        self._closed = False

    def put(self, items: Sequence[WorkItem]) -> None:
        with self._cond:
            if self._closed:
                raise QueueClosedError("the work queue is closed")
            self._open.extend(items)
            mine = self._open_no
            while self._done_no < mine:
                if self._committing:
                    self._cond.wait()
                    continue
                self._commit_open()
            if self._failed is not None and self._failed[0] == mine:
                raise self._failed[1]

    def _commit_open(self) -> None:
        """Called with the condition held: commit the open batch, releasing it meanwhile."""
        batch, number = self._open, self._open_no
        self._open, self._open_no = [], number + 1
        self._committing = True
        self._cond.release()
        error: BaseException | None = None
        try:
            self._insert(self._db, batch)
        except BaseException as exc:  # noqa: BLE001 - handed to every put of the batch
            error = exc
        finally:
            self._cond.acquire()
        self._committing = False
        self._done_no = number
        if error is not None:
            self._failed = (number, error)
        self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            while self._committing:
                self._cond.wait()
            self._db.close()


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def open_sqlite(state: Path, *, clock: Callable[[], float] = time.time) -> SqliteQueue:
    """The embedded queue in ``state`` (created, with its parents, if missing)."""
    state.mkdir(parents=True, exist_ok=True)
    return SqliteQueue(state / QUEUE_FILE, clock=clock)


def status_of(queue: WorkQueue) -> dict[str, Any]:
    """``serve --status``: a queue's depth and parked items with their reasons (the queue is
    closed afterwards; nothing is taken from it)."""
    try:
        return {
            "depth": queue.depth(),
            "parked": [
                {
                    "repository": item.repository,
                    "ref": item.ref,
                    "received": item.received,
                    "reason": reason,
                }
                for item, reason in queue.parked()
            ],
        }
    finally:
        queue.close()
