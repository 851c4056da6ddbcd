"""The counting summary: the same BatchSummary as counting a list, from counters alone."""

from __future__ import annotations

from collections.abc import Iterator

from oci_normalize.batch.run import summarize
from oci_normalize.batch.tally import Tally
from oci_normalize.result_models import RefResult
from oci_normalize.results import BatchStatus

CASES: list[tuple[str, BatchStatus, int]] = [
    ("team/api", "converted", 2),
    ("team/api", "converted", 1),
    ("team/api", "failed", 0),
    ("team/web", "already-oci", 0),
    ("team/web", "would-convert", 0),
    ("team/web", "artifact", 0),
    ("mirror/x", "present", 0),
    ("", "failed", 0),  # an enumeration failure names no repository
]


def _results() -> list[RefResult]:
    return [
        RefResult(reference=f"r/{repo}:{i}", repository=repo, status=status, pushed_manifests=n)
        for i, (repo, status, n) in enumerate(CASES)
    ]


def test_counts_every_status_and_distinct_repository() -> None:
    tally = Tally().extend(_results())
    s = tally.summary(requests=7, seconds=1.23456, dry_run=False, destination="d")
    assert (s.references, s.repositories, s.converted, s.failed) == (8, 4, 2, 2)
    assert (s.already_oci, s.would_convert, s.artifacts, s.present) == (1, 1, 1, 1)
    assert (s.pushed_manifests, s.requests, s.seconds, s.destination) == (3, 7, 1.235, "d")
    assert tally.failed == 2


def test_summarize_counts_like_the_tally_and_holds_no_result() -> None:
    seen = 0

    def once() -> Iterator[RefResult]:  # one pass: summarize must not need a list
        nonlocal seen
        for r in _results():
            seen += 1
            yield r

    s = summarize(once(), requests=0, seconds=0, dry_run=True, shard="1/2")
    assert seen == 8 and s.references == 8 and s.dry_run and s.shard == "1/2"
    assert s == Tally().extend(_results()).summary(requests=0, seconds=0, dry_run=True, shard="1/2")
