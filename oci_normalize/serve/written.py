"""Root digests ``serve`` wrote recently, so that its own pushes, coming back as events, cost
one manifest GET and no write.

A bounded LRU in memory, mirrored to a small SQLite file in ``--state DIR`` so that a restart
still recognises what the previous process wrote.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Final

#: Root digests remembered (oldest forgotten first).
MAX_WRITTEN: Final = 4096
WRITTEN_FILE: Final = "written.sqlite"


class WrittenDigests:
    def __init__(self, path: Path | None = None, *, capacity: int = MAX_WRITTEN) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS written (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                "digest TEXT NOT NULL UNIQUE)"
            )
            rows = self._db.execute(
                "SELECT digest FROM written ORDER BY seq DESC LIMIT ?", (capacity,)
            ).fetchall()
            for (digest,) in reversed(rows):
                self._recent[digest] = None

    def add(self, digest: str) -> None:
        with self._lock:
            self._recent[digest] = None
            self._recent.move_to_end(digest)
            while len(self._recent) > self._capacity:
                self._recent.popitem(last=False)
            if self._db is not None:
                self._db.execute("INSERT OR REPLACE INTO written (digest) VALUES (?)", (digest,))
                self._db.execute(
                    "DELETE FROM written WHERE seq <= (SELECT MAX(seq) FROM written) - ?",
                    (self._capacity,),
                )

    def __contains__(self, digest: object) -> bool:
        with self._lock:
            return digest in self._recent

    def __len__(self) -> int:
        with self._lock:
            return len(self._recent)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
