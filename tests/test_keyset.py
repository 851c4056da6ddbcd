"""The compact key index behind resume and the repository count (pure, in process)."""

from __future__ import annotations

import tracemalloc

import pytest

from oci_normalize.batch.keyset import HashIndex, HashSet


def test_add_get_and_contains_are_exact_for_distinct_keys() -> None:
    index = HashIndex(buffer_keys=7)  # many merges on a small set
    items = [f"sha256:{i:064x}".encode() for i in range(1000)]
    for n, item in enumerate(items):
        assert index.add(item, n)
    assert len(index) == 1000
    assert [index.get(item) for item in items] == list(range(1000))
    assert not index.add(items[3], 99)  # known: nothing changes
    assert index.get(items[3]) == 3 and len(index) == 1000
    assert index.get(b"sha256:absent") is None
    assert b"sha256:absent" not in index and items[999] in index
    assert "a string, not bytes" not in index


def test_a_collision_keeps_the_first_value(monkeypatch: pytest.MonkeyPatch) -> None:
    index = HashIndex()
    monkeypatch.setattr(index, "key", lambda _item: 42)
    assert index.add(b"one", 1)
    assert not index.add(b"two", 2)  # same key: the caller must confirm (see KnownOci)
    assert index.get(b"two") == 1


def test_two_indexes_hash_differently() -> None:
    assert HashIndex().key(b"x") != HashIndex().key(b"x")  # keyed: collisions cannot be aimed


def test_hash_set_counts_distinct_items() -> None:
    seen = HashSet()
    for name in ["a", "b", "a", "c", "b", ""]:
        seen.add(name.encode())
    assert len(seen) == 4 and b"c" in seen and b"d" not in seen


@pytest.mark.parametrize(
    "count", [100_000, pytest.param(1_000_000, marks=pytest.mark.slow, id="1M")]
)
def test_keys_fit_in_bounded_memory(count: int) -> None:
    """16 bytes a key held, about twice that while merging, plus the buffer: a set of a
    million digest strings would take ~150 MB (~150 bytes a key)."""
    tracemalloc.start()
    try:
        index = HashIndex()
        for i in range(count):
            index.add(b"sha256:%064x" % i, i)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(index) == count
    assert index.get(b"sha256:%064x" % (count // 3)) == count // 3
    assert held < 20 * count + 8 * 1024 * 1024, f"held {held / 2**20:.1f} MiB"
    assert peak < 40 * count + 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
