"""References from a list, unique and sorted, in constant memory: an on-disk sqlite index.

``batch --from-file`` takes any number of lines, in any order, with repeats; the run wants each
reference once, a repository's tags together. Holding them in a set and sorting a list costs
about half a kilobyte a reference (a million-line file: half a gigabyte). Here they go, a few
thousand at a time, into a scratch sqlite table (:mod:`.scratch`: beside the journal or the
report, as the results file), whose primary key is the sort order itself: a repeat is ignored
on insert, and reading back is a scan of the key, a page of rows at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from oci_normalize.batch.scratch import connect, scratch_dir
from oci_normalize.reference import Reference

#: References inserted per ``executemany``.
_BATCH: Final = 2_000
#: Rows read back per fetch.
_PAGE: Final = 256

_SCHEMA: Final = """
CREATE TABLE refs (
    registry TEXT NOT NULL, repository TEXT NOT NULL, tag TEXT NOT NULL, ref TEXT NOT NULL,
    PRIMARY KEY (registry, repository, tag, ref)
) WITHOUT ROWID
"""


class RefSpool:
    """References added in any order, with repeats; :meth:`drain` gives each once, sorted by
    registry, repository, tag (then the whole reference), as the catalog's order would."""

    def __init__(self, directory: Path | None = None) -> None:
        self._dir = scratch_dir(directory, ".oci-normalize-refs-")
        try:
            # Written here, read by whichever thread consumes drain() (one at a time).
            self._db = connect(self._dir.name, "refs.sqlite3")
            self._db.execute(_SCHEMA)
        except BaseException:
            self._dir.cleanup()
            raise
        self._pending: list[tuple[str, str, str, str]] = []
        self._closed = False

    def add(self, ref: Reference) -> None:
        self._pending.append((ref.registry, ref.repository, ref.tag or "", str(ref)))
        if len(self._pending) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        self._db.executemany("INSERT OR IGNORE INTO refs VALUES (?,?,?,?)", self._pending)
        self._pending.clear()

    def repositories(self) -> int:
        """How many distinct repositories (per registry) the references name."""
        self._flush()
        query = "SELECT COUNT(*) FROM (SELECT DISTINCT registry, repository FROM refs)"
        return int(self._db.execute(query).fetchone()[0])

    def __len__(self) -> int:
        self._flush()
        return int(self._db.execute("SELECT COUNT(*) FROM refs").fetchone()[0])

    def drain(self) -> Iterator[Reference]:
        """Every reference once, sorted; the spool is closed (and its files gone) once the
        iterator is exhausted or closed."""
        self._flush()
        try:
            query = "SELECT ref FROM refs ORDER BY registry, repository, tag, ref"  # the key
            cursor: Any = self._db.execute(query)
            while rows := cursor.fetchmany(_PAGE):
                for (text,) in rows:
                    yield Reference.parse(text)  # written from a parsed reference: it parses
        finally:
            self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._db.close()
            self._dir.cleanup()

    def __enter__(self) -> RefSpool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
