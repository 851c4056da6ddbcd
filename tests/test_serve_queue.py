"""The embedded SQLite work queue: durable puts, dedupe, leases, retry, park, restart."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from oci_normalize.serve.queue import QueueClosedError, SqliteQueue, WorkItem, open_sqlite


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def item(repo: str = "team/app", ref: str = "1", at: float = 1.0) -> WorkItem:
    return WorkItem(repo, ref, at)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(tmp_path: Path, clock: Clock) -> Iterator[SqliteQueue]:
    q = open_sqlite(tmp_path / "state", clock=clock)
    yield q
    q.close()


def test_put_take_ack(queue: SqliteQueue) -> None:
    queue.put([item(), item(ref="2")])
    assert queue.depth() == 2
    lease = queue.take(0)
    assert lease is not None and lease.item == item() and lease.attempt == 1
    queue.ack(lease)
    assert queue.depth() == 1
    second = queue.take(0)
    assert second is not None and second.item.ref == "2"
    queue.ack(second)
    assert queue.depth() == 0
    assert queue.take(0) is None


def test_a_waiting_item_is_not_added_twice(queue: SqliteQueue) -> None:
    queue.put([item(at=1.0)] * 3)
    queue.put([item(at=2.0)])
    assert queue.depth() == 1
    lease = queue.take(0)
    assert lease is not None and lease.item.received == 1.0  # the first arrival is kept


def test_a_push_while_leased_is_queued_again(queue: SqliteQueue) -> None:
    queue.put([item()])
    lease = queue.take(0)
    assert lease is not None
    queue.put([item(at=5.0)])  # the image may have changed after it was read
    assert queue.depth() == 2
    queue.ack(lease)
    again = queue.take(0)
    assert again is not None and again.item.received == 5.0


def test_retry_waits_for_its_delay(queue: SqliteQueue, clock: Clock) -> None:
    queue.put([item()])
    lease = queue.take(0)
    assert lease is not None
    queue.retry(lease, 30.0, "registry said 503")
    assert queue.take(0) is None
    clock.now += 31
    again = queue.take(0)
    assert again is not None and again.attempt == 2


def test_retry_merges_with_a_newer_waiting_copy(queue: SqliteQueue) -> None:
    queue.put([item()])
    lease = queue.take(0)
    assert lease is not None
    queue.put([item(at=9.0)])
    queue.retry(lease, 60.0, "boom")
    assert queue.depth() == 1
    again = queue.take(0)
    assert again is not None and again.item.received == 9.0 and again.attempt == 1


def test_park_keeps_the_reason_and_a_success_clears_it(queue: SqliteQueue) -> None:
    queue.put([item()])
    lease = queue.take(0)
    assert lease is not None
    queue.park(lease, "refused: signed")
    assert queue.depth() == 0
    assert queue.parked() == [(item(), "refused: signed")]
    queue.put([item()])
    fresh = queue.take(0)
    assert fresh is not None
    queue.ack(fresh)
    assert queue.parked() == []


def test_release_does_not_count_as_an_attempt(queue: SqliteQueue) -> None:
    queue.put([item()])
    lease = queue.take(0)
    assert lease is not None
    queue.release(lease)
    again = queue.take(0)
    assert again is not None and again.attempt == 1


def test_a_lease_held_at_close_is_taken_again_after_reopen(tmp_path: Path, clock: Clock) -> None:
    q = open_sqlite(tmp_path, clock=clock)
    q.put([item(), item(ref="2")])
    lease = q.take(0)
    assert lease is not None
    q.close()  # never acknowledged: as if the process died
    q2 = open_sqlite(tmp_path, clock=clock)
    try:
        assert q2.depth() == 2
        refs = set()
        for _ in range(2):
            again = q2.take(0)
            assert again is not None
            refs.add(again.item.ref)
        assert refs == {"1", "2"}
    finally:
        q2.close()


def _take_and_die(path: str, ready: multiprocessing.synchronize.Event) -> None:
    q = open_sqlite(Path(path))
    q.put([item(ref=f"k{i}") for i in range(3)])
    assert q.take(0) is not None
    ready.set()
    os.kill(os.getpid(), signal.SIGKILL)


def test_kill9_with_a_lease_loses_nothing(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_take_and_die, args=(str(tmp_path), ready))
    proc.start()
    proc.join(30)
    assert ready.is_set() and proc.exitcode == -signal.SIGKILL
    q = open_sqlite(tmp_path)
    try:
        taken = [q.take(0) for _ in range(4)]
        assert sorted(t.item.ref for t in taken if t is not None) == ["k0", "k1", "k2"]
        assert taken[3] is None
    finally:
        q.close()


def test_a_restart_beside_a_newer_copy_keeps_one(tmp_path: Path) -> None:
    q = open_sqlite(tmp_path)
    q.put([item()])
    assert q.take(0) is not None
    q.put([item(at=7.0)])
    q.close()
    q2 = open_sqlite(tmp_path)
    try:
        assert q2.depth() == 1
    finally:
        q2.close()


def test_a_restart_with_two_leases_of_one_reference_keeps_one(tmp_path: Path) -> None:
    q = open_sqlite(tmp_path)
    q.put([item(at=1.0)])
    assert q.take(0) is not None
    q.put([item(at=2.0)])  # pushed again while the first was being worked on
    assert q.take(0) is not None  # and taken by a second worker before the kill
    q.put([item(ref="other")])
    q.close()
    q2 = open_sqlite(tmp_path)
    try:
        assert q2.depth() == 2
        first = q2.take(0)
        assert first is not None and first.item == item(at=1.0)
    finally:
        q2.close()


def test_take_wakes_up_on_put(queue: SqliteQueue) -> None:
    import threading

    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(queue.take(10)))
    t.start()
    queue.put([item()])
    t.join(5)
    assert not t.is_alive() and got and got[0] is not None


def test_read_only_status_view_leaves_leases_alone(tmp_path: Path) -> None:
    q = open_sqlite(tmp_path)
    q.put([item()])
    lease = q.take(0)
    assert lease is not None
    view = SqliteQueue(tmp_path / "queue.sqlite", read_only=True)
    assert view.depth() == 1
    view.close()
    q.ack(lease)  # still ours: the view did not take it back
    assert q.depth() == 0
    q.close()


def test_calls_after_close_raise(tmp_path: Path) -> None:
    q = open_sqlite(tmp_path)
    q.close()
    with pytest.raises(QueueClosedError):
        q.put([item()])


def test_concurrent_puts_share_commits_and_lose_nothing(tmp_path: Path) -> None:
    import threading

    q = open_sqlite(tmp_path)
    commits: list[int] = []
    insert = q._intake._insert  # count the transactions the puts were grouped into

    def counting(db: object, items: list[WorkItem]) -> None:
        commits.append(len(items))
        insert(db, items)  # type: ignore[arg-type]

    q._intake._insert = counting

    def worker(n: int) -> None:
        for i in range(100):
            q.put([item(ref=f"{n}-{i}"), item(ref="shared")])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert q.depth() == 801  # 800 distinct and one shared, however the commits fell
        assert sum(commits) == 1600
        assert len(commits) < 800  # some puts shared a commit
    finally:
        q.close()
    q2 = open_sqlite(tmp_path)
    try:
        assert q2.depth() == 801  # and all of it durable
    finally:
        q2.close()


def test_a_failed_commit_fails_every_put_in_it(tmp_path: Path) -> None:
    q = open_sqlite(tmp_path)

    def failing(db: object, items: list[WorkItem]) -> None:
        raise OSError("disk full")

    q._intake._insert = failing
    with pytest.raises(OSError, match="disk full"):
        q.put([item()])
    q.close()
