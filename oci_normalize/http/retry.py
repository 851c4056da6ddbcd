"""When and how long to wait before trying a request again: a pure, testable schedule.

Only answers that may change are retried: 429 (rate limited; ``Retry-After`` is honoured),
502/503/504 (a proxy or the registry is briefly unwell) and connection failures. Every other 4xx
is final. Waits grow exponentially with jitter (so many workers that failed together do not come
back together), are capped per wait, and the whole affair is bounded both in attempts and in
total time: a registry that never recovers produces a clear error, not a hang.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NoReturn, TypeVar

from oci_normalize.http.clock import SYSTEM_CLOCK, Clock
from oci_normalize.limits import parse_count

#: HTTP statuses worth another try.
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
#: Tries per request, the first one included (so 4 means up to 3 retries).
MAX_ATTEMPTS: Final = 4
#: No retry starts later than this many seconds after the first try.
MAX_RETRY_TIME_S: Final = 60.0
#: The first wait is drawn from [BASE/2, BASE]; each later one doubles, up to the cap.
BACKOFF_BASE_S: Final = 0.5
BACKOFF_CAP_S: Final = 8.0
#: A ``Retry-After`` longer than this is not waited for: the request fails as rate limited.
MAX_RETRY_AFTER_S: Final = 60.0


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    attempts: int = MAX_ATTEMPTS
    total_s: float = MAX_RETRY_TIME_S
    base_s: float = BACKOFF_BASE_S
    cap_s: float = BACKOFF_CAP_S
    max_retry_after_s: float = MAX_RETRY_AFTER_S
    statuses: frozenset[int] = RETRY_STATUSES

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """The jittered wait before retry number ``retry`` (1 for the first retry)."""
        ceiling = min(self.cap_s, self.base_s * (2 ** max(retry - 1, 0)))
        return (rng or random).uniform(ceiling / 2, ceiling)

    def wait(
        self,
        retry: int,
        *,
        elapsed: float,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to sleep before retry ``retry``, or None when the budget says stop.

        ``elapsed`` is the time since the first try. A ``Retry-After`` is a floor for the wait;
        one beyond :attr:`max_retry_after_s` or past the time budget ends the retries.
        """
        if retry >= self.attempts:
            return None
        delay = self.backoff(retry, rng)
        if retry_after is not None:
            if retry_after > self.max_retry_after_s:
                return None
            delay = max(delay, retry_after)
        if elapsed + delay > self.total_s:
            return None
        return delay


NO_RETRY: Final = RetryPolicy(attempts=1)
DEFAULT_RETRY: Final = RetryPolicy()

T = TypeVar("T")


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Again:
    """What a try returns when it is worth another one.

    ``give_up(tries)`` raises the final error once the policy says stop; ``release`` frees what
    the try still holds (an answer's connection) before the wait; ``retry_after`` is the
    server's ``Retry-After``, a floor for the wait.
    """

    give_up: Callable[[int], NoReturn]
    retry_after: float | None = None
    release: Callable[[], None] = _nothing


def retrying(
    policy: RetryPolicy,
    attempt: Callable[[], T | Again],
    *,
    backoff: Callable[[float], None],
    clock: Clock = SYSTEM_CLOCK,
) -> T:
    """The one retry loop (requests and blob uploads): call ``attempt`` until it returns a
    value, waiting ``policy``'s schedule (through ``backoff``) between tries; ``clock`` tells
    the time spent against the policy's budget."""
    start = clock.monotonic()
    tries = 0
    while True:
        outcome = attempt()
        if not isinstance(outcome, Again):
            return outcome
        tries += 1
        delay = policy.wait(
            tries, elapsed=clock.monotonic() - start, retry_after=outcome.retry_after
        )
        if delay is None:
            outcome.give_up(tries)
        outcome.release()
        backoff(delay)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if unusable."""
    if value is None:
        return None
    value = value.strip()
    seconds = parse_count(value)
    if seconds is not None:
        return float(seconds)
    if value.isdigit():
        return None  # digits, but not ones to wait for (too many, or not ASCII)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)
