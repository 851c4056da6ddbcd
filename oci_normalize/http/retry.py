"""Trying a request again: the one retry loop and ``Retry-After``, on the schedule of a
:class:`~oci_normalize.options.RetryPolicy` (a pure, testable value in the options).

Only answers that may change are retried: 429 (rate limited; ``Retry-After`` is honoured),
502/503/504 (a proxy or the registry is briefly unwell) and connection failures. Every other 4xx
is final. Waits grow exponentially with jitter (so many workers that failed together do not come
back together), are capped per wait, and the whole affair is bounded both in attempts and in
total time: a registry that never recovers produces a clear error, not a hang.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from oci_normalize.clock import SYSTEM_CLOCK, Clock
from oci_normalize.limits import parse_count
from oci_normalize.options import RetryPolicy

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
