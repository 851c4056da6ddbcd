"""A compact set of byte strings for the sweep's per-reference bookkeeping: 16 bytes a key.

Why not a Python ``set`` of strings: a digest string costs about 120 bytes as a ``str`` object
plus a 8–16 byte slot in the set's table, so a million of them is some 150 MB, which is more
than a whole batch is allowed (see bench/README.md, "Constant memory"). Here each item is
reduced to a 64-bit keyed hash (BLAKE2b with a random key chosen per index, so nobody can craft
names that collide on purpose) held in a sorted ``array('Q')``, with a 64-bit value beside it
(a journal offset, say). A new key waits in a small buffer (a ``dict``) until the buffer is
full; then the buffer is merged into the arrays: one ``bisect`` and two slice copies per new
key, so a million keys cost about a second and a peak of twice the arrays (32 MB).

A hash is not the item: two items may share a key (for a million keys, the chance is about
3·10⁻⁸). The index never pretends otherwise: :meth:`HashIndex.get` returns the value stored
with the *first* item of a key, and a caller for whom a collision matters confirms the answer
against the real data (the journal re-reads the line at the stored offset). A caller for whom
it does not (a count of distinct repositories) takes the answer as it is.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from bisect import bisect_left
from typing import Final

#: Keys buffered in a dict before a merge into the sorted arrays (about 6 MB at most).
BUFFER_KEYS: Final = 65_536
_SECRET_BYTES: Final = 16


class HashIndex:
    """Items (bytes) → a 64-bit value, kept as sorted 64-bit keyed hashes; see the module."""

    def __init__(self, *, buffer_keys: int = BUFFER_KEYS) -> None:
        self._hash = hashlib.blake2b(digest_size=8, key=os.urandom(_SECRET_BYTES))
        self._keys = array("Q")
        self._values = array("Q")
        self._buffer: dict[int, int] = {}
        self._buffer_keys = max(1, buffer_keys)

    def key(self, item: bytes) -> int:
        h = self._hash.copy()  # cheaper than keying a new one
        h.update(item)
        return int.from_bytes(h.digest(), "big")

    def add(self, item: bytes, value: int = 0) -> bool:
        """Remember ``item`` with ``value``; False (and nothing changes) when its key is known."""
        k = self.key(item)
        if k in self._buffer:
            return False
        keys = self._keys
        i = bisect_left(keys, k)
        if i < len(keys) and keys[i] == k:
            return False
        self._buffer[k] = value
        if len(self._buffer) >= self._buffer_keys:
            self._merge()
        return True

    def get(self, item: bytes) -> int | None:
        """The value stored with ``item``'s key, or None: see the module on collisions."""
        k = self.key(item)
        found = self._buffer.get(k)
        if found is not None:
            return found
        i = self._find(k)
        return None if i is None else self._values[i]

    def __contains__(self, item: object) -> bool:
        return isinstance(item, bytes) and self.get(item) is not None

    def __len__(self) -> int:
        return len(self._keys) + len(self._buffer)

    def _find(self, k: int) -> int | None:
        i = bisect_left(self._keys, k)
        return i if i < len(self._keys) and self._keys[i] == k else None

    def _merge(self) -> None:
        keys, values = array("Q"), array("Q")
        old_keys, old_values = self._keys, self._values
        lo = 0
        for k in sorted(self._buffer):
            i = bisect_left(old_keys, k, lo)
            keys += old_keys[lo:i]
            values += old_values[lo:i]
            keys.append(k)
            values.append(self._buffer[k])
            lo = i
        keys += old_keys[lo:]
        values += old_values[lo:]
        self._keys, self._values = keys, values
        self._buffer = {}


class HashSet:
    """A set of items on :class:`HashIndex`: exact up to 64-bit key collisions (see the module)."""

    def __init__(self) -> None:
        self._index = HashIndex()

    def add(self, item: bytes) -> bool:
        """Add ``item``; True when it was new."""
        return self._index.add(item)

    def __contains__(self, item: object) -> bool:
        return item in self._index

    def __len__(self) -> int:
        return len(self._index)
