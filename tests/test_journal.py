"""The journal file format and the undo chains rollback derives from it (pure, no registry)."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest

from oci_normalize.batch.journal import Journal, iter_moves, known_oci, read_journal
from oci_normalize.batch.rollback import Undo, undo_chains
from oci_normalize.digest import Digest
from oci_normalize.errors import JournalError
from oci_normalize.results import BatchStatus

OLD = b'{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}'
NEW = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
D_OLD, D_NEW = Digest.of(OLD), Digest.of(NEW)
DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
KEYS = {
    "v",
    "run",
    "time",
    "reference",
    "status",
    "old_digest",
    "old_media_type",
    "old_manifest",
    "new_digest",
    "new_media_type",
    "error",
}


def _move(
    journal: Journal, ref: str, status: BatchStatus, old: bytes = OLD, new: Digest = D_NEW
) -> None:
    journal.record(
        ref,
        status,
        old_digest=Digest.of(old),
        old_media_type=DOCKER,
        old_manifest=old,
        new_digest=new,
        new_media_type="application/vnd.oci.image.manifest.v1+json",
    )


def test_lines_carry_every_key_and_the_exact_old_bytes(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path, run="run-1") as journal:
        _move(journal, "h/a:1", "pending")
        _move(journal, "h/a:1", "converted")
        journal.record("h/a:2", "failed", error="boom")
    docs = [json.loads(line) for line in path.read_text().splitlines()]
    assert [set(d) for d in docs] == [KEYS] * 3
    assert [d["status"] for d in docs] == ["pending", "converted", "failed"]
    assert {d["run"] for d in docs} == {"run-1"}
    assert base64.b64decode(docs[0]["old_manifest"]) == OLD
    assert docs[0]["old_digest"] == str(D_OLD) and docs[0]["new_digest"] == str(D_NEW)
    entries = read_journal(path)
    assert [(e.line, e.status, e.old_manifest) for e in entries] == [
        (1, "pending", OLD),
        (2, "converted", OLD),
        (3, "failed", None),
    ]
    assert entries[2].error == "boom"


def test_appends_across_runs_and_threads(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path, run="one") as journal:
        _move(journal, "h/a:1", "converted")
    with Journal(path) as journal:
        threads = [
            threading.Thread(target=_move, args=(journal, f"h/a:t{i}", "converted"))
            for i in range(16)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert journal.lines == 16
    entries = read_journal(path)
    assert len(entries) == 17 and len({e.run for e in entries}) == 2


def test_a_torn_last_line_is_ignored_but_a_broken_middle_line_is_not(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        _move(journal, "h/a:1", "converted")
    with path.open("ab") as handle:
        handle.write(b'{"v":1,"run":"x","refer')  # the crash cut this line short
    assert [e.reference for e in read_journal(path)] == ["h/a:1"]
    with path.open("ab") as handle:
        handle.write(b"\n" + path.read_bytes().splitlines()[0] + b"\n")
    with pytest.raises(JournalError, match=r"j.jsonl:2"):
        read_journal(path)


def test_unreadable_or_unwritable_journal_is_a_journal_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot read"):
        read_journal(tmp_path / "missing.jsonl")
    with pytest.raises(JournalError, match="cannot open"):
        Journal(tmp_path / "no" / "such" / "dir.jsonl")


def test_known_oci_and_moves(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    other = b'{"schemaVersion":2}'
    with Journal(path) as journal:
        _move(journal, "h/a:1", "pending")
        _move(journal, "h/a:1", "converted")
        journal.record("h/a:2", "already-oci", old_digest=Digest.of(other))
        journal.record("h/a:3", "would-convert", old_digest=D_OLD, new_digest=D_NEW)
        journal.record("h/a:4", "failed", old_digest=D_OLD, error="x")
    entries = read_journal(path)
    assert known_oci(entries) == {D_NEW, Digest.of(other)}
    assert [(e.reference, e.status) for e in iter_moves(entries)] == [
        ("h/a:1", "pending"),
        ("h/a:1", "converted"),
    ]


def test_undo_chains_merge_pending_with_converted_and_keep_several_runs(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    second_old = b'{"schemaVersion":2,"x":1}'
    second_new = Digest.of(b"second-new")
    with Journal(path, run="r1") as journal:
        _move(journal, "h/a:1", "pending")  # crash here: no converted line
    with Journal(path, run="r2") as journal:
        _move(journal, "h/a:1", "pending")
        _move(journal, "h/a:1", "converted")
        _move(journal, "h/b:1", "pending")
    with Journal(path, run="r3") as journal:  # someone pushed Docker again; converted again
        _move(journal, "h/a:1", "pending", old=second_old, new=second_new)
        _move(journal, "h/a:1", "converted", old=second_old, new=second_new)
    chains = undo_chains(read_journal(path))
    assert chains == {
        "h/a:1": [
            Undo(D_OLD, D_NEW, DOCKER, OLD),
            Undo(Digest.of(second_old), second_new, DOCKER, second_old),
        ],
        "h/b:1": [Undo(D_OLD, D_NEW, DOCKER, OLD)],
    }
