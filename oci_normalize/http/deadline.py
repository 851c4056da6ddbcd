"""An overall deadline per response, on top of requests' per-read timeout.

requests' ``timeout`` bounds each wait for the next byte, so a server that sends one byte a
second never trips it and can keep a read going for ever. Here every response is also bounded as
a whole: :func:`armed` makes a :class:`Deadline` current for the calling thread; the connections
of a :class:`DeadlineAdapter` (mounted by :func:`oci_normalize.http.adapter.mount`) hand it their
socket when they start waiting for the answer, and one watchdog thread shuts that socket down
when the deadline passes. The blocked read then fails, and the caller sees
:attr:`Deadline.expired` to say why.

A deadline stays armed until :meth:`Deadline.disarm` (the caller closed the response); a
streaming body can be given more time once its length is known (:meth:`Deadline.extend`).

Deadlines are timed on their :class:`Watchdog`'s clock; a watchdog made with a fake clock and
``background=False`` fires only when :meth:`Watchdog.fire_due` is called, so tests move time
instead of sleeping.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

from oci_normalize.clock import SYSTEM_CLOCK, Clock

_local = threading.local()


class Deadline:
    """``seconds`` for one response, counted from when the request has been sent.

    ``covers_sending``: the clock starts when the request starts instead, so that sending its
    body is bounded too (an upload to a server that reads one byte a second). ``watchdog``
    fires it (default: the process's one watchdog, on the system clock).
    """

    def __init__(
        self, seconds: float, *, covers_sending: bool = False, watchdog: Watchdog | None = None
    ) -> None:
        self._watchdog = _WATCHDOG if watchdog is None else watchdog
        self.seconds = seconds
        self.covers_sending = covers_sending
        self.expires_at = float("inf")
        self.expired = False
        self._armed = True
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self, sock: socket.socket | None) -> None:
        """The request is sent and ``sock`` waits for the answer: the clock runs from now."""
        with self._lock:
            if not self._armed:
                return
            if sock is not None:
                self._sockets.append(sock)
            first = self.expires_at == float("inf")
            if first:
                self.expires_at = self._watchdog.clock.monotonic() + self.seconds
        if first:
            self._watchdog.watch(self)

    def extend(self, seconds: float) -> None:
        """Allow ``seconds`` more from the original start (a long body announced its length)."""
        with self._lock:
            if self.expires_at != float("inf"):
                self.expires_at += max(seconds, 0.0)

    def disarm(self) -> None:
        with self._lock:
            self._armed = False
            self._sockets.clear()

    def fire(self) -> None:
        """Shut the sockets down: the blocked read returns at once with an error."""
        with self._lock:
            if not self._armed:
                return
            self.expired = True
            self._armed = False
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            # The plain socket's shutdown, also for TLS: it only touches the descriptor.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    @property
    def armed(self) -> bool:
        return self._armed


#: Heap size at which disarmed deadlines are first swept out. Small: a deadline outlives its
#: response in the heap until its time (minutes), so a bar in the thousands would hold that
#: many dead deadlines (with their locks) for the whole of a long run; the sweep is amortised
#: (the bar is twice what stays armed), so a low bar costs about one check per request.
_PRUNE_MIN: Final = 256


class Watchdog:
    """Fires deadlines in time order: in one daemon thread (``background``), or each time
    :meth:`fire_due` is called."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, background: bool = True) -> None:
        self.clock = clock
        self._background = background
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._prune_at = _PRUNE_MIN

    def watch(self, deadline: Deadline) -> None:
        with self._cond:
            entry = (deadline.expires_at, next(self._seq), deadline)
            # The thread sleeps until the earliest deadline; one that comes later (the usual
            # case: every deadline has the same length) need not wake it, a context switch per
            # request saved.
            sooner = not self._heap or entry < self._heap[0]
            heapq.heappush(self._heap, entry)
            if len(self._heap) >= self._prune_at:
                # Disarmed deadlines wait in the heap until their time; a long fast run would
                # pile them up, so drop them now and then (amortised: the bar doubles).
                self._heap = [e for e in self._heap if e[2].armed]
                heapq.heapify(self._heap)
                self._prune_at = max(_PRUNE_MIN, 2 * len(self._heap))
            if not self._background:
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="oci-normalize-deadlines", daemon=True
                )
                self._thread.start()
            elif sooner:
                self._cond.notify()

    def fire_due(self) -> list[Deadline]:
        """Fire every deadline whose time has come; those it fired (disarmed ones are dropped)."""
        with self._cond:
            due = self._due()
        for deadline in due:
            deadline.fire()
        return [d for d in due if d.expired]

    def _due(self) -> list[Deadline]:
        """Pop the deadlines due now (an extended one goes back in its new place). The caller
        holds ``_cond``."""
        due: list[Deadline] = []
        now = self.clock.monotonic()
        while self._heap:
            when, _, deadline = self._heap[0]
            if when > now:
                break
            heapq.heappop(self._heap)
            if deadline.armed and deadline.expires_at > now:  # extended meanwhile
                heapq.heappush(self._heap, (deadline.expires_at, next(self._seq), deadline))
            else:
                due.append(deadline)
        return due

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                wait = self._heap[0][0] - self.clock.monotonic()
                if wait > 0:
                    # Computed and waited on under one hold of the lock: a sooner deadline
                    # added meanwhile cannot be missed, its notify wakes this wait.
                    self._cond.wait(wait)
                    continue
            self.fire_due()


_WATCHDOG = Watchdog()


@contextmanager
def armed(deadline: Deadline) -> Iterator[Deadline]:
    """Make ``deadline`` the one the calling thread's next response waits under."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield deadline
    finally:
        _local.deadline = previous


def _current() -> Deadline | None:
    return getattr(_local, "deadline", None)


def _sending(sock: socket.socket | None) -> None:
    """A request starts (or its connection opens): a deadline that covers sending runs now."""
    deadline = _current()
    if deadline is not None and deadline.covers_sending:
        deadline.start(sock)


def _waiting(sock: socket.socket | None) -> None:
    """The request is sent and the answer is awaited: every deadline runs from here at latest."""
    deadline = _current()
    if deadline is not None:
        deadline.start(sock)


class _DeadlineHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _sending(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _sending(self.sock)  # None on a fresh connection: connect() hands the socket over
        super().request(*args, **kwargs)

    def getresponse(self) -> Any:  # the urllib3 type, kept loose for its stubs
        _waiting(self.sock)
        return super().getresponse()


class _DeadlineHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _sending(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _sending(self.sock)
        super().request(*args, **kwargs)

    def getresponse(self) -> Any:
        _waiting(self.sock)
        return super().getresponse()


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_POOLS: dict[str, type[HTTPConnectionPool]] = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections report their socket to the current :class:`Deadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(_POOLS)
        return manager
