"""The retry schedule: bounded in tries and time, jittered, Retry-After as a floor."""

from __future__ import annotations

import random
from typing import NoReturn

import pytest

from oci_normalize.http.retry import Again, parse_retry_after, retrying
from oci_normalize.options import DEFAULT_RETRY, NO_RETRY, RETRY_STATUSES, RetryPolicy
from tests.support.clock import FakeClock


@pytest.mark.parametrize(
    ("retry", "low", "high"),
    [(1, 0.25, 0.5), (2, 0.5, 1.0), (3, 1.0, 2.0), (4, 2.0, 4.0), (5, 4.0, 8.0), (9, 4.0, 8.0)],
)
def test_backoff_doubles_with_jitter_up_to_the_cap(retry: int, low: float, high: float) -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=8.0)
    rng = random.Random(retry)
    waits = [policy.backoff(retry, rng) for _ in range(200)]
    assert all(low <= w <= high for w in waits)
    assert max(waits) - min(waits) > (high - low) / 2  # really jittered


@pytest.mark.parametrize(
    ("policy", "retry", "elapsed", "retry_after", "allowed"),
    [
        (RetryPolicy(attempts=4), 1, 0.0, None, True),
        (RetryPolicy(attempts=4), 3, 0.0, None, True),
        (RetryPolicy(attempts=4), 4, 0.0, None, False),  # 4 tries = 3 retries
        (RetryPolicy(attempts=1), 1, 0.0, None, False),
        (RetryPolicy(total_s=10), 1, 9.9, None, False),  # out of time budget
        (RetryPolicy(total_s=10), 1, 5.0, 4.0, True),
        (RetryPolicy(total_s=10), 1, 5.0, 6.0, False),  # Retry-After past the budget
        (RetryPolicy(max_retry_after_s=30), 1, 0.0, 31.0, False),
    ],
)
def test_wait_is_bounded_by_tries_time_and_retry_after(
    policy: RetryPolicy, retry: int, elapsed: float, retry_after: float | None, allowed: bool
) -> None:
    delay = policy.wait(retry, elapsed=elapsed, retry_after=retry_after, rng=random.Random(0))
    assert (delay is not None) is allowed


def test_retry_after_is_a_floor_for_the_wait() -> None:
    delay = DEFAULT_RETRY.wait(1, elapsed=0, retry_after=3.0, rng=random.Random(0))
    assert delay == 3.0


def test_defaults_retry_what_may_change_and_nothing_else() -> None:
    assert frozenset({429, 502, 503, 504}) == RETRY_STATUSES
    for final in (400, 401, 403, 404, 405, 409, 413, 500, 501):
        assert final not in DEFAULT_RETRY.statuses
    assert NO_RETRY.wait(1, elapsed=0) is None


class _Unlucky(random.Random):
    """Jitter that always draws the longest wait."""

    def uniform(self, a: float, b: float) -> float:
        return max(a, b)


def test_worst_case_total_wait_of_the_defaults_is_small() -> None:
    waits: list[float] = []
    elapsed = 0.0
    while (
        delay := DEFAULT_RETRY.wait(len(waits) + 1, elapsed=elapsed, rng=_Unlucky())
    ) is not None:
        waits.append(delay)
        elapsed += delay
    assert len(waits) == DEFAULT_RETRY.attempts - 1
    assert sum(waits) <= 4.0  # 0.5 + 1 + 2 s: a flaky registry costs seconds, not minutes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 12 ", 12.0),
        ("Thu, 01 Jan 1970 00:01:40 GMT", 60.0),  # now = 40 s after the epoch
        ("Thu, 01 Jan 1970 00:00:10 GMT", 0.0),  # in the past: retry at once
        ("soon", None),
        ("-3", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=40.0) == expected


class GaveUp(Exception):
    pass


def _give_up(tries: int) -> NoReturn:
    raise GaveUp(tries)


def test_the_shared_loop_returns_the_first_answer_and_releases_each_failed_try() -> None:
    events: list[str] = []
    answers: list[str | Again] = [
        Again(give_up=_give_up, release=lambda: events.append("release 1")),
        Again(give_up=_give_up, retry_after=3.0, release=lambda: events.append("release 2")),
        "done",
    ]

    def attempt() -> str | Again:
        events.append("try")
        return answers.pop(0)

    policy = RetryPolicy(attempts=4, base_s=0.5, cap_s=0.5, total_s=60.0)
    got = retrying(policy, attempt, backoff=lambda s: events.append(f"wait {s}"), clock=FakeClock())
    assert got == "done"
    assert events[0] == "try" and events[1] == "release 1"
    assert events[2].startswith("wait 0.") and float(events[2][5:]) <= 0.5
    assert events[3:] == ["try", "release 2", "wait 3.0", "try"]  # Retry-After is the floor


def test_the_shared_loop_gives_up_with_the_number_of_tries_and_waits_no_more() -> None:
    waits: list[float] = []
    released: list[int] = []

    def attempt() -> None | Again:
        return Again(give_up=_give_up, release=lambda: released.append(1))

    with pytest.raises(GaveUp) as caught:
        retrying(RetryPolicy(attempts=3), attempt, backoff=waits.append, clock=FakeClock())
    assert caught.value.args == (3,)
    assert len(waits) == 2 and len(released) == 2  # the last try's answer is the error
    with pytest.raises(GaveUp) as once:
        retrying(NO_RETRY, attempt, backoff=waits.append, clock=FakeClock())
    assert once.value.args == (1,) and len(waits) == 2
