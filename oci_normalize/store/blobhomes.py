"""Which repositories of each destination registry hold a blob, learned during one run.

Shared by the threads of a batch: one lock per (registry, blob) means a blob several
repositories need is streamed once, and mounted from there for the others.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from oci_normalize.digest import Digest
from oci_normalize.once import OncePerKey


class BlobHomes:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._homes: dict[tuple[str, Digest], list[str]] = {}
        self._claims: OncePerKey[tuple[str, Digest], None] = OncePerKey()

    @contextmanager
    def claim(self, registry: str, digest: Digest) -> Iterator[None]:
        """Hold the blob: one thread at a time makes it present in a repository."""
        with self._claims.exclusive((registry, digest)):
            yield

    def note(self, registry: str, repository: str, digest: Digest) -> None:
        with self._lock:
            homes = self._homes.setdefault((registry, digest), [])
            if repository not in homes:
                homes.append(repository)

    def holds(self, registry: str, repository: str, digest: Digest) -> bool:
        with self._lock:
            return repository in self._homes.get((registry, digest), ())

    def elsewhere(self, registry: str, repository: str, digest: Digest) -> str | None:
        with self._lock:
            return next(
                (r for r in self._homes.get((registry, digest), ()) if r != repository), None
            )
