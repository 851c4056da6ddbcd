"""One "once per key" primitive for the threads of a run (go-containerregistry's ``workers.Do``).

A batch asks for the same thing from many threads at once: the tag list of a repository, whether a
registry has the referrers API, whether a blob is already in a repository. :class:`OncePerKey`
runs the work for a key once while the other askers of that key wait, and remembers the answer;
asking for another key never waits on it. :meth:`OncePerKey.exclusive` is the same per-key lock
without memory, for work whose answer lives elsewhere (a blob copied once, then mounted).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class OncePerKey(Generic[K, V]):
    """Per key: compute once, share the answer; a failure is not remembered (the next asker
    tries again). With ``limit``, only the answers used last are kept (a forgotten one is
    computed again when asked for), so a run over any number of keys stays bounded."""

    def __init__(self, *, limit: int | None = None) -> None:
        self._lock = threading.Lock()
        self._locks: dict[K, tuple[threading.Lock, int]] = {}  # lock, holders and waiters
        self._values: OrderedDict[K, V] = OrderedDict()
        self._limit = limit

    def __len__(self) -> int:
        """Keys whose lock is held or waited for now (a lock nobody wants is dropped, so a
        long-lived instance keyed by ever new names stays small)."""
        with self._lock:
            return len(self._locks)

    @contextmanager
    def exclusive(self, key: K) -> Iterator[None]:
        """Hold ``key``'s lock: one thread at a time does the work for that key."""
        with self._lock:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The remembered answer for ``key``, made by ``make()`` the first time."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
        with self.exclusive(key):
            with self._lock:
                if key in self._values:
                    return self._values[key]
            value = make()
            with self._lock:
                self._remember(key, value)
            return value

    def _remember(self, key: K, value: V) -> None:
        self._values[key] = value
        self._values.move_to_end(key)
        while self._limit is not None and len(self._values) > self._limit:
            self._values.popitem(last=False)

    def peek(self, key: K) -> V | None:
        """The answer if one is remembered, else None (never waits, never computes)."""
        with self._lock:
            return self._values.get(key)

    def known(self, key: K) -> bool:
        """Whether an answer for ``key`` is remembered (a None answer too)."""
        with self._lock:
            return key in self._values

    def put(self, key: K, value: V) -> None:
        """Remember ``value`` unless an answer is there already (a listing read elsewhere)."""
        with self._lock:
            if key not in self._values:
                self._remember(key, value)

    def update(self, key: K, change: Callable[[V], V]) -> None:
        """Replace a remembered answer by ``change(answer)``; nothing when none is remembered."""
        with self._lock:
            if key in self._values:
                self._values[key] = change(self._values[key])
