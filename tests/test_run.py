"""The batch run loop in process: lazy, bounded, every reference answered once.

The runner's reads and conversions are replaced by an in-memory store (a manifest per tag,
tags of a repository sharing digests in pairs); only the loop that feeds them is under test.
The real registry runs it in tests/test_batch.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from oci_normalize.batch.run import BatchOptions, _Group, _Runner, window
from oci_normalize.digest import Digest
from oci_normalize.errors import OciNormalizeError
from oci_normalize.manifest import VerifiedManifest
from oci_normalize.reference import Reference
from oci_normalize.result_models import RefResult
from oci_normalize.results import ALREADY_OCI, FAILED

OCI = "application/vnd.oci.image.manifest.v1+json"
TAGS_PER_REPO = 10


def _manifest(repository: str, tag: str) -> VerifiedManifest:
    """The in-memory store: tag ``tN`` holds the same manifest as ``tN^1`` (pairs)."""
    n = int(tag[1:]) // 2
    data = b'{"schemaVersion":2,"mediaType":"%s","r":"%s","n":%d}' % (
        OCI.encode(),
        repository.encode(),
        n,
    )
    return VerifiedManifest(data=data, media_type=OCI, digest=Digest.of(data))


class MemoryRunner(_Runner):
    """Reads from the in-memory store; a group "converts" to already-oci at once."""

    def __init__(self, concurrency: int, broken: frozenset[str] = frozenset()) -> None:
        super().__init__(None, BatchOptions(concurrency=concurrency), None, frozenset())  # type: ignore[arg-type]
        self.broken = broken
        self.groups: list[list[str]] = []
        self._lock = threading.Lock()

    def _read(self, ref: Reference) -> VerifiedManifest:
        if str(ref) in self.broken:
            raise OciNormalizeError(f"{ref}: gone")
        return _manifest(ref.repository, ref.tag or "")

    def _convert(self, group: _Group) -> list[RefResult]:
        with self._lock:
            self.groups.append([r.tag or "" for r in group.refs])
        return [self._result(ref, group, ALREADY_OCI) for ref in group.refs]


class Counting:
    """A one-pass generator of ``count`` references that counts how far it was read."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.taken = 0

    def __iter__(self) -> Iterator[Reference]:
        for i in range(self.count):
            self.taken += 1
            repo, tag = divmod(i, TAGS_PER_REPO)
            yield Reference(registry="mem.local", repository=f"team/app{repo}", tag=f"t{tag}")


@pytest.mark.parametrize("concurrency", [1, 4, 16])
def test_references_are_read_at_most_a_window_ahead(concurrency: int) -> None:
    refs = Counting(10_000)
    runner = MemoryRunner(concurrency)
    seen: set[str] = set()
    ahead = 0
    for result in runner.results(refs):
        seen.add(result.reference)
        ahead = max(ahead, refs.taken - len(seen))
    assert len(seen) == 10_000 and refs.taken == 10_000
    # taken and not answered: in flight, read and waiting for their repository, or grouped
    assert ahead <= max(window(concurrency), TAGS_PER_REPO), ahead
    assert ahead >= 1  # it does read ahead (the bound is not met by reading nothing)


def test_tags_sharing_a_digest_form_one_group_and_every_result_comes_once() -> None:
    runner = MemoryRunner(8, broken=frozenset({"mem.local/team/app3:t4"}))
    results = list(runner.results(Counting(100)))
    assert sorted(r.reference for r in results) == sorted(str(r) for r in Counting(100))
    failed = [r for r in results if r.status == FAILED]
    assert [(r.reference, r.error) for r in failed] == [
        ("mem.local/team/app3:t4", "mem.local/team/app3:t4: gone")
    ]
    # pairs t0+t1, t2+t3…: 5 groups a repository; app3's t4 failed, so t5 is alone
    assert sorted(map(len, runner.groups)).count(2) == 10 * 5 - 1
    assert ["t5"] in runner.groups
    same = {r.reference: r.same_digest for r in results}
    assert same["mem.local/team/app0:t0"] == ["t1"]


def test_a_consumer_that_stops_early_stops_the_reading() -> None:
    refs = Counting(10_000)
    results = MemoryRunner(4).results(refs)
    first = [next(results) for _ in range(10)]
    results.close()  # the pool is shut down, nothing more is read
    assert len(first) == 10 and refs.taken <= 10 + window(4)


def test_a_failing_conversion_fails_its_group_only() -> None:
    class Exploding(MemoryRunner):
        def _convert(self, group: _Group) -> list[RefResult]:
            if group.refs[0].repository == "team/app1":
                raise RuntimeError("boom")
            return super()._convert(group)

    results = list(Exploding(4).results(Counting(30)))
    failed = sorted(r.reference for r in results if r.status == FAILED)
    assert failed == [f"mem.local/team/app1:t{i}" for i in range(10)]
    assert len(results) == 30


def test_a_repository_larger_than_the_window_is_read_whole_then_answered() -> None:
    class Big(Counting):
        def __iter__(self) -> Iterator[Reference]:
            for i in range(self.count):
                self.taken += 1
                yield Reference(registry="mem.local", repository="team/big", tag=f"t{i}")

    refs = Big(300)
    runner = MemoryRunner(1)  # a window of 4
    results = list(runner.results(refs))
    assert len(results) == 300 and len(runner.groups) == 150
