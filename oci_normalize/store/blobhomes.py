"""Which repositories of each destination registry hold a blob, learned during one run.

Shared by the threads of a batch: one claim per (registry, blob) means a blob several
repositories need is streamed once, and mounted from there for the others.

Bounded whatever the run's size: only the :data:`MAX_BLOBS` blobs used last are remembered,
each with the :data:`MAX_HOMES` repositories that wrote or mounted it last (kept for every
blob, it was about half a KiB a reference in a ``batch --to`` of small images, each with its
own config blob). What is forgotten only costs a request, never a result: a forgotten home
means a HEAD or an upload the registry would have spared ("already there"). The blobs shared
across a fleet (base image layers) are the ones used again and again, so they stay.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from oci_normalize.digest import Digest
from oci_normalize.once import OncePerKey

#: Blobs remembered (about 0.5 KiB each).
MAX_BLOBS: Final = 8192
#: Repositories remembered per blob.
MAX_HOMES: Final = 16


class BlobHomes:
    def __init__(self, *, max_blobs: int = MAX_BLOBS, max_homes: int = MAX_HOMES) -> None:
        self._lock = threading.Lock()
        self._homes: OrderedDict[tuple[str, Digest], list[str]] = OrderedDict()
        self._claims: OncePerKey[tuple[str, Digest], None] = OncePerKey()
        self._max_blobs = max(1, max_blobs)
        self._max_homes = max(1, max_homes)

    @contextmanager
    def claim(self, registry: str, digest: Digest) -> Iterator[None]:
        """Hold the blob: one thread at a time makes it present in a repository (the lock is
        let go of once nobody holds or waits for it)."""
        with self._claims.exclusive((registry, digest)):
            yield

    def note(self, registry: str, repository: str, digest: Digest) -> None:
        key = (registry, digest)
        with self._lock:
            homes = self._homes.pop(key, [])
            if repository in homes:
                homes.remove(repository)
            homes.append(repository)  # the latest last
            self._homes[key] = homes[-self._max_homes :]
            while len(self._homes) > self._max_blobs:
                self._homes.popitem(last=False)

    def holds(self, registry: str, repository: str, digest: Digest) -> bool:
        with self._lock:
            return repository in self._homes.get((registry, digest), ())

    def elsewhere(self, registry: str, repository: str, digest: Digest) -> str | None:
        """A repository other than ``repository`` that holds the blob, the latest first."""
        with self._lock:
            homes = self._homes.get((registry, digest), ())
            return next((r for r in reversed(homes) if r != repository), None)
