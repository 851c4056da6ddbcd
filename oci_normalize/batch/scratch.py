"""Scratch sqlite databases on disk: what a run sorts or looks up without holding it in memory.

The results index (:mod:`.resultsfile`), the ``--from-file`` spool (:mod:`.refspool`) and
rollback's move index (:mod:`.undoindex`) each keep one in a temporary directory beside the
journal or the report (else in ``$TMPDIR``), removed when they close. The databases are
throwaway: no journal, no fsync, sorts spilling to files, a bounded page cache.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Final

#: sqlite's page cache for each database, in KiB (negative ``cache_size`` is KiB).
CACHE_KIB: Final = 4 * 1024


def scratch_dir(beside: Path | None, prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary directory in ``beside``, else in $TMPDIR (``beside`` may be read-only);
    OSError if neither can be made."""
    try:
        return tempfile.TemporaryDirectory(dir=beside, prefix=prefix)
    except OSError:
        if beside is None:
            raise
    return tempfile.TemporaryDirectory(prefix=prefix)


def connect(directory: str | Path, name: str, *, cache_kib: int = CACHE_KIB) -> sqlite3.Connection:
    """A throwaway database ``name`` in ``directory``, usable from any one thread at a time."""
    db = sqlite3.connect(Path(directory) / name, check_same_thread=False)
    db.execute(f"PRAGMA cache_size = -{cache_kib}")
    db.execute("PRAGMA temp_store = FILE")
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    return db
