"""The deadline watchdog: fires in time order, wakes only when it must, and does not pile up."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from oci_normalize.digest import Digest
from oci_normalize.errors import TransportError
from oci_normalize.http import deadline as dl
from oci_normalize.options import NO_RETRY, ClientOptions
from oci_normalize.reference import Reference
from oci_normalize.store.registry import Registry
from tests.support.clock import FakeClock


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
    watchdog = dl.Watchdog(clock=FakeClock(), background=False)
    for _ in range(3 * dl._PRUNE_MIN):
        d = dl.Deadline(600, watchdog=watchdog)
        d.start(None)
        d.disarm()
    assert len(watchdog._heap) < 2 * dl._PRUNE_MIN


# ---- on a fake clock: the order of firing, without waiting ---------------------------------------


def test_deadlines_fire_in_time_order_as_the_clock_passes_them() -> None:
    clock = FakeClock()
    watchdog = dl.Watchdog(clock=clock, background=False)
    late, soon, mid = (dl.Deadline(s, watchdog=watchdog) for s in (30, 5, 10))
    for d in (late, soon, mid):
        d.start(None)
    assert watchdog.fire_due() == []
    clock.advance(5)
    assert watchdog.fire_due() == [soon]
    clock.advance(20)
    assert watchdog.fire_due() == [mid]
    assert not late.expired
    clock.advance(5)
    assert watchdog.fire_due() == [late]
    assert soon.expired and mid.expired and late.expired
    assert clock.slept == []


def test_an_extended_deadline_fires_at_its_new_time_and_a_disarmed_one_never() -> None:
    clock = FakeClock()
    watchdog = dl.Watchdog(clock=clock, background=False)
    body, closed = dl.Deadline(10, watchdog=watchdog), dl.Deadline(10, watchdog=watchdog)
    body.start(None)
    closed.start(None)
    body.extend(20)  # a long blob announced its length
    closed.disarm()  # the caller read its answer and closed it
    clock.advance(10)
    assert watchdog.fire_due() == []
    assert not body.expired and not closed.expired
    clock.advance(20)
    assert watchdog.fire_due() == [body]
    assert not closed.expired


def test_a_deadline_not_yet_started_is_not_timed() -> None:
    clock = FakeClock()
    watchdog = dl.Watchdog(clock=clock, background=False)
    d = dl.Deadline(1, watchdog=watchdog)  # armed, but the request is not sent yet
    clock.advance(100)
    assert watchdog.fire_due() == []
    d.start(None)  # sent now: its second runs from here
    clock.advance(0.5)
    assert watchdog.fire_due() == []
    clock.advance(0.5)
    assert watchdog.fire_due() == [d]


def test_a_fired_deadline_shuts_its_socket_so_a_blocked_read_ends() -> None:
    clock = FakeClock()
    watchdog = dl.Watchdog(clock=clock, background=False)
    a, b = _pair()
    try:
        d = dl.Deadline(3, watchdog=watchdog)
        d.start(a)
        clock.advance(3)
        assert watchdog.fire_due() == [d]
        assert a.recv(1) == b""  # shut down: the read returns at once
    finally:
        a.close()
        b.close()


class _SlowSink(BaseHTTPRequestHandler):
    """Opens an upload session, then takes the PUT body 4 KiB every 20 ms: never idle long
    enough for a per-read timeout, and far too slow to finish."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *_args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        self.send_response(202)
        self.send_header("Location", "/v2/app/blobs/uploads/1?_state=x")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PUT(self) -> None:  # noqa: N802
        left = int(self.headers.get("Content-Length") or 0)
        with contextlib.suppress(OSError):
            while left > 0:
                got = self.rfile.read(min(4096, left))
                if not got:
                    return
                left -= len(got)
                time.sleep(0.02)


def test_an_upload_the_registry_takes_one_trickle_at_a_time_ends_at_its_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deadline of a request with a body starts before the body is sent: an upload is
    bounded by the read timeout plus its length at the minimum blob rate."""
    monkeypatch.setenv("OCI_NORMALIZE_MIN_BLOB_RATE", str(64 * 1024 * 1024))  # 32 MiB: +0.5 s
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowSink)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        options = ClientOptions(read_timeout=1.0, retry=NO_RETRY)
        reg = Registry(Reference.parse(f"{host}/app:v1"), options=options)
        size = 32 * 1024 * 1024
        chunks = (b"\0" * (1024 * 1024) for _ in range(32))
        started = time.monotonic()
        with pytest.raises(TransportError, match=r"did not finish answering within 1\.5 s"):
            reg.upload_blob("app", Digest.of(b"\0" * size), size, chunks)
        assert time.monotonic() - started < 10
    finally:
        server.shutdown()
        server.server_close()
