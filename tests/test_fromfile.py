"""``batch --from-file`` in constant memory: lines read as they come, references spooled to an
on-disk index (unique, sorted) and read back as the run consumes them (issue 19)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from oci_normalize.batch import targets as tg
from oci_normalize.batch.refspool import RefSpool
from oci_normalize.batch.targets import Selection, from_lines
from oci_normalize.cli import files
from oci_normalize.errors import ManifestTooLargeError, OciNormalizeError
from oci_normalize.reference import Reference


def many(count: int) -> Iterator[str]:
    """``count`` distinct references over 100 repositories, newest repository first, each
    twice (the run wants them once, sorted)."""
    for n in reversed(range(count)):
        line = f"reg.local:5000/team/r{n % 100:03d}:t{n:06d}"
        yield line
        if n % 7 == 0:
            yield f"  {line}  "


def test_a_long_list_is_read_back_unique_and_sorted_without_holding_it() -> None:
    count = 30_000
    tracemalloc.start()
    try:
        stream = from_lines(many(count), Selection())
        seen, last, first_peak = 0, ("", ""), tracemalloc.get_traced_memory()[1]
        for ref in stream.refs:
            key = (ref.repository, ref.tag or "")
            assert key > last  # sorted, and each once
            last, seen = key, seen + 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == count and stream.repositories == 100
    # Held in a list, 30,000 parsed references take well over 10 MiB; spooled, what is
    # held at once is a batch of rows and a page read back.
    assert max(first_peak, peak) < 4 * 1024 * 1024, (first_peak, peak)


def test_the_spool_leaves_nothing_behind_whether_drained_or_not(tmp_path: Path) -> None:
    lines = ["h.io/a/app:1", "h.io/a/app:2", "h.io/b/app:1"]
    stream = from_lines(lines, Selection(), directory=tmp_path)
    assert [p.name.startswith(".oci-normalize-refs-") for p in tmp_path.iterdir()] == [True]
    assert [str(r) for r in stream.refs] == lines
    assert list(tmp_path.iterdir()) == []
    abandoned = from_lines(lines, Selection(), directory=tmp_path).refs
    assert isinstance(abandoned, Generator)
    assert next(abandoned) == Reference.parse(lines[0])
    abandoned.close()  # a run that stops early
    assert list(tmp_path.iterdir()) == []


def test_a_line_failing_midway_leaves_no_spool(tmp_path: Path) -> None:
    def lines() -> Iterator[str]:
        yield "h.io/a/app:1"
        raise OciNormalizeError("--from-file x: not UTF-8 text (byte 13)")

    with pytest.raises(OciNormalizeError, match="not UTF-8"):
        from_lines(lines(), Selection(), directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bad_lines_are_listed_up_to_a_bound_then_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tg, "MAX_LISTED_LINE_FAILURES", 3)
    lines = [f"Bad/Name{n}:1" for n in range(10)] + ["h.io/a/app:1"]
    stream = from_lines(lines, Selection())
    assert [what for what, _ in stream.failures] == [
        "Bad/Name0:1",
        "Bad/Name1:1",
        "Bad/Name2:1",
        "7 more lines",
    ]
    assert "the first 3 are listed" in stream.failures[-1][1]
    assert [str(r) for r in stream.refs] == ["h.io/a/app:1"]


def test_the_spool_counts_repositories_per_registry() -> None:
    with RefSpool() as spool:
        for text in ("a.io/x:1", "b.io/x:1", "a.io/x:2", "a.io/y:1", "a.io/x:1"):
            spool.add(Reference.parse(text))
        assert spool.repositories() == 3 and len(spool) == 4


# ---- reading the file ----------------------------------------------------------------------


def test_lines_are_read_as_they_come_and_a_cut_line_fails_alone(tmp_path: Path) -> None:
    listing = tmp_path / "refs.txt"
    long = b"h.io/a/" + b"x" * (3 * files.MAX_LINE_BYTES)
    exact = b"h.io/b/" + b"y" * (files.MAX_LINE_BYTES - 7)  # this long, then its newline
    listing.write_bytes(b"h.io/a/app:1\n" + long + b"\n" + exact + b"\nh.io/a/app:2")
    got = list(files.iter_from_file(str(listing)))
    assert got[0] == "h.io/a/app:1\n" and got[-1] == "h.io/a/app:2"
    assert len(got) == 4 and len(got[1]) == files.MAX_LINE_BYTES  # held only so far
    assert got[2] == exact.decode() + "\n"
    stream = from_lines(got, Selection())
    assert [str(r) for r in stream.refs] == ["h.io/a/app:1", "h.io/a/app:2"]
    assert len(stream.failures) == 2  # the cut line and the long one: no references


def test_the_cap_counts_every_byte_and_bad_utf8_names_its_offset(tmp_path: Path) -> None:
    listing = tmp_path / "refs.txt"
    listing.write_bytes(b"h.io/a/app:1\n" + b"z" * 5000 + b"\n")
    with pytest.raises(ManifestTooLargeError, match="over the 4000 byte cap"):
        list(files.iter_from_file(str(listing), cap=4000))
    listing.write_bytes(b"h.io/a/app:1\nh.io/\xff/app:1\n")
    with pytest.raises(OciNormalizeError, match=r"not UTF-8 text \(byte 18\)"):
        list(files.iter_from_file(str(listing)))


def test_a_spool_beside_a_directory_it_cannot_write_goes_to_tmpdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "tmp"
    elsewhere.mkdir()
    monkeypatch.setenv("TMPDIR", str(elsewhere))
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
    with RefSpool(tmp_path / "gone") as spool:  # no such directory: no scratch there
        spool.add(Reference.parse("h.io/a/app:1"))
        assert [p.name.startswith(".oci-normalize-refs-") for p in elsewhere.iterdir()] == [True]
        assert [str(r) for r in spool.drain()] == ["h.io/a/app:1"]
    assert list(elsewhere.iterdir()) == []
