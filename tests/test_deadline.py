"""The deadline watchdog: fires in time order, wakes only when it must, and does not pile up."""

from __future__ import annotations

import socket
import time

from oci_normalize.http import deadline as dl


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.settimeout(5)
    return a, b


def test_a_sooner_deadline_fires_although_a_later_one_is_asleep() -> None:
    late = dl.Deadline(30)
    late.start(None)
    a, b = _pair()
    try:
        soon = dl.Deadline(0.05)
        soon.start(a)
        started = time.monotonic()
        assert a.recv(1) == b""  # the watchdog shut the socket: the blocked read ends
        assert soon.expired
        assert time.monotonic() - started < 2
        assert not late.expired
    finally:
        late.disarm()
        a.close()
        b.close()


def test_a_later_deadline_fires_after_the_earlier_one() -> None:
    a1, b1 = _pair()
    a2, b2 = _pair()
    try:
        first, second = dl.Deadline(0.05), dl.Deadline(0.15)
        first.start(a1)
        second.start(a2)  # later than the head: the watchdog is not woken for it
        assert a2.recv(1) == b""
        assert first.expired and second.expired
    finally:
        for s in (a1, b1, a2, b2):
            s.close()


def test_disarmed_deadlines_do_not_pile_up() -> None:
    watchdog = dl._WATCHDOG
    for _ in range(3 * dl._PRUNE_MIN):
        d = dl.Deadline(600)
        d.start(None)
        d.disarm()
    assert len(watchdog._heap) < 2 * dl._PRUNE_MIN
