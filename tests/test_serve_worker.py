"""The worker pool's settlement rules, in process with an injected clock (nothing sleeps)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from oci_normalize.errors import NotFoundError, RefusedError, RegistryError
from oci_normalize.serve.metrics import OWN_WRITE, Metrics
from oci_normalize.serve.queue import SqliteQueue, WorkItem, open_sqlite
from oci_normalize.serve.worker import GONE, Outcome, WorkerPool, backoff
from oci_normalize.serve.written import WrittenDigests


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class Script:
    """A process function that raises or returns what each call is told to."""

    def __init__(self, *steps: Exception | Outcome) -> None:
        self.steps = list(steps)
        self.calls: list[WorkItem] = []

    def __call__(self, item: WorkItem) -> Outcome:
        self.calls.append(item)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(tmp_path: Path, clock: Clock) -> Iterator[SqliteQueue]:
    q = open_sqlite(tmp_path, clock=clock)
    yield q
    q.close()


def pool_for(
    queue: SqliteQueue, script: Script, clock: Clock, logs: list[dict[str, object]]
) -> tuple[WorkerPool, Metrics]:
    metrics = Metrics()
    pool = WorkerPool(
        queue,
        script,
        metrics=metrics,
        log=lambda kind, **f: logs.append({"kind": kind, **f}),
        concurrency=1,
        max_attempts=3,
        clock=clock,
    )
    return pool, metrics


def drive(queue: SqliteQueue, pool: WorkerPool, clock: Clock, rounds: int) -> None:
    """Take and handle what is due, advancing the clock past each backoff."""
    for _ in range(rounds):
        lease = queue.take(0)
        if lease is None:
            clock.now += 1000
            continue
        pool.handle(lease)


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(a) for a in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(40) == 300.0


def test_success_acks_and_measures_latency(queue: SqliteQueue, clock: Clock) -> None:
    logs: list[dict[str, object]] = []
    pool, metrics = pool_for(
        queue, Script(Outcome("converted", "sha256:a", "sha256:b")), clock, logs
    )
    queue.put([WorkItem("a", "1", clock.now - 2.5)])
    drive(queue, pool, clock, 1)
    assert queue.depth() == 0
    assert metrics.converted._value.get() == 1
    assert metrics.latency._sum.get() == 2.5
    assert logs[-1]["outcome"] == "converted"


def test_failures_retry_with_backoff_then_park(queue: SqliteQueue, clock: Clock) -> None:
    logs: list[dict[str, object]] = []
    boom = RegistryError("registry said 500")
    script = Script(boom, boom, boom)
    pool, metrics = pool_for(queue, script, clock, logs)
    queue.put([WorkItem("a", "1", clock.now)])
    lease = queue.take(0)
    assert lease is not None
    pool.handle(lease)
    assert queue.take(0) is None  # waits its backoff
    clock.now += backoff(1)
    drive(queue, pool, clock, 6)
    assert len(script.calls) == 3
    assert queue.depth() == 0
    assert queue.parked() == [(WorkItem("a", "1", 5000.0), "registry said 500")]
    assert metrics.failed._value.get() == 3 and metrics.parked._value.get() == 1
    assert [entry["outcome"] for entry in logs] == ["retry", "retry", "parked"]


def test_a_refusal_is_parked_at_once(queue: SqliteQueue, clock: Clock) -> None:
    logs: list[dict[str, object]] = []
    script = Script(RefusedError("signed: cosign signature names the old digest"))
    pool, _ = pool_for(queue, script, clock, logs)
    queue.put([WorkItem("a", "1", 0.0)])
    drive(queue, pool, clock, 3)
    assert len(script.calls) == 1
    [(_, reason)] = queue.parked()
    assert reason.startswith("refused: signed")


def test_not_found_is_retried_then_acked_as_gone(queue: SqliteQueue, clock: Clock) -> None:
    logs: list[dict[str, object]] = []
    missing = NotFoundError("manifest unknown")
    pool, _ = pool_for(queue, Script(missing, Outcome("converted")), clock, logs)
    queue.put([WorkItem("a", "1", 0.0)])
    drive(queue, pool, clock, 4)
    assert [e["outcome"] for e in logs] == ["retry", "converted"]  # the tag appeared later

    logs.clear()
    pool, _ = pool_for(queue, Script(missing, missing, missing), clock, logs)
    queue.put([WorkItem("b", "1", 0.0)])
    drive(queue, pool, clock, 6)
    assert [e["outcome"] for e in logs] == ["retry", "retry", GONE]
    assert queue.parked() == [] and queue.depth() == 0


def test_an_unexpected_exception_is_retried_not_fatal(queue: SqliteQueue, clock: Clock) -> None:
    logs: list[dict[str, object]] = []
    pool, _ = pool_for(queue, Script(KeyError("x"), Outcome(OWN_WRITE)), clock, logs)
    queue.put([WorkItem("a", "1", 0.0)])
    drive(queue, pool, clock, 3)
    assert [e["outcome"] for e in logs] == ["retry", OWN_WRITE]


def test_stop_releases_what_is_in_hand(queue: SqliteQueue, clock: Clock) -> None:
    import threading

    started, finish = threading.Event(), threading.Event()

    def slow(_item: WorkItem) -> Outcome:
        started.set()
        finish.wait(10)
        return Outcome("converted")

    pool = WorkerPool(
        queue, slow, metrics=Metrics(), log=lambda *_a, **_k: None, concurrency=1, clock=clock
    )
    queue.put([WorkItem("a", "1", 0.0)])
    pool.start()
    assert started.wait(10)
    assert pool.stop(0.2) == 1  # grace over: given back, still queued
    assert queue.depth() == 1
    finish.set()


def test_written_digests_survive_a_restart_and_stay_bounded(tmp_path: Path) -> None:
    w = WrittenDigests(tmp_path / "w.sqlite", capacity=3)
    for i in range(5):
        w.add(f"sha256:{i}")
    w.close()
    again = WrittenDigests(tmp_path / "w.sqlite", capacity=3)
    assert [f"sha256:{i}" in again for i in range(5)] == [False, False, True, True, True]
    again.close()


def test_one_reference_is_worked_on_by_one_thread_at_a_time() -> None:
    import threading
    import time

    from oci_normalize.once import OncePerKey

    locks: OncePerKey[tuple[str, str], None] = OncePerKey()
    inside: list[str] = []
    overlaps: list[int] = []

    def work(key: tuple[str, str], name: str) -> None:
        with locks.exclusive(key):
            inside.append(name)
            overlaps.append(len(inside))
            time.sleep(0.05)
            inside.remove(name)

    same = [threading.Thread(target=work, args=(("a", "1"), f"s{i}")) for i in range(4)]
    for t in same:
        t.start()
    for t in same:
        t.join()
    assert max(overlaps) == 1
    overlaps.clear()
    other = [threading.Thread(target=work, args=((f"r{i}", "1"), f"o{i}")) for i in range(4)]
    for t in other:
        t.start()
    for t in other:
        t.join()
    assert max(overlaps) > 1  # different references do not wait for each other
    assert len(locks) == 0  # nothing kept for references no longer worked on
