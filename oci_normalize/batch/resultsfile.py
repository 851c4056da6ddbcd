"""The run's results as they happen, on disk: a JSON-lines file, and an index to read it sorted.

A sweep keeps no result in memory. :class:`ResultsFile` appends each
:class:`~oci_normalize.result_models.RefResult` as one JSON line the moment it is known (the file is
anonymous: it lives in the given directory, beside the journal or the report, never in a
``tmpfs`` by accident, and vanishes when closed). At the end, what has to be *sorted* (the
failures printed, the report's tables) is read through :class:`IndexedResults`: the file is
loaded once into an on-disk sqlite database in the same directory, whose sort and group-by
spill to disk, and rows are handed out one at a time. sqlite is in the standard library and
sorts a million rows in a few MB of page cache; an external merge sort written here would be
more code for the same answer.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

from oci_normalize.batch.report.data import (
    Failure,
    ListData,
    MovedTag,
    OldDigest,
    RepoCounts,
    SignatureRow,
    signature_rows,
    who,
)
from oci_normalize.batch.scratch import connect
from oci_normalize.result_models import RefResult
from oci_normalize.results import (
    ALREADY_OCI,
    ARTIFACT,
    CONVERTED,
    FAILED,
    KIND_DOCKER,
    KIND_MIXED,
    PRESENT,
    WOULD_CONVERT,
)

#: sqlite's page cache for the index, in KiB (negative ``cache_size`` is KiB).
INDEX_CACHE_KIB: Final = 8 * 1024
#: Results written to the file at a time.
_WRITE_LINES: Final = 256
#: Bytes read from it at a time.
_READ_BYTES: Final = 256 * 1024
#: Rows inserted per ``executemany`` while the index is built.
_BATCH: Final = 2_000

_SCHEMA: Final = """
CREATE TABLE results (
    rid INTEGER PRIMARY KEY, reference TEXT NOT NULL, repository TEXT NOT NULL,
    status TEXT NOT NULL, kind TEXT, old_digest TEXT, new_digest TEXT, error TEXT,
    line TEXT NOT NULL
);
CREATE TABLE moves (
    reference TEXT NOT NULL, rid INTEGER NOT NULL, idx INTEGER NOT NULL,
    old TEXT NOT NULL, new TEXT NOT NULL, path TEXT NOT NULL, who TEXT NOT NULL
);
"""
_MOVED: Final = (CONVERTED, WOULD_CONVERT)


class ResultsFile:
    """Results appended as JSON lines to an anonymous file in ``directory`` (None: $TMPDIR).

    Lines are written a few hundred at a time. Should the disk refuse them (full, or a file
    size limit), the file keeps what it took and the rest is kept in memory instead:
    :attr:`failure` says so. The run's own outputs (journal, report, what is printed) do not
    depend on this scratch file, so its failure costs memory, never a result.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._file: IO[bytes] = tempfile.TemporaryFile(  # noqa: SIM115 - closed by close()
            "w+b", buffering=0, dir=directory, prefix=".oci-normalize-results-"
        )
        self._written = 0  # bytes of whole lines in the file
        self._pending: list[bytes] = []
        self._memory: list[bytes] | None = None  # once the file refused a write
        self.failure: OSError | None = None
        self.count = 0

    def add(self, r: RefResult) -> None:
        line = r.model_dump_json().encode() + b"\n"
        self.count += 1
        if self._memory is not None:
            self._memory.append(line)
            return
        self._pending.append(line)
        if len(self._pending) >= _WRITE_LINES:
            self._flush()

    def _flush(self) -> None:
        if not self._pending or self._memory is not None:
            return
        data = memoryview(b"".join(self._pending))
        try:
            done = 0
            while done < len(data):
                done += os.pwrite(self._file.fileno(), data[done:], self._written + done)
        except OSError as exc:
            self.failure = exc
            self._memory = self._pending
        else:
            self._written += len(data)
        self._pending = []

    def lines(self) -> Iterator[str]:
        """Every line written so far, in order (the file is read a block at a time)."""
        self._flush()
        offset = 0
        rest = b""
        while offset < self._written:
            block = os.pread(self._file.fileno(), min(_READ_BYTES, self._written - offset), offset)
            if not block:
                break
            offset += len(block)
            *whole, rest = (rest + block).split(b"\n")
            for line in whole:
                yield line.decode()
        for line in self._memory or ():
            yield line[:-1].decode()

    def __iter__(self) -> Iterator[RefResult]:
        return (RefResult.model_validate_json(line) for line in self.lines())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def index(results: ResultsFile) -> IndexedResults | MemoryIndex:
    """The results sorted: through :class:`IndexedResults`, or, when the disk refuses the
    index, in memory (the run is over; what it printed must still be printed)."""
    try:
        return IndexedResults(results)
    except (sqlite3.Error, OSError):
        return MemoryIndex(list(results))


class MemoryIndex(ListData):
    """:class:`IndexedResults`' answers from a list: the fallback of :func:`index`."""

    def iter_status(self, *statuses: str) -> Iterator[RefResult]:
        return iter(sorted((r for r in self._results if r.status in statuses), key=_by_ref))

    def close(self) -> None:
        self._results = []


def _by_ref(r: RefResult) -> str:
    return r.reference


class IndexedResults:
    """A :class:`ResultsFile` loaded into an on-disk sqlite index: sorted rows, one at a time.

    It is a :class:`~oci_normalize.batch.report.data.ReportData` too (the report's queries).
    """

    def __init__(self, results: ResultsFile) -> None:
        self._dir = tempfile.TemporaryDirectory(
            dir=results.directory, prefix=".oci-normalize-index-"
        )
        self._db = connect(self._dir.name, "results.sqlite3", cache_kib=INDEX_CACHE_KIB)
        try:
            self._build(results)
        except BaseException:
            self.close()
            raise

    def _build(self, results: ResultsFile) -> None:
        self._db.executescript(_SCHEMA)
        self._load(results)
        self._db.executescript(
            """
            CREATE INDEX by_reference ON results (status, reference, rid);
            CREATE INDEX by_repository ON results (repository);
            """
        )

    def _load(self, results: ResultsFile) -> None:
        rows: list[tuple[Any, ...]] = []
        moves: list[tuple[Any, ...]] = []
        for rid, line in enumerate(results.lines()):
            doc = json.loads(line)
            rows.append(
                (
                    rid,
                    doc["reference"],
                    doc["repository"],
                    doc["status"],
                    doc.get("kind"),
                    doc.get("old_digest"),
                    doc.get("new_digest"),
                    doc.get("error"),
                    line,
                )
            )
            if doc["status"] in _MOVED:
                for idx, m in enumerate(doc.get("moved") or []):
                    pointer = who(doc["reference"], doc.get("old_digest"), m["path"])
                    moves.append(
                        (doc["reference"], rid, idx, m["old_digest"], m["new_digest"])
                        + (m["path"], pointer)
                    )
            if len(rows) >= _BATCH:
                self._insert(rows, moves)
        self._insert(rows, moves)
        self._db.commit()

    def _insert(self, rows: list[tuple[Any, ...]], moves: list[tuple[Any, ...]]) -> None:
        self._db.executemany("INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?)", rows)
        self._db.executemany("INSERT INTO moves VALUES (?,?,?,?,?,?,?)", moves)
        rows.clear()
        moves.clear()

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()

    def __enter__(self) -> IndexedResults:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ---- sorted results (the CLI's closing lines) ------------------------------------------

    def count(self, *statuses: str) -> int:
        marks = ",".join("?" * len(statuses))
        query = f"SELECT COUNT(*) FROM results WHERE status IN ({marks})"  # noqa: S608 - marks only
        return int(self._db.execute(query, statuses).fetchone()[0])

    def iter_status(self, *statuses: str) -> Iterator[RefResult]:
        """Results of ``statuses``, sorted by reference (ties: in the order they came)."""
        marks = ",".join("?" * len(statuses))
        query = (
            f"SELECT line FROM results WHERE status IN ({marks})"  # noqa: S608 - marks only
            " ORDER BY reference, rid"
        )
        for (line,) in self._db.execute(query, statuses):
            yield RefResult.model_validate_json(line)

    # ---- ReportData -------------------------------------------------------------------------

    _COUNTS: Final = f"""
        SELECT repository, COUNT(*),
            SUM(status = '{ALREADY_OCI}'), SUM(kind = '{KIND_DOCKER}'), SUM(kind = '{KIND_MIXED}'),
            SUM(status IN ('{CONVERTED}', '{WOULD_CONVERT}')), SUM(status = '{FAILED}'),
            SUM(status = '{ARTIFACT}')
        FROM results GROUP BY repository
    """  # noqa: S608 - constants only

    def repositories(self) -> int:
        return int(self._db.execute("SELECT COUNT(DISTINCT repository) FROM results").fetchone()[0])

    def iter_repo_counts(self) -> Iterator[RepoCounts]:
        for row in self._db.execute(self._COUNTS + " ORDER BY repository"):
            yield _counts(row)

    def largest(self, count: int) -> list[RepoCounts]:
        query = self._COUNTS + " ORDER BY COUNT(*) DESC, repository LIMIT ?"
        return [_counts(row) for row in self._db.execute(query, (count,))]

    def most_references(self) -> int:
        query = "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM results GROUP BY repository)"
        return int(self._db.execute(query).fetchone()[0] or 0)

    def longest_name(self) -> int:
        query = "SELECT MAX(LENGTH(repository)) FROM results"
        return int(self._db.execute(query).fetchone()[0] or 0)

    def failures(self) -> int:
        return self.count(FAILED)

    def iter_failures(self) -> Iterator[Failure]:
        query = f"SELECT reference, error FROM results WHERE status = '{FAILED}' ORDER BY reference, rid"  # noqa: S608, E501
        for reference, error in self._db.execute(query):
            yield Failure(reference, error or "")

    def moved_tags(self) -> int:
        return self.count(*_MOVED)

    def iter_moved_tags(self) -> Iterator[MovedTag]:
        query = (
            "SELECT reference, kind, old_digest, new_digest FROM results"
            f" WHERE status IN ('{CONVERTED}', '{WOULD_CONVERT}') ORDER BY reference, rid"  # noqa: S608
        )
        for reference, kind, old, new in self._db.execute(query):
            yield MovedTag(reference, kind or "", old or "", new or "")

    def old_digest_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(DISTINCT old) FROM moves").fetchone()[0])

    def iter_signatures(self) -> Iterator[SignatureRow]:
        """Every reported signature, by reference, read back a line at a time."""
        return signature_rows(self.iter_status(CONVERTED, WOULD_CONVERT, PRESENT, FAILED))

    def iter_old_digests(self) -> Iterator[OldDigest]:
        """As :func:`~.report.data.old_digests`: each old digest keeps the new digest and path
        of its first sighting (moves in reference order), and the distinct pointers in the
        order first seen."""
        query = """
            WITH seq AS (
                SELECT old, new, path, who,
                    ROW_NUMBER() OVER (ORDER BY reference, rid, idx) AS n FROM moves
            ),
            first AS (
                SELECT old, new, path FROM (
                    SELECT old, new, path,
                        ROW_NUMBER() OVER (PARTITION BY old ORDER BY n) AS k FROM seq
                ) WHERE k = 1
            ),
            pointers AS (SELECT old, who, MIN(n) AS n FROM seq GROUP BY old, who)
            SELECT first.old, first.new, first.path, pointers.who
            FROM first JOIN pointers ON pointers.old = first.old
            ORDER BY first.path != '@', first.old, pointers.n
        """
        current: OldDigest | None = None
        for old, new, path, pointer in self._db.execute(query):
            if current is None or current.old != old:
                if current is not None:
                    yield current
                current = OldDigest(old, new, path)
            current.pointed_at_by.append(pointer)
        if current is not None:
            yield current


def _counts(row: tuple[Any, ...]) -> RepoCounts:
    repository, *numbers = row
    references, oci, docker, mixed, converted, failed, artifacts = (int(n or 0) for n in numbers)
    return RepoCounts(repository, references, oci, docker, mixed, converted, failed, artifacts)
