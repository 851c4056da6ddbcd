"""The one "once per key" primitive: one computation per key under concurrency, failures not
remembered, per-key exclusion that lets go of keys nobody wants."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from oci_normalize.once import OncePerKey


def test_many_askers_of_one_key_share_one_computation() -> None:
    once: OncePerKey[str, int] = OncePerKey()
    calls: list[str] = []
    start = threading.Barrier(8)

    def make() -> int:
        calls.append("made")
        time.sleep(0.05)  # the others arrive while this one computes
        return 42

    answers: list[int] = []

    def ask() -> None:
        start.wait()
        answers.append(once.get("k", make))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [42] * 8 and calls == ["made"]


def test_another_key_never_waits_on_a_slow_one() -> None:
    once: OncePerKey[str, str] = OncePerKey()
    inside = threading.Event()
    release = threading.Event()

    def slow() -> str:
        inside.set()
        release.wait(5)
        return "slow"

    t = threading.Thread(target=once.get, args=("a", slow))
    t.start()
    assert inside.wait(5)
    assert once.get("b", lambda: "fast") == "fast"  # would hang if keys shared a lock
    release.set()
    t.join()
    assert once.peek("a") == "slow"


def test_a_failure_is_not_remembered() -> None:
    once: OncePerKey[str, int] = OncePerKey()

    def boom() -> int:
        raise OSError("down")

    with pytest.raises(OSError):
        once.get("k", boom)
    assert once.peek("k") is None
    assert once.get("k", lambda: 7) == 7


def test_put_keeps_the_first_answer_and_update_changes_only_a_remembered_one() -> None:
    once: OncePerKey[str, frozenset[str]] = OncePerKey()
    once.put("r", frozenset({"a"}))
    once.put("r", frozenset({"b"}))
    once.update("r", lambda tags: tags | {"c"})
    once.update("absent", lambda tags: tags | {"c"})
    assert once.peek("r") == frozenset({"a", "c"}) and once.peek("absent") is None


def test_exclusive_lets_go_of_a_key_nobody_holds_or_waits_for() -> None:
    once: OncePerKey[int, None] = OncePerKey()
    for key in range(1000):  # a service keyed by ever new names stays small
        with once.exclusive(key):
            assert len(once) == 1
    assert len(once) == 0


def test_with_a_limit_only_the_answers_used_last_are_kept() -> None:
    once: OncePerKey[int, int] = OncePerKey(limit=2)
    made: list[int] = []

    def make(key: int) -> Callable[[], int]:
        def one() -> int:
            made.append(key)
            return key

        return one

    for key in (1, 2, 1, 3):  # 1 used again: 2 is the one used longest ago
        once.get(key, make(key))
    assert (once.peek(1), once.peek(2), once.peek(3)) == (1, None, 3)
    assert once.get(2, make(2)) == 2 and made == [1, 2, 3, 2]  # forgotten: made again
