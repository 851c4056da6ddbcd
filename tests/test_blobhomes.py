"""Blob homes: one claim per blob, homes remembered, bounded to the blobs used last."""

from __future__ import annotations

import threading

from oci_normalize.digest import Digest
from oci_normalize.store.blobhomes import BlobHomes

D = [Digest.of(b"%d" % i) for i in range(10)]


def test_homes_are_answered_per_registry_and_repository() -> None:
    homes = BlobHomes()
    homes.note("r", "team/a", D[0])
    homes.note("r", "team/b", D[0])
    assert homes.holds("r", "team/a", D[0]) and not homes.holds("r", "team/c", D[0])
    assert homes.elsewhere("r", "team/c", D[0]) == "team/b"  # the latest first
    assert homes.elsewhere("r", "team/a", D[1]) is None
    homes.note("r", "team/a", D[1])
    assert homes.elsewhere("r", "team/a", D[1]) is None  # only here
    assert not homes.holds("other", "team/a", D[0])


def test_a_claim_lets_one_thread_at_a_time_work_on_a_blob() -> None:
    homes = BlobHomes()
    inside: list[int] = []
    most: list[int] = []

    def work() -> None:
        with homes.claim("r", D[0]):
            inside.append(1)
            most.append(len(inside))
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == [1] * 8


def test_forgets_the_blobs_noted_longest_ago() -> None:
    homes = BlobHomes(max_blobs=3)
    for d in D[:3]:
        homes.note("r", "team/a", d)
    homes.note("r", "team/b", D[0])  # noted again: now the most recent
    homes.note("r", "team/a", D[3])  # one too many: D[1] goes
    assert [homes.holds("r", "team/a", d) for d in D[:4]] == [True, False, True, True]


def test_keeps_the_repositories_that_wrote_a_blob_last() -> None:
    homes = BlobHomes(max_homes=2)
    for repo in ("a", "b", "c", "a"):
        homes.note("r", repo, D[0])
    assert [homes.holds("r", repo, D[0]) for repo in "abc"] == [True, False, True]
    assert homes.elsewhere("r", "a", D[0]) == "c"
    assert homes.elsewhere("r", "z", D[0]) == "a"
