"""A journal's moves on disk, by reference, and rollback's results sorted on disk.

``rollback`` must not hold a journal in memory: a million moves, each with the original manifest
(up to 4 MiB), do not fit. :class:`MoveIndex` reads the journal once, a line at a time
(:func:`~.journal.iter_journal`: every check of :func:`~.journal.read_journal` applies), and
keeps, per move (:func:`~.journal.is_move`), its reference, line number, byte offset, digests
and media type in an anonymous on-disk sqlite database; not the bytes. :meth:`MoveIndex.chains`
then hands out one reference's undo chain at a time, and :meth:`MoveIndex.read` reads one
move's original back from the journal when it is about to be proved and pushed. The line read
back is parsed and checked again, and must still say what was indexed: the file may have changed
underneath. What the bytes claim is then proved as ever (:func:`~.rollback.prove` hashes them
against ``old_digest`` before anything is pushed).

:class:`SortedResults` keeps each result as a JSON line in a second database, so that the
closing lines can be printed sorted by reference without a list of every result. Both live in
a temporary directory beside the journal (else in ``$TMPDIR``), as
:class:`~.resultsfile.IndexedResults` does, and vanish when closed.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from oci_normalize.batch.journal import (
    MAX_STREAMED_JOURNAL_BYTES,
    is_move,
    iter_journal,
    line_at,
    parse_line,
)
from oci_normalize.batch.scratch import connect, scratch_dir
from oci_normalize.digest import Digest
from oci_normalize.errors import JournalError
from oci_normalize.result_models import RollbackResult
from oci_normalize.text import printable

#: Rows inserted per ``executemany``.
_BATCH: Final = 2_000
#: Text that may hold any code point a JSON string can (lone surrogates too) is kept as bytes.
_CODEC: Final = "surrogatepass"


def _blob(text: str) -> bytes:
    return text.encode("utf-8", _CODEC)


def _text(blob: bytes) -> str:
    return blob.decode("utf-8", _CODEC)


@dataclass(frozen=True)
class Move:
    """One move of a tag, as indexed: ``old`` → ``new``; its original is on journal ``line``,
    which starts at byte ``offset``."""

    old: Digest
    new: Digest
    media_type: str
    line: int
    offset: int


def _scratch(beside: Path | None, prefix: str) -> tempfile.TemporaryDirectory[str]:
    """:func:`.scratch.scratch_dir`; JournalError if no directory can be made."""
    try:
        return scratch_dir(beside, prefix)
    except OSError as exc:
        why = printable(exc.strerror or str(exc))
        raise JournalError(f"cannot make a scratch directory for rollback: {why}") from exc


def _connect(directory: Path) -> sqlite3.Connection:
    return connect(directory, "index.sqlite3")


class MoveIndex:
    """The moves of journal ``path``, indexed by reference; the journal held open to read the
    originals back. :meth:`close` it, or use ``with``.

    Raises JournalError as :func:`~.journal.read_journal` does, and when the index cannot be
    written. ``max_bytes`` caps the journal; the default is that of a streamed read, since
    memory does not grow with it (disk does: a few hundred bytes a move).
    """

    def __init__(self, path: Path, *, max_bytes: int = MAX_STREAMED_JOURNAL_BYTES) -> None:
        self.path = path
        self.moves = 0
        self._fd: int | None = None
        self._db: sqlite3.Connection | None = None
        self._dir = _scratch(path.resolve().parent, ".oci-normalize-rollback-")
        try:
            self._db = _connect(Path(self._dir.name))
            self._build(max_bytes)
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except (OSError, sqlite3.Error) as exc:
            self.close()
            why = printable(getattr(exc, "strerror", None) or str(exc))
            raise JournalError(f"cannot index journal {path}: {why}") from exc
        except BaseException:
            self.close()
            raise

    @property
    def directory(self) -> Path:
        """Where the index lives: the place for other scratch files of this rollback."""
        return Path(self._dir.name).parent

    def _build(self, max_bytes: int) -> None:
        assert self._db is not None
        self._db.execute(
            "CREATE TABLE moves (reference BLOB NOT NULL, line INTEGER NOT NULL,"
            " offset INTEGER NOT NULL, old TEXT NOT NULL, new TEXT NOT NULL,"
            " media_type BLOB NOT NULL)"
        )
        rows: list[tuple[Any, ...]] = []
        for offset, e in iter_journal(self.path, max_bytes=max_bytes):
            if not is_move(e):
                continue
            assert e.old_digest and e.new_digest  # is_move checked
            media_type = _blob(e.old_media_type or "")
            row = (_blob(e.reference), e.line, offset, str(e.old_digest), str(e.new_digest))
            rows.append((*row, media_type))
            self.moves += 1
            if len(rows) >= _BATCH:
                self._db.executemany("INSERT INTO moves VALUES (?,?,?,?,?,?)", rows)
                rows.clear()
        self._db.executemany("INSERT INTO moves VALUES (?,?,?,?,?,?)", rows)
        self._db.execute("CREATE INDEX by_reference ON moves (reference, line)")
        self._db.commit()

    def chains(self) -> Iterator[tuple[str, list[Move]]]:
        """Per reference, its distinct moves in journal order (a pending line and its converted
        line are one move: the first is kept), one reference at a time."""
        reference: bytes | None = None
        chain: list[Move] = []
        if self._db is None:
            raise JournalError(f"journal {self.path} is closed")
        query = (
            "SELECT reference, line, offset, old, new, media_type FROM moves"
            " ORDER BY reference, line"
        )
        for ref, line, offset, old, new, media_type in self._db.execute(query):
            if ref != reference:
                if reference is not None:
                    yield _text(reference), chain
                reference, chain = ref, []
            move = Move(Digest.parse(old), Digest.parse(new), _text(media_type), line, offset)
            if not chain or (chain[-1].old, chain[-1].new) != (move.old, move.new):
                chain.append(move)
        if reference is not None:
            yield _text(reference), chain

    def read(self, reference: str, move: Move) -> bytes:
        """The original bytes of ``move``, read back from the journal; JournalError unless the
        line there is still a move of ``reference`` that says what was indexed."""
        if self._fd is None:
            raise JournalError(f"journal {self.path} is closed")
        try:
            raw = line_at(self._fd, move.offset)
        except OSError as exc:
            why = printable(exc.strerror or str(exc))
            raise JournalError(f"cannot read journal {self.path}: {why}") from exc
        try:
            e = parse_line(raw, move.line)
        except JournalError as exc:
            why = f"{self.path}:{move.line}: changed while rolling back ({exc})"
            raise JournalError(why) from exc
        same = (
            is_move(e)
            and e.reference == reference
            and (e.old_digest, e.new_digest) == (move.old, move.new)
            and (e.old_media_type or "") == move.media_type
        )
        if not same or e.old_manifest is None:
            raise JournalError(
                f"{self.path}:{move.line}: changed while rolling back; not the line indexed"
            )
        return e.old_manifest

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._db is not None:
            self._db.close()
            self._db = None
        self._dir.cleanup()

    def __enter__(self) -> MoveIndex:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class SortedResults:
    """Rollback results kept as JSON lines on disk, handed back sorted by reference (ties: in
    the order they came), one at a time.

    Should the disk refuse them (full), the database keeps what it took and the rest is kept in
    memory instead (:attr:`failure` says so): what is printed never depends on this file.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self._dir = _scratch(directory, ".oci-normalize-results-")
        self._memory: list[tuple[str, int, str]] | None = None
        self._pending: list[tuple[bytes, int, str]] = []
        self.failure: sqlite3.Error | None = None
        self.count = 0
        try:
            self._db: sqlite3.Connection | None = _connect(Path(self._dir.name))
            self._db.execute(
                "CREATE TABLE results (reference BLOB NOT NULL, seq INTEGER NOT NULL,"
                " line TEXT NOT NULL)"
            )
        except sqlite3.Error as exc:
            self._db = None
            self._fail(exc)

    def add(self, r: RollbackResult) -> None:
        # json, not pydantic's dump: a reference from a journal may hold a lone surrogate
        row = (r.reference, self.count, json.dumps(r.model_dump()))
        self.count += 1
        if self._memory is not None:
            self._memory.append(row)
            return
        self._pending.append((_blob(row[0]), row[1], row[2]))
        if len(self._pending) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._db is None or not self._pending:
            return
        try:
            self._db.executemany("INSERT INTO results VALUES (?,?,?)", self._pending)
            self._db.commit()
        except sqlite3.Error as exc:
            self._fail(exc)
            assert self._memory is not None
            self._memory.extend((_text(b), seq, line) for b, seq, line in self._pending)
        self._pending = []

    def _fail(self, exc: sqlite3.Error) -> None:
        self.failure = exc
        self._memory = []

    def __iter__(self) -> Iterator[RollbackResult]:
        self._flush()
        stored: Iterator[tuple[str, int, str]] = iter(())
        if self._db is not None and self.failure is None:
            with contextlib.suppress(sqlite3.Error):  # without it, sqlite sorts in a temp file
                self._db.execute("CREATE INDEX IF NOT EXISTS by_ref ON results (reference, seq)")
        if self._db is not None:
            query = "SELECT reference, seq, line FROM results ORDER BY reference, seq"
            stored = ((_text(b), seq, line) for b, seq, line in self._db.execute(query))
        rest = sorted(self._memory or (), key=_order)
        for _, _, line in heapq.merge(stored, rest, key=_order):
            yield RollbackResult.model_validate(json.loads(line))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._dir.cleanup()

    def __enter__(self) -> SortedResults:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _order(row: tuple[str, int, str]) -> tuple[bytes, int]:
    """Reference, then arrival: sqlite's order (UTF-8 bytes sort as code points do)."""
    return _blob(row[0]), row[1]
