"""The batch journal: JSON lines, appended, flushed and fsynced one line at a time.

Before a batch moves a tag it writes a ``pending`` line holding everything needed to undo the
move (the original manifest bytes, base64, with their media type and digest, and the digest the
tag is about to get); after the move it writes the outcome (``converted`` or ``failed``). A crash
between the two loses nothing: :mod:`oci_normalize.batch.rollback` treats a ``pending`` line like a
``converted`` one and only acts where the tag really points at the new digest. One file may hold
the lines of several runs (``run`` tells them apart); re-runs append.

Keys of a line (``null`` where not applicable)::

    v               1 (format version)
    run             id of the batch run that wrote the line
    time            UTC timestamp, ISO 8601
    reference       registry/repository:tag
    status          pending | converted | already-oci | would-convert | failed | artifact |
                    present (see :data:`~oci_normalize.results.BatchStatus`)
    old_digest      digest the tag pointed at when the batch read it
    old_media_type  media type of that manifest
    old_manifest    its exact bytes, base64 (pending, converted, failed after planning)
    new_digest      digest the tag was (or would be) moved to
    new_media_type  media type of the new root manifest
    error           reason, for failed

A journal is read as untrusted input (anyone who can write the file can write any line): it must
be a regular file of at most :data:`MAX_JOURNAL_BYTES`, each line at most
:data:`MAX_LINE_BYTES`, every key of the right JSON type (duplicate keys refused), digests valid,
``old_manifest`` valid base64 of at most :data:`~oci_normalize.manifest.MAX_MANIFEST_BYTES`.
What a line *claims* (that these bytes were on that tag) is not trusted either: rollback proves it
before it pushes (see :mod:`oci_normalize.batch.rollback`).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Final

from oci_normalize.batch.keyset import HashIndex
from oci_normalize.digest import Digest
from oci_normalize.errors import InvalidDigestError, JournalError, OciNormalizeError
from oci_normalize.manifest import MAX_MANIFEST_BYTES, unique_keys
from oci_normalize.results import ALREADY_OCI, CONVERTED, MOVED, BatchStatus
from oci_normalize.store.localfs import kind_of, open_regular
from oci_normalize.text import printable

JOURNAL_VERSION: Final = 1
#: Largest journal read whole (:func:`read_journal`): ~50,000 converted tags of ordinary images.
MAX_JOURNAL_BYTES: Final = 256 * 1024 * 1024
#: Largest journal read one line at a time (a resume's :class:`KnownOci`, rollback's
#: :class:`~oci_normalize.batch.undoindex.MoveIndex`): memory does not grow with it, only the
#: time of the scan (about 20 s a million lines).
MAX_STREAMED_JOURNAL_BYTES: Final = 64 * 1024 * 1024 * 1024
#: Bytes read at a time to confirm one line.
_CONFIRM_READ: Final = 16 * 1024
#: Largest block read back at a time (a long line, its base64 manifest).
_LARGEST_READ: Final = 1024 * 1024
#: Largest line: a base64 manifest at the size cap, and room for the other keys.
MAX_LINE_BYTES: Final = MAX_MANIFEST_BYTES * 4 // 3 + 64 * 1024
_STR_KEYS: Final = ("old_media_type", "new_media_type", "error")


@dataclass(frozen=True, kw_only=True)
class JournalEntry:
    """One parsed journal line; ``line`` is its 1-based line number."""

    line: int
    run: str
    reference: str
    status: str
    old_digest: Digest | None = None
    old_media_type: str | None = None
    old_manifest: bytes | None = None
    new_digest: Digest | None = None
    new_media_type: str | None = None
    error: str | None = None


def new_run_id() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


class Journal:
    """An append-only journal file shared by the batch's threads (one lock, one fsync a line)."""

    def __init__(self, path: Path, *, run: str | None = None) -> None:
        self.path = path
        self.run = run or new_run_id()
        self._lock = threading.Lock()
        self._file: IO[bytes] = open_for_append(path)
        self.lines = 0
        #: The first write or close that failed: the journal is incomplete from there on.
        self.failure: JournalError | None = None

    def record(
        self,
        reference: str,
        status: BatchStatus,
        *,
        old_digest: Digest | None = None,
        old_media_type: str | None = None,
        old_manifest: bytes | None = None,
        new_digest: Digest | None = None,
        new_media_type: str | None = None,
        error: str | None = None,
    ) -> None:
        doc: dict[str, Any] = {
            "v": JOURNAL_VERSION,
            "run": self.run,
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "reference": reference,
            "status": status,
            "old_digest": str(old_digest) if old_digest else None,
            "old_media_type": old_media_type,
            "old_manifest": base64.b64encode(old_manifest).decode() if old_manifest else None,
            "new_digest": str(new_digest) if new_digest else None,
            "new_media_type": new_media_type,
            "error": error,
        }
        line = (json.dumps(doc, separators=(",", ":")) + "\n").encode()
        with self._lock:
            try:
                self._file.write(line)
                self._file.flush()
                os.fsync(self._file.fileno())
            except (OSError, ValueError) as exc:
                problem = JournalError(f"cannot write journal {self.path}: {_why(exc)}")
                self.failure = self.failure or problem
                raise problem from exc
            self.lines += 1

    def close(self) -> None:
        """Close the file; a failure here (data that never reached the disk) is kept in
        :attr:`failure`, not raised, so the caller can still print its summary."""
        with self._lock:
            try:
                self._file.close()
            except OSError as exc:
                problem = JournalError(f"cannot write journal {self.path}: {_why(exc)}")
                self.failure = self.failure or problem

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _why(exc: BaseException) -> str:
    return printable(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)


def open_for_append(path: Path) -> IO[bytes]:
    """``path`` opened to append journal lines: a regular file, created when missing.

    Never blocks (a FIFO is refused, not waited on) and never writes into a device.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise JournalError(f"cannot open journal {path}: {_why(exc)}") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise JournalError(f"cannot use journal {path}: it is {kind_of(mode)}")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "ab")
    except BaseException:
        os.close(fd)
        raise


def read_journal(path: Path, *, max_bytes: int = MAX_JOURNAL_BYTES) -> list[JournalEntry]:
    """Every line of ``path``; a torn last line (a crash mid-write) is ignored, others raise.

    The file must be a regular file of at most ``max_bytes``; no line may exceed
    :data:`MAX_LINE_BYTES`. Each line is checked for shape and types only: what it claims is
    for the reader to verify. :func:`iter_journal` reads the same lines one at a time.
    """
    return [entry for _, entry in iter_journal(path, max_bytes=max_bytes)]


def iter_journal(
    path: Path, *, max_bytes: int = MAX_JOURNAL_BYTES
) -> Iterator[tuple[int, JournalEntry]]:
    """The lines of ``path`` one at a time, each with its byte offset; the rules of
    :func:`read_journal`, but only one line is held at a time."""
    try:
        fh = open_regular(path, f"journal {path}")
    except OciNormalizeError as exc:
        raise JournalError(f"cannot read journal: {exc}") from exc
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size > max_bytes:
            raise JournalError(
                f"journal {path} is {size} bytes, over the {max_bytes} byte cap for journals"
            )
        problem: JournalError | None = None
        total = 0
        for number, raw in enumerate(_lines(fh, path), start=1):
            offset = total
            total += len(raw)
            if total > max_bytes:  # the file grew while being read
                raise JournalError(f"journal {path} is over the {max_bytes} byte cap")
            if problem is not None:
                raise problem  # a bad line that was not the last one
            if not raw.strip():
                continue
            try:
                entry = parse_line(raw, number)
            except JournalError as exc:
                problem = JournalError(f"{path}:{number}: not a journal line ({exc})")
                problem.__cause__ = exc.__cause__
                continue
            yield offset, entry
        # A bad last line is the one a crash cut short: ignored.


def _lines(fh: IO[bytes], path: Path) -> Iterator[bytes]:
    number = 0
    while line := fh.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES:
            raise JournalError(
                f"{path}:{number}: line over {MAX_LINE_BYTES} bytes; not a journal line"
            )
        yield line


def parse_line(raw: bytes, number: int) -> JournalEntry:
    """One journal line, shape- and type-checked; JournalError for anything else."""
    try:
        return _parse(raw, number)
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as exc:
        raise JournalError(printable(str(exc) or type(exc).__name__, limit=200)) from exc


def _parse(raw: bytes, number: int) -> JournalEntry:
    doc = json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys)
    if not isinstance(doc, dict) or doc.get("v") != JOURNAL_VERSION:
        version = doc.get("v") if isinstance(doc, dict) else None
        raise ValueError(f"unknown journal format version {printable(repr(version), limit=40)}")
    for key in ("run", "reference", "status"):
        if not isinstance(doc.get(key), str):
            raise TypeError(f"{key!r} is not a string")
    for key in _STR_KEYS:
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise TypeError(f"{key!r} is not a string or null")
    manifest = doc.get("old_manifest")
    if manifest is not None and not isinstance(manifest, str):
        raise TypeError("'old_manifest' is not base64 text or null")
    if manifest and len(manifest) > MAX_MANIFEST_BYTES * 4 // 3 + 4:
        raise ValueError(f"'old_manifest' is over the {MAX_MANIFEST_BYTES} byte manifest cap")
    return JournalEntry(
        line=number,
        run=doc["run"],
        reference=doc["reference"],
        status=doc["status"],
        old_digest=_digest(doc.get("old_digest"), "old_digest"),
        old_media_type=doc.get("old_media_type"),
        old_manifest=base64.b64decode(manifest, validate=True) if manifest else None,
        new_digest=_digest(doc.get("new_digest"), "new_digest"),
        new_media_type=doc.get("new_media_type"),
        error=doc.get("error"),
    )


def _digest(value: object, key: str) -> Digest | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError(f"{key!r} is not a digest string")
    try:
        return Digest.parse(value)
    except InvalidDigestError as exc:
        raise ValueError(f"{key!r} is not a valid digest") from exc


def known_oci(entries: Iterable[JournalEntry]) -> frozenset[Digest]:
    """Digests a previous run found or made fully OCI: re-runs skip their children's reads.

    Digests are content addresses, so a tree once seen all-OCI stays all-OCI. For a journal
    of any size, :class:`KnownOci` answers the same question from the file itself.
    """
    return frozenset(d for e in entries if (d := _vouched(e)) is not None)


def _vouched(e: JournalEntry) -> Digest | None:
    """The digest line ``e`` vouches is all-OCI, if any."""
    if e.status == CONVERTED:
        return e.new_digest
    if e.status == ALREADY_OCI:
        return e.old_digest
    return None


class KnownOci:
    """:func:`known_oci` for a journal of any length, in about 16 bytes a digest.

    A re-run asks, per root digest, "has a previous run seen this tree all-OCI?". A million-line
    journal as a Python ``set`` of digest strings would take ~150 MB, more than a whole sweep is
    allowed; as the journal's own entries, far more. So the journal is read once, a line at a
    time, and each vouching line leaves only a 64-bit keyed hash of its digest and the line's
    byte offset in a sorted array (:class:`~.keyset.HashIndex`). A hit is then *confirmed*:
    the line at that offset is read back (one ``pread``) and must name the very digest. A
    collision of keyed hashes can therefore only make a digest look unknown (the children are
    read again, as without a journal), never make an unknown tree pass as all-OCI. An on-disk
    sqlite index would be exact too, but costs a second file, a write per line and its own
    page cache for the same answer.

    The file is kept open (read-only) for the confirmations: :meth:`close` it, or use ``with``.
    Lines appended after the scan (by the run that resumes) are not consulted.
    """

    def __init__(self, path: Path, *, max_bytes: int = MAX_STREAMED_JOURNAL_BYTES) -> None:
        self.path = path
        self._index = HashIndex()
        for offset, entry in iter_journal(path, max_bytes=max_bytes):
            digest = _vouched(entry)
            if digest is not None:
                self._index.add(str(digest).encode(), offset)
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            raise JournalError(f"cannot read journal {path}: {_why(exc)}") from exc

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, Digest):
            return False
        offset = self._index.get(str(digest).encode())
        if offset is None or self._fd is None:
            return False
        try:
            entry = parse_line(self._line_at(offset), 0)
        except (OSError, JournalError):
            return False  # not confirmed: treated as unknown, which is always safe
        return _vouched(entry) == digest

    def __len__(self) -> int:
        return len(self._index)

    def _line_at(self, offset: int) -> bytes:
        assert self._fd is not None
        return line_at(self._fd, offset)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> KnownOci:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def line_at(fd: int, offset: int) -> bytes:
    """The line of open file ``fd`` that starts at byte ``offset`` (read back with ``pread``,
    in blocks that double from 16 KiB to 1 MiB, up to its newline or past
    :data:`MAX_LINE_BYTES`)."""
    parts: list[bytes] = []
    size = 0
    block = _CONFIRM_READ
    while size <= MAX_LINE_BYTES:
        chunk = os.pread(fd, block, offset + size)
        if not chunk:
            break
        end = chunk.find(b"\n")
        if end >= 0:
            parts.append(chunk[: end + 1])
            break
        parts.append(chunk)
        size += len(chunk)
        block = min(2 * block, _LARGEST_READ)
    return b"".join(parts)


def iter_moves(entries: Iterable[JournalEntry]) -> Iterator[JournalEntry]:
    """Lines that may have moved a tag and carry what it takes to move it back."""
    return (e for e in entries if is_move(e))


def is_move(e: JournalEntry) -> bool:
    """Whether line ``e`` may have moved a tag and carries what it takes to move it back."""
    return (
        e.status in MOVED
        and e.old_manifest is not None
        and e.old_digest is not None
        and e.new_digest is not None
        and e.old_digest != e.new_digest
    )
