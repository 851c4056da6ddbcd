"""Rollback over an on-disk index of the journal, in process: the journal's checks still apply,
the chains are those of :func:`undo_chains`, originals are read back (and checked) only for the
moves being undone, references are taken a bounded window ahead, results are sorted on disk.

The journals are written by the real batch runner against in-memory registries
(:mod:`tests.support.memstore`); the registry tests (test_rollback*.py) prove the same paths
against distribution."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from oci_normalize.batch.journal import Journal, read_journal
from oci_normalize.batch.rollback import Undo, rollback, undo_chains, window
from oci_normalize.batch.run import run
from oci_normalize.batch.undoindex import Move, MoveIndex, SortedResults
from oci_normalize.digest import Digest
from oci_normalize.errors import JournalError
from oci_normalize.reference import Reference
from oci_normalize.result_models import RollbackResult
from oci_normalize.results import FAILED, RESTORED, UNCHANGED, WOULD_RESTORE
from tests.support import memimages as mi
from tests.support.memstore import MemoryStore, mounted

HOST = "src.test:5000"
DOCKER = "application/vnd.docker.distribution.manifest.v2+json"


def _converted(tmp_path: Path, count: int) -> tuple[MemoryStore, Path, dict[str, Digest]]:
    """``count`` Docker images converted in place by the batch runner, journalled; each
    reference's original digest."""
    store = MemoryStore(HOST)
    original = {}
    for i in range(count):
        image = mi.docker_image(store, f"app{i % 7}", f"v{i}", key=f"k{i}")
        original[f"{HOST}/app{i % 7}:v{i}"] = image.digest
    journal = tmp_path / "journal.jsonl"
    with Journal(journal) as j:
        refs = [Reference.parse(r) for r in original]
        results = list(run(refs, client=mounted(store), journal=j))
    assert {r.status for r in results} == {"converted"}
    return store, journal, original


def _at(store: MemoryStore, reference: str) -> Digest | None:
    ref = Reference.parse(reference)
    assert ref.tag is not None
    return store.head_manifest(ref.repository, ref.tag)


class CountingIndex(MoveIndex):
    """A MoveIndex that counts the references handed out and the originals read back."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.taken = 0
        self.reads: list[tuple[str, int]] = []

    def chains(self) -> Iterator[tuple[str, list[Move]]]:
        for item in super().chains():
            self.taken += 1
            yield item

    def read(self, reference: str, move: Move) -> bytes:
        self.reads.append((reference, move.line))
        return super().read(reference, move)


def test_references_are_taken_a_bounded_window_ahead_and_every_tag_is_restored(
    tmp_path: Path,
) -> None:
    store, journal, original = _converted(tmp_path, 60)
    concurrency = 2
    limit = window(concurrency)
    assert limit < 60  # else the bound proves nothing
    seen = []
    with (moves := CountingIndex(journal)):
        for answered, r in enumerate(
            rollback(moves, client=mounted(store), concurrency=concurrency), start=1
        ):
            assert moves.taken - answered < limit, (moves.taken, answered)
            seen.append(r)
        assert moves.taken == 60
        # one original read back per tag: only the move being undone, once
        assert len(moves.reads) == 60 == len(set(moves.reads))
    assert {r.status for r in seen} == {RESTORED}
    assert sorted(r.reference for r in seen) == sorted(original)
    assert {ref: _at(store, ref) for ref in original} == original

    with (moves := CountingIndex(journal)):  # again: every tag already original, nothing read
        again = list(rollback(moves, client=mounted(store), concurrency=concurrency))
        assert moves.reads == []
    assert {r.status for r in again} == {UNCHANGED}


def test_chains_from_the_index_are_those_of_undo_chains(tmp_path: Path) -> None:
    first = b'{"schemaVersion":2,"mediaType":"%s","n":1}' % DOCKER.encode()
    second = b'{"schemaVersion":2,"mediaType":"%s","n":2}' % DOCKER.encode()
    new1, new2 = Digest.of(b"new-1"), Digest.of(b"new-2")
    path = tmp_path / "j.jsonl"

    def move(j: Journal, ref: str, status: str, old: bytes, new: Digest) -> None:
        j.record(
            ref,
            status,  # type: ignore[arg-type]
            old_digest=Digest.of(old),
            old_media_type=DOCKER,
            old_manifest=old,
            new_digest=new,
        )

    with Journal(path, run="r1") as j:
        move(j, "h/b:1", "pending", first, new1)  # crash: no converted line
        j.record("h/a:1", "failed", error="boom")
        move(j, "h/a:1", "pending", first, new1)
        move(j, "h/a:1", "converted", first, new1)
        j.record("h/c:1", "already-oci", old_digest=new1)
    with Journal(path, run="r2") as j:
        move(j, "h/a:1", "pending", second, new2)
        move(j, "h/a:1", "converted", second, new2)
        move(j, "h/a:\udcff", "converted", first, new1)  # any text a JSON string holds
    with MoveIndex(path) as moves:
        got = {
            ref: [Undo(m.old, m.new, m.media_type, moves.read(ref, m), m.line) for m in chain]
            for ref, chain in moves.chains()
        }
    want = undo_chains(read_journal(path))
    assert got == want
    lines = {ref: [u.line for u in chain] for ref, chain in got.items()}
    assert lines == {ref: [u.line for u in chain] for ref, chain in want.items()}
    assert list(got) == ["h/a:1", "h/a:\udcff", "h/b:1"]  # by reference
    assert [u.line for u in got["h/a:1"]] == [3, 6]  # the pending line of each move


def test_the_index_refuses_what_read_journal_refuses(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        j.record("h/a:1", "already-oci", old_digest=Digest.of(b"x"))
    path.write_bytes(path.read_bytes() + b'{"v":1,"run":"x","refer')  # torn last line: ignored
    with MoveIndex(path) as moves:
        assert list(moves.chains()) == []
    path.write_bytes(path.read_bytes() + b"\n" + path.read_bytes().splitlines()[0] + b"\n")
    for read in (read_journal, MoveIndex):
        with pytest.raises(JournalError, match=r"j.jsonl:2: not a journal line"):
            read(path)
    with pytest.raises(JournalError, match="cannot read journal"):
        MoveIndex(tmp_path / "missing.jsonl")
    with pytest.raises(JournalError, match="over the 10 byte cap"):
        MoveIndex(path, max_bytes=10)
    assert [p.name for p in tmp_path.iterdir()] == ["j.jsonl"]  # no scratch left behind


def test_a_journal_rewritten_under_the_index_fails_the_tag_and_pushes_nothing(
    tmp_path: Path,
) -> None:
    store, journal, original = _converted(tmp_path, 2)
    converted = {ref: _at(store, ref) for ref in original}
    lines = journal.read_bytes().splitlines(keepends=True)
    writes = len(store.writes())
    with MoveIndex(journal) as moves:
        # same length, same place, same digests: only the original's bytes differ
        forged = []
        for raw in lines:
            doc = json.loads(raw)
            data = base64.b64decode(doc["old_manifest"])
            data, found = re.subn(rb'("schemaVersion":\s*)2', rb"\g<1>3", data, count=1)
            assert found == 1
            doc["old_manifest"] = base64.b64encode(data).decode()
            forged.append(json.dumps(doc, separators=(",", ":")).encode() + b"\n")
        assert [len(x) for x in forged] == [len(x) for x in lines]
        journal.write_bytes(b"".join(forged))
        results = list(rollback(moves, client=mounted(store)))
    assert {r.status for r in results} == {FAILED}
    assert all("journalled original" in (r.error or "") for r in results), results
    assert store.writes()[writes:] == []
    assert {ref: _at(store, ref) for ref in original} == converted

    journal.write_bytes(b"".join(lines))
    swapped = [  # each line now names the other reference, at the same offset
        line.replace(b"/app0:v0", b"/@@@@:@@").replace(b"/app1:v1", b"/app0:v0") for line in lines
    ]
    swapped = [line.replace(b"/@@@@:@@", b"/app1:v1") for line in swapped]
    assert swapped != lines and [len(x) for x in swapped] == [len(x) for x in lines]
    with MoveIndex(journal) as moves:  # lines swapped under the index: not the line indexed
        journal.write_bytes(b"".join(swapped))
        results = list(rollback(moves, client=mounted(store), dry_run=True))
    assert {r.status for r in results} == {FAILED}
    assert all("changed while rolling back" in (r.error or "") for r in results), results
    assert store.writes()[writes:] == []


def test_the_index_holds_no_original_and_the_journal_is_read_a_line_at_a_time(
    tmp_path: Path,
) -> None:
    path = tmp_path / "big.jsonl"
    pad = "x" * 8192
    with path.open("w") as fh:
        for i in range(4_000):
            data = json.dumps({"schemaVersion": 2, "mediaType": DOCKER, "pad": pad, "i": i})
            old = Digest.of(data.encode())
            doc = {"v": 1, "run": "r", "reference": f"h/a{i % 50}:{i}", "status": "converted"}
            doc |= {"old_digest": str(old), "old_media_type": DOCKER}
            doc |= {"old_manifest": base64.b64encode(data.encode()).decode()}
            doc |= {"new_digest": str(Digest.of(b"%d" % i))}
            fh.write(json.dumps(doc) + "\n")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        with MoveIndex(path) as moves:
            chains = sum(1 for _ in moves.chains())
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert chains == 4_000
    assert peak < 3 * 1024 * 1024 and size > 10 * peak, (peak, size)


def test_sorted_results_come_back_by_reference_in_arrival_order_for_ties(tmp_path: Path) -> None:
    names = ["h/b:1", "h/a:2", "h/\udcff:1", "h/a:1", "h/a:2"]
    with SortedResults(tmp_path) as results:
        for i, name in enumerate(names):
            results.add(RollbackResult(reference=name, status=WOULD_RESTORE, steps=i))
        assert results.count == 5
        got = [(r.reference, r.steps) for r in results]
    assert got == [("h/a:1", 3), ("h/a:2", 1), ("h/a:2", 4), ("h/b:1", 0), ("h/\udcff:1", 2)]
    assert list(tmp_path.iterdir()) == []


class _FullDisk:
    """A connection whose inserts fail from the second batch on, as on a disk that filled up."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.batches = 0

    def executemany(self, sql: str, rows: list[tuple[object, ...]]) -> sqlite3.Cursor:
        self.batches += 1
        if self.batches > 1:
            raise sqlite3.OperationalError("database or disk is full")
        return self.db.executemany(sql, rows)

    def __getattr__(self, name: str) -> object:
        return getattr(self.db, name)


def test_sorted_results_keep_the_rest_in_memory_when_the_disk_refuses(tmp_path: Path) -> None:
    names = [f"h/a:{(i * 7919) % 4_300:05d}" for i in range(4_300)]
    with SortedResults(tmp_path) as results:
        assert results._db is not None
        results._db = _FullDisk(results._db)  # type: ignore[assignment]
        for i, name in enumerate(names):
            results.add(RollbackResult(reference=name, status=WOULD_RESTORE, steps=i))
        got = [(r.reference, r.steps) for r in results]
        assert isinstance(results.failure, sqlite3.OperationalError)
    assert got == sorted((name, i) for i, name in enumerate(names))
