"""The batch journal: JSON lines, appended, flushed and fsynced one line at a time.

Before a batch moves a tag it writes a ``pending`` line holding everything needed to undo the
move (the original manifest bytes, base64, with their media type and digest, and the digest the
tag is about to get); after the move it writes the outcome (``converted`` or ``failed``). A crash
between the two loses nothing: :mod:`oci_normalize.rollback` treats a ``pending`` line like a
``converted`` one and only acts where the tag really points at the new digest. One file may hold
the lines of several runs (``run`` tells them apart); re-runs append.

Keys of a line (``null`` where not applicable)::

    v               1 (format version)
    run             id of the batch run that wrote the line
    time            UTC timestamp, ISO 8601
    reference       registry/repository:tag
    status          pending | converted | already-oci | would-convert | failed
    old_digest      digest the tag pointed at when the batch read it
    old_media_type  media type of that manifest
    old_manifest    its exact bytes, base64 (pending, converted, failed after planning)
    new_digest      digest the tag was (or would be) moved to
    new_media_type  media type of the new root manifest
    error           reason, for failed
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Final

from oci_normalize.digest import Digest
from oci_normalize.errors import InvalidDigestError, JournalError

JOURNAL_VERSION: Final = 1
#: Statuses that mean "this run may have moved the tag": rollback candidates.
MOVED: Final = frozenset({"pending", "converted"})


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
        try:
            self._file: IO[bytes] = path.open("ab")
        except OSError as exc:
            raise JournalError(f"cannot open journal {path}: {exc.strerror or exc}") from exc
        self.lines = 0

    def record(
        self,
        reference: str,
        status: str,
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
            except OSError as exc:
                raise JournalError(f"cannot write journal {self.path}: {exc}") from exc
            self.lines += 1

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def read_journal(path: Path) -> list[JournalEntry]:
    """Every line of ``path``; a torn last line (a crash mid-write) is ignored, others raise."""
    try:
        raw_lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise JournalError(f"cannot read journal {path}: {exc.strerror or exc}") from exc
    entries: list[JournalEntry] = []
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            entries.append(_parse(raw, number))
        except (ValueError, KeyError, TypeError, binascii.Error, InvalidDigestError) as exc:
            if number == len(raw_lines):
                break  # the line a crash cut short
            raise JournalError(f"{path}:{number}: not a journal line ({exc})") from exc
    return entries


def _parse(raw: bytes, number: int) -> JournalEntry:
    doc = json.loads(raw)
    if not isinstance(doc, dict) or doc.get("v") != JOURNAL_VERSION:
        raise ValueError(f"unknown journal format version {doc.get('v')!r}")
    manifest = doc.get("old_manifest")
    return JournalEntry(
        line=number,
        run=str(doc["run"]),
        reference=str(doc["reference"]),
        status=str(doc["status"]),
        old_digest=_digest(doc.get("old_digest")),
        old_media_type=doc.get("old_media_type"),
        old_manifest=base64.b64decode(manifest, validate=True) if manifest else None,
        new_digest=_digest(doc.get("new_digest")),
        new_media_type=doc.get("new_media_type"),
        error=doc.get("error"),
    )


def _digest(value: object) -> Digest | None:
    return Digest.parse(value) if isinstance(value, str) and value else None


def known_oci(entries: list[JournalEntry]) -> frozenset[Digest]:
    """Digests a previous run found or made fully OCI: re-runs skip their children's reads.

    Digests are content addresses, so a tree once seen all-OCI stays all-OCI.
    """
    out: set[Digest] = set()
    for e in entries:
        if e.status == "converted" and e.new_digest is not None:
            out.add(e.new_digest)
        elif e.status == "already-oci" and e.old_digest is not None:
            out.add(e.old_digest)
    return frozenset(out)


def iter_moves(entries: list[JournalEntry]) -> Iterator[JournalEntry]:
    """Lines that may have moved a tag and carry what it takes to move it back."""
    for e in entries:
        if (
            e.status in MOVED
            and e.old_manifest is not None
            and e.old_digest is not None
            and e.new_digest is not None
            and e.old_digest != e.new_digest
        ):
            yield e
