"""The journal file format and the undo chains rollback derives from it (pure, no registry)."""

from __future__ import annotations

import base64
import json
import threading
import tracemalloc
from pathlib import Path

import pytest

from oci_normalize.batch.journal import (
    Journal,
    KnownOci,
    iter_journal,
    iter_moves,
    known_oci,
    read_journal,
)
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


# ---- resume from a journal of any length: KnownOci ----------------------------------------------


def test_known_oci_from_the_file_answers_like_the_set(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    other = Digest.of(b'{"schemaVersion":2}')
    with Journal(path) as journal:
        _move(journal, "h/a:1", "pending")
        _move(journal, "h/a:1", "converted")
        journal.record("h/a:2", "already-oci", old_digest=other)
        journal.record("h/a:3", "would-convert", old_digest=D_OLD, new_digest=Digest.of(b"w"))
        journal.record("h/a:4", "failed", old_digest=Digest.of(b"f"), error="x")
    with path.open("ab") as fh:
        fh.write(b'{"v":1,"run":"torn')  # a crash mid-line: ignored
    with KnownOci(path) as known:
        assert D_NEW in known and other in known
        for absent in (D_OLD, Digest.of(b"w"), Digest.of(b"f"), Digest.of(b"never")):
            assert absent not in known
        assert "not a digest" not in known
        assert len(known) == 2


def test_a_hash_collision_never_lets_an_unknown_digest_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every key collides: the line at the stored offset is read back and must name the digest."""
    monkeypatch.setattr("oci_normalize.batch.keyset.HashIndex.key", lambda _self, _item: 7)
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.record("h/a:1", "already-oci", old_digest=D_OLD)
        journal.record("h/a:2", "already-oci", old_digest=D_NEW)  # same key: first one kept
    with KnownOci(path) as known:
        assert D_OLD in known
        assert D_NEW not in known  # unconfirmed: unknown (its children are read again): safe
        assert Digest.of(b"anything") not in known


def test_a_journal_rewritten_under_the_index_confirms_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.record("h/a:1", "already-oci", old_digest=D_OLD)
    with KnownOci(path) as known:
        path.write_bytes(b"x" * 10)  # same inode, other bytes
        assert D_OLD not in known


def test_a_bad_line_before_the_last_is_refused_while_scanning(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.record("h/a:1", "already-oci", old_digest=D_OLD)
    with path.open("ab") as fh:
        fh.write(b"not json\n")
    with Journal(path) as journal:
        journal.record("h/a:2", "already-oci", old_digest=D_NEW)
    with pytest.raises(JournalError, match=":2: not a journal line"):
        KnownOci(path)


def test_iter_journal_gives_offsets_of_each_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        _move(journal, "h/a:1", "pending")
        journal.record("h/a:2", "failed", error="boom")
    data = path.read_bytes()
    got = list(iter_journal(path))
    assert [o for o, _ in got] == [0, data.index(b"\n") + 1]
    assert [e.reference for _, e in got] == ["h/a:1", "h/a:2"]


def test_the_scan_holds_one_line_and_sixteen_bytes_a_digest(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    old_manifest = base64.b64encode(OLD * 8).decode()
    with path.open("w") as fh:
        for i in range(20_000):
            doc = {"v": 1, "run": "r", "reference": f"h/a:{i}", "status": "converted"}
            doc |= {"old_digest": str(D_OLD), "old_manifest": old_manifest}
            doc |= {"new_digest": str(Digest.of(b"%d" % i)), "new_media_type": DOCKER}
            fh.write(json.dumps(doc) + "\n")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        known = KnownOci(path)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with known:
        assert len(known) == 20_000 and Digest.of(b"19999") in known
    assert held < 2 * 1024 * 1024 and peak < 4 * 1024 * 1024, (held, peak, size)
    assert size > 8 * peak  # the file itself would not have fitted
