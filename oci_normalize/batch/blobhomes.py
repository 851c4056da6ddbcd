"""Blob homes for a sweep of any length: the most recently used blobs only.

:class:`~oci_normalize.convert.push.BlobHomes` remembers, for every blob a run has written,
which destination repositories hold it, so that a blob several repositories need is streamed
once and mounted elsewhere. Kept for every blob, that is about half a KiB a reference in a
``batch --to`` of small images (each has its own config blob): 50 MB for 100,000 tags.

:class:`RecentBlobHomes` answers the same questions from the :data:`MAX_BLOBS` blobs used last,
and for each, the :data:`MAX_HOMES` repositories that wrote or mounted it last. What it forgets
only costs a request, never a result: a forgotten home means a HEAD or an upload the registry
would have spared (it answers "already there"), and a forgotten per-blob lock means two
threads may upload the same bytes at once (the registry keeps one). The blobs shared across a
fleet (base image layers) are the ones used again and again, so they stay.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Final

from oci_normalize.convert.push import BlobHomes
from oci_normalize.digest import Digest

#: Blobs remembered (about 0.5 KiB each).
MAX_BLOBS: Final = 8192
#: Repositories remembered per blob.
MAX_HOMES: Final = 16


class RecentBlobHomes(BlobHomes):
    """:class:`BlobHomes` bounded to the blobs used last (see the module)."""

    def __init__(self, *, max_blobs: int = MAX_BLOBS, max_homes: int = MAX_HOMES) -> None:
        super().__init__()
        self._guard = threading.Lock()
        self._recent: OrderedDict[tuple[str, Digest], tuple[threading.Lock, list[str]]] = (
            OrderedDict()
        )
        self._max_blobs = max(1, max_blobs)
        self._max_homes = max(1, max_homes)

    def _entry(self, registry: str, digest: Digest) -> tuple[threading.Lock, list[str]]:
        """The blob's lock and homes, marked as used last (the caller holds ``_guard``)."""
        key = (registry, digest)
        entry = self._recent.get(key)
        if entry is None:
            entry = (threading.Lock(), [])
            self._recent[key] = entry
            if len(self._recent) > self._max_blobs:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(key)
        return entry

    def claim(self, registry: str, digest: Digest) -> threading.Lock:
        with self._guard:
            return self._entry(registry, digest)[0]

    def note(self, registry: str, repository: str, digest: Digest) -> None:
        with self._guard:
            homes = self._entry(registry, digest)[1]
            if repository in homes:
                homes.remove(repository)
            homes.append(repository)
            del homes[: -self._max_homes]

    def holds(self, registry: str, repository: str, digest: Digest) -> bool:
        with self._guard:
            entry = self._recent.get((registry, digest))
            return entry is not None and repository in entry[1]

    def elsewhere(self, registry: str, repository: str, digest: Digest) -> str | None:
        with self._guard:
            entry = self._recent.get((registry, digest))
            homes = entry[1] if entry is not None else []
            return next((r for r in reversed(homes) if r != repository), None)
