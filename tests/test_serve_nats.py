"""``--queue nats://``: the JetStream work queue, against a real nats-server."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest
import requests
from nats.js.api import RetentionPolicy, StreamConfig

from oci_normalize.errors import InvalidReferenceError
from oci_normalize.serve.app import EventsApp, Intake
from oci_normalize.serve.events import Scope
from oci_normalize.serve.logs import Logger
from oci_normalize.serve.metrics import Metrics
from oci_normalize.serve.natsevents import subscribe
from oci_normalize.serve.natsqueue import (
    QUEUE_PARAMS,
    NatsAddress,
    NatsAddressError,
    NatsError,
    NatsQueue,
    NatsQueueOptions,
    decode_item,
    parse_nats_url,
    queue_options,
    shown_url,
)
from oci_normalize.serve.natsqueue import open_queue as open_nats_queue
from oci_normalize.serve.natsqueue import status as nats_status
from oci_normalize.serve.queue import QueueClosedError, WorkItem
from tests.support import nats as nats_support
from tests.support import secretguard, seed
from tests.support.nats import RunningNats, running_nats, start_nats
from tests.support.registry import RegistryFactory, free_port

SHORT_ACK_WAIT = 2.0  # short, yet a loaded 2-core machine keeps its in-progress acks in time
_streams = itertools.count()
OpenQueue = Callable[..., NatsQueue]


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNats]:
    with running_nats(tmp_path_factory.mktemp("nats")) as server:
        yield server


@pytest.fixture
def stream(nats_server: RunningNats) -> NatsAddress:
    """A fresh stream name on the module's server for every test."""
    return parse_nats_url(f"{nats_server.url}/t{next(_streams)}", option="--queue")


@pytest.fixture
def open_queue(stream: NatsAddress) -> Iterator[OpenQueue]:
    opened: list[NatsQueue] = []

    def make(ack_wait: float = SHORT_ACK_WAIT) -> NatsQueue:
        queue = NatsQueue(stream, options=NatsQueueOptions(ack_wait=ack_wait))
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        queue.close()


def item(repository: str = "team/app", ref: str = "v1", received: float = 1000.0) -> WorkItem:
    return WorkItem(repository=repository, ref=ref, received=received)


def test_nats_server_found_under_usr_sbin_without_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    if not nats_support.DEBIAN_NATS_BIN.is_file():
        pytest.skip("no /usr/sbin/nats-server here")
    assert nats_support.nats_server_binary() == str(nats_support.DEBIAN_NATS_BIN)


def test_missing_nats_server_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(nats_support, "DEBIAN_NATS_BIN", tmp_path / "nats-server")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true never skips"):
        nats_support.require_nats_server()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        nats_support.require_nats_server()


# -- the URL, parsed like user input ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "server", "name", "credentials"),
    [
        ("nats://127.0.0.1:4333/WORK", "nats://127.0.0.1:4333", "WORK", {}),
        ("nats://nats.example/oci-normalize", "nats://nats.example:4222", "oci-normalize", {}),
        ("tls://[::1]:7422/q_1", "tls://[::1]:7422", "q_1", {}),
        ("nats://bob:s%40cret@h:1/S", "nats://h:1", "S", {"user": "bob", "password": "s@cret"}),
        ("nats://tok3n@h:1/S", "nats://h:1", "S", {"token": "tok3n"}),
    ],
)
def test_queue_url_parses(text: str, server: str, name: str, credentials: dict[str, str]) -> None:
    address = parse_nats_url(text, option="--queue")
    assert (address.server, address.name, address.credentials()) == (server, name, credentials)
    assert "s@cret" not in repr(address) and "tok3n" not in str(address)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "http://h:4222/S",
        "nats:///S",
        "nats://h:99999/S",
        "nats://h:0/S",
        "nats://h:x/S",
        "nats://h:4222",
        "nats://h:4222/",
        "nats://h:4222/a.b",
        "nats://h:4222/a/b",
        "nats://h:4222/S?x=1",
        "nats://h:4222/S#f",
        " nats://h:4222/S",
        "nats://h:4222/S\n",
        "nats://h:4222/" + "s" * 65,
        "nats://h:4222/%2e%2e",
    ],
)
def test_bad_queue_url_is_one_clear_error(text: str) -> None:
    with pytest.raises(NatsAddressError, match=r"^--queue .*expected nats://") as info:
        parse_nats_url(text, option="--queue")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("nats://h/zot.events", True),
        ("nats://h/zot.*.updated", True),
        ("nats://h/zot.>", True),
        ("nats://h/zot..events", False),
        ("nats://h/zot.>.x", False),
        ("nats://h/zo t", False),
    ],
)
def test_events_subject(text: str, ok: bool) -> None:
    if ok:
        assert (
            parse_nats_url(text, option="--events", subject=True).name == text[len("nats://h/") :]
        )
    else:
        with pytest.raises(NatsAddressError, match="bad subject"):
            parse_nats_url(text, option="--events", subject=True)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("nats://alice:hunter22@h:4222/S?ack_wait=1s", "nats://…@h:4222/S?…"),
        ("nats://hunter22@h/S", "nats://…@h/S"),
        ("hunter22@h", "…@h"),
        ("nats://h/S", "nats://h/S"),
    ],
)
def test_shown_url_leaves_out_secrets(text: str, shown: str) -> None:
    assert shown_url(text) == shown


def test_credentials_never_in_a_url_error() -> None:
    for text in (
        "nats://alice:hunter22@h:bad/S",
        "nats://hunter22@h/a.b",
        "ftp://alice:hunter22@h/S",
    ):
        with pytest.raises(NatsAddressError) as info:
            parse_nats_url(text, option="--queue")
        assert "hunter22" not in str(info.value) and "alice" not in str(info.value)
        assert "…@h" in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"repository":"a","ref":"v1"}',
        b'{"repository":"a","ref":"v1","received":true}',
        b'{"repository":"../etc","ref":"v1","received":1}',
        b'{"repository":"a%2fb","ref":"v1","received":1}',
        b'{"repository":"a","ref":"bad tag","received":1}',
        b'{"repository":"a","ref":"sha256:abc","received":1}',
        b'{"repository":"a","ref":"v1","received":1,"pad":"' + b"x" * 5000 + b'"}',
    ],
)
def test_hostile_work_item_refused(data: bytes) -> None:
    with pytest.raises(InvalidReferenceError):
        decode_item(data, source="test")


def test_work_item_round_trip_keeps_digest() -> None:
    digest = "sha256:" + "ab" * 32
    data = b'{"repository":"a/b","ref":"%s","received":2.5}' % digest.encode()
    assert decode_item(data, source="test") == WorkItem("a/b", digest, 2.5)


# -- the queue against nats-server ------------------------------------------------------------


def test_put_take_ack(open_queue: OpenQueue) -> None:
    queue = open_queue()
    assert queue.take(0.2) is None
    queue.put([item(ref="v1"), item(ref="v2")])
    assert queue.depth() == 2
    first = queue.take(5)
    assert first is not None and first.item == item(ref="v1") and first.attempt == 1
    queue.ack(first)
    assert queue.depth() == 1
    second = queue.take(5)
    assert second is not None and second.item.ref == "v2"
    queue.ack(second)
    assert queue.depth() == 0
    assert queue.take(0.2) is None


def test_duplicates_collapse_while_waiting_but_not_after_take(open_queue: OpenQueue) -> None:
    queue = open_queue()
    queue.put([item(received=1.0), item(received=2.0), item(repository="other")])
    queue.put([item(received=3.0)])  # a flood of the same (repository, ref)
    assert queue.depth() == 2
    lease = queue.take(5)
    assert lease is not None and lease.item.received == 1.0
    # A push during the conversion must not vanish in the duplicate window: a new message.
    queue.put([item(received=4.0)])
    queue.put([item(received=5.0)])
    assert queue.depth() == 3
    queue.ack(lease)
    got = [queue.take(5) for _ in range(2)]
    assert sorted((g.item.repository, g.item.received) for g in got if g) == [
        ("other", 1000.0),
        ("team/app", 4.0),
    ]


def test_take_then_vanish_is_redelivered_after_ack_wait(open_queue: OpenQueue) -> None:
    first, second = open_queue(), open_queue()
    first.put([item()])
    lease = first.take(5)
    assert lease is not None
    first.close()  # gone without ack, release or in-progress acks
    with pytest.raises(QueueClosedError):
        first.take(0.1)
    gone = time.monotonic()
    assert second.take(0.3) is None  # still held until ack_wait runs out
    again = second.take(10)
    assert again is not None and again.item == item() and again.attempt == 2
    assert time.monotonic() - gone >= SHORT_ACK_WAIT - 0.5
    second.ack(again)
    assert second.depth() == 0


def test_a_held_lease_is_kept_alive_past_ack_wait(open_queue: OpenQueue) -> None:
    holder, other = open_queue(), open_queue()
    holder.put([item()])
    lease = holder.take(5)
    assert lease is not None
    # Three ack_waits: without in-progress acks the other replica would get it.
    assert other.take(3 * SHORT_ACK_WAIT) is None
    holder.ack(lease)
    assert other.take(0.5) is None and other.depth() == 0


CHILD = """
import os, sys, time
from oci_normalize.serve.natsqueue import NatsQueue, NatsQueueOptions, parse_nats_url
queue = NatsQueue(parse_nats_url(sys.argv[1], option="--queue"), options=NatsQueueOptions(ack_wait=float(sys.argv[2])))
lease = queue.take(10)
print(lease.item.ref if lease else "none", flush=True)
time.sleep(600)
"""


def test_replica_killed_with_sigkill_hands_its_item_to_another(
    open_queue: OpenQueue, stream: NatsAddress
) -> None:
    survivor = open_queue()
    survivor.put([item(ref="victim")])
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(stream), str(SHORT_ACK_WAIT)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "victim"
        time.sleep(2 * SHORT_ACK_WAIT)  # alive, the child keeps its lease with in-progress acks
        assert survivor.take(0.2) is None
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    lease = survivor.take(10)
    assert lease is not None and lease.item.ref == "victim" and lease.attempt == 2
    survivor.ack(lease)


def test_one_reference_is_never_converted_by_two_replicas_at_once(open_queue: OpenQueue) -> None:
    first, second = open_queue(), open_queue()
    first.put([item()])
    lease = first.take(5)
    assert lease is not None
    first.put([item(received=2.0)])  # the same push, announced to a second endpoint later
    assert first.depth() == 2
    assert second.take(1.0) is None  # busy elsewhere: handed back with a delay
    first.ack(lease)
    again = second.take(5)
    assert again is not None and again.item.received == 2.0
    second.ack(again)
    assert second.depth() == 0


def test_retry_waits_its_delay(open_queue: OpenQueue) -> None:
    queue = open_queue(ack_wait=30)
    queue.put([item()])
    lease = queue.take(5)
    assert lease is not None
    queue.retry(lease, 1.0, "registry said 503")
    started = time.monotonic()
    assert queue.take(0.3) is None
    again = queue.take(5)
    assert again is not None and again.attempt == 2
    assert time.monotonic() - started >= 0.9
    queue.ack(again)


def test_release_gives_back_at_once(open_queue: OpenQueue) -> None:
    first, second = open_queue(ack_wait=30), open_queue(ack_wait=30)
    first.put([item()])
    lease = first.take(5)
    assert lease is not None
    first.release(lease)
    again = second.take(2)
    assert again is not None and again.item == item()
    second.ack(again)


def test_park_lists_and_clears_on_a_later_success(
    open_queue: OpenQueue, caplog: pytest.LogCaptureFixture
) -> None:
    queue = open_queue()
    queue.put([item(ref="bad"), item(ref="good")])
    lease = queue.take(5)
    assert lease is not None and lease.item.ref == "bad"
    with caplog.at_level(logging.WARNING):
        queue.park(lease, "manifest unknown\x1b[2J after 5 attempts")
    # The server confirmed the termination (no timeout warned of), so the item is off the
    # stream at once: a fire-and-forget term left it counted now and then.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert queue.depth() == 1
    assert queue.parked() == [(item(ref="bad"), "manifest unknown?[2J after 5 attempts")]
    good = queue.take(5)
    assert good is not None and good.item.ref == "good"
    queue.ack(good)
    assert queue.take(0.3) is None  # parked is out of the stream
    assert len(open_queue().parked()) == 1  # another replica sees it too
    queue.put([item(ref="bad", received=2000.0)])
    lease = queue.take(5)
    assert lease is not None
    queue.ack(lease)
    assert queue.parked() == []


def test_status_of_the_shared_stream(open_queue: OpenQueue, stream: NatsAddress) -> None:
    queue = open_queue()
    queue.put([item(ref="bad"), item(ref="waiting", received=5.0)])
    lease = queue.take(5)
    assert lease is not None
    queue.park(lease, "refused: signed")
    doc = nats_status(str(stream))
    assert doc == {
        "depth": 1,
        "parked": [
            {
                "repository": "team/app",
                "ref": "bad",
                "received": 1000.0,
                "reason": "refused: signed",
            }
        ],
    }
    lease = queue.take(5)  # --status took nothing
    assert lease is not None and lease.item.ref == "waiting"
    queue.ack(lease)


def test_replicas_share_the_load_once_each(open_queue: OpenQueue) -> None:
    replicas = [open_queue(), open_queue(), open_queue()]
    replicas[0].put([item(ref=f"v{n}") for n in range(12)])
    seen: list[str] = []
    for replica in itertools.islice(itertools.cycle(replicas), 12):
        lease = replica.take(5)
        assert lease is not None
        seen.append(lease.item.ref)
        replica.ack(lease)
    assert sorted(seen) == sorted(f"v{n}" for n in range(12))
    assert all(r.take(0.2) is None for r in replicas)


def test_hostile_message_on_the_stream_is_dropped(
    open_queue: OpenQueue, stream: NatsAddress
) -> None:
    queue = open_queue()

    async def publish() -> None:
        nc = await nats.connect(stream.server)
        js = nc.jetstream()
        await js.publish(f"{stream.name}.work", b'{"repository":"../x","ref":"v1","received":1}')
        await js.publish(f"{stream.name}.work", b"\xff garbage")
        await nc.close()

    asyncio.run(publish())
    queue.put([item()])
    lease = queue.take(5)
    assert lease is not None and lease.item == item()
    queue.ack(lease)
    assert queue.depth() == 0


def test_a_nats_restart_loses_nothing_and_kills_no_worker(tmp_path: Path) -> None:
    server = start_nats(tmp_path / "nats")
    queue = None
    try:
        address = parse_nats_url(f"{server.url}/restart", option="--queue")
        queue = NatsQueue(
            address, options=NatsQueueOptions(ack_wait=SHORT_ACK_WAIT, call_timeout=2)
        )
        queue.put([item()])
        lease = queue.take(5)
        assert lease is not None
        server.stop()
        queue.ack(lease)  # lost with the server: logged, not raised
        assert queue.take(0.5) is None  # nor here: the worker keeps asking
        server = start_nats(tmp_path / "nats", again=server)
        deadline = time.monotonic() + 20
        again = None
        while again is None and time.monotonic() < deadline:
            again = queue.take(1)
        assert again is not None and again.item == item()  # the un-acked item came back
        queue.ack(again)
        assert queue.depth() == 0
    finally:
        if queue is not None:
            queue.close()
        server.stop()


def test_stream_of_another_kind_is_refused(nats_server: RunningNats) -> None:
    async def create() -> None:
        nc = await nats.connect(nats_server.url)
        await nc.jetstream().add_stream(
            StreamConfig(name="limits", subjects=["limits.work"], retention=RetentionPolicy.LIMITS)
        )
        await nc.close()

    asyncio.run(create())
    with pytest.raises(NatsError, match="not a work-queue stream"):
        NatsQueue(parse_nats_url(f"{nats_server.url}/limits", option="--queue"))


def test_unreachable_server_is_one_error_without_credentials(tmp_path: Path) -> None:
    address = parse_nats_url(f"nats://alice:hunter22@127.0.0.1:{free_port()}/S", option="--queue")
    with pytest.raises(NatsError) as info:
        NatsQueue(address, options=NatsQueueOptions(connect_timeout=1, call_timeout=2))
    assert "hunter22" not in str(info.value) and "alice" not in str(info.value)
    assert "127.0.0.1" in str(info.value)


# -- --queue settings -------------------------------------------------------------------------


def test_queue_settings_from_the_url() -> None:
    address = parse_nats_url(
        "nats://h/S?ack_wait=10s&duplicate_window=5m&consumer=blue",
        option="--queue",
        params=QUEUE_PARAMS,
    )
    assert queue_options(address) == NatsQueueOptions(
        ack_wait=10.0, duplicate_window=300.0, consumer="blue"
    )
    assert queue_options(parse_nats_url("nats://h/S", option="--queue")) == NatsQueueOptions()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("ack_wait=0", "ack_wait='0' is not a duration"),
        ("ack_wait=fast", "is not a duration"),
        ("ack_wait=2d", "is not a duration"),
        ("ack_wait=1s&ack_wait=2s", "a setting given twice"),
        ("token=hunter22", "unknown query setting token"),
        ("consumer=a.b", "bad consumer name"),
        ("ack_wait", "malformed query"),
    ],
)
def test_bad_queue_settings(query: str, message: str) -> None:
    with pytest.raises(NatsAddressError, match=message) as info:
        queue_options(parse_nats_url(f"nats://h/S?{query}", option="--queue", params=QUEUE_PARAMS))
    assert "hunter22" not in str(info.value)


def test_open_queue_takes_ack_wait_from_the_url(nats_server: RunningNats) -> None:
    first = open_nats_queue(f"{nats_server.url}/urlq?ack_wait=1s")
    second = open_nats_queue(f"{nats_server.url}/urlq?ack_wait=1s")
    try:
        first.put([item()])
        assert first.take(5) is not None
        first.close()
        started = time.monotonic()
        again = second.take(10)
        assert again is not None and time.monotonic() - started < 5
        second.ack(again)
    finally:
        first.close()
        second.close()


# -- --events nats:// -------------------------------------------------------------------------

REGISTRY = "127.0.0.1:5000"


def cloudevent(name: str, reference: str, kind: str = "zotregistry.image.updated") -> bytes:
    """A CloudEvent as zot's events extension publishes it (structured mode)."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": "6f1c",
            "source": "http://evil.example:9/elsewhere",
            "type": kind,
            "datacontenttype": "application/json",
            "data": {
                "name": name,
                "reference": reference,
                "digest": "sha256:" + "ab" * 32,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
            },
        }
    ).encode()


def publish_all(
    url: str, subject: str, messages: list[tuple[bytes, dict[str, str] | None]]
) -> None:
    async def run() -> None:
        nc = await nats.connect(url)
        for body, headers in messages:
            await nc.publish(subject, body, headers=headers)
        await nc.flush()
        await nc.close()

    asyncio.run(run())


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def events_app(queue: NatsQueue) -> EventsApp:
    app = EventsApp(
        Intake(scope=Scope(registry=REGISTRY), queue=queue, token=None),
        metrics=Metrics(),
        log=Logger(stream=io.StringIO()),
    )
    return app


def test_zot_events_on_a_subject_become_work_items(
    open_queue: OpenQueue, nats_server: RunningNats
) -> None:
    queue = open_queue()
    app = events_app(queue)
    source = subscribe(f"{nats_server.url}/zot.plain", app.accept)
    try:
        assert source.mode == "subject"
        binary = json.dumps({"name": "team/bin", "reference": "v2"}).encode()
        publish_all(
            nats_server.url,
            "zot.plain",
            [
                (cloudevent("team/app", "v1"), None),
                (cloudevent("team/app", "v1"), None),  # a duplicate
                (binary, {"ce-specversion": "1.0", "ce-type": "zotregistry.image.updated"}),
                (cloudevent("team/app", "v1", kind="zotregistry.image.deleted"), None),
                (cloudevent("../etc", "v1"), None),
                (cloudevent("team%2fapp", "v1"), None),
                (b"\xff not json", None),
                (b"{" * 100_000, None),
            ],
        )
        assert wait_for(lambda: queue.depth() == 2)
        time.sleep(0.5)  # nothing else arrives late
        taken = [queue.take(5) for _ in range(2)]
        assert sorted((t.item.repository, t.item.ref) for t in taken if t) == [
            ("team/app", "v1"),
            ("team/bin", "v2"),
        ]
        assert queue.take(0.2) is None
    finally:
        source.close()


def test_replicas_on_a_subject_each_get_an_event_once(nats_server: RunningNats) -> None:
    seen: list[bytes] = []
    lock = threading.Lock()

    def record(body: bytes, _headers: object) -> None:
        with lock:
            seen.append(body)

    sources = [subscribe(f"{nats_server.url}/zot.group", record) for _ in range(3)]
    try:
        bodies = [cloudevent("team/app", f"v{n}") for n in range(30)]
        publish_all(nats_server.url, "zot.group", [(b, None) for b in bodies])
        assert wait_for(lambda: len(seen) >= 30)
        time.sleep(0.5)
        assert sorted(seen) == sorted(bodies)
    finally:
        for source in sources:
            source.close()


def test_events_a_stream_kept_while_no_replica_listened(
    open_queue: OpenQueue, nats_server: RunningNats
) -> None:
    async def create() -> None:
        nc = await nats.connect(nats_server.url)
        await nc.jetstream().add_stream(StreamConfig(name="zotlog", subjects=["zot.kept"]))
        await nc.close()

    asyncio.run(create())
    publish_all(
        nats_server.url, "zot.kept", [(cloudevent("team/app", f"v{n}"), None) for n in range(3)]
    )
    queue = open_queue()
    source = subscribe(f"{nats_server.url}/zot.kept", events_app(queue).accept)
    try:
        assert source.mode == "jetstream"
        assert wait_for(lambda: queue.depth() == 3)
    finally:
        source.close()
    # Acknowledged once queued: a new listener gets nothing again.
    again = subscribe(f"{nats_server.url}/zot.kept", events_app(queue).accept)
    try:
        time.sleep(1.0)
        assert queue.depth() == 3
    finally:
        again.close()


def test_events_from_a_nats_server_without_jetstream_and_no_queue_there(tmp_path: Path) -> None:
    server = start_nats(tmp_path / "plain", jetstream=False)
    seen: list[bytes] = []
    try:
        source = subscribe(f"{server.url}/zot.events", lambda body, _h: seen.append(body))
        try:
            assert source.mode == "subject"
            publish_all(server.url, "zot.events", [(cloudevent("team/app", "v1"), None)])
            assert wait_for(lambda: seen == [cloudevent("team/app", "v1")])
        finally:
            source.close()
        with pytest.raises(NatsError, match="no JetStream"):
            open_nats_queue(f"{server.url}/work")
    finally:
        server.stop()


def test_events_url_is_checked_like_input() -> None:
    with pytest.raises(NatsAddressError, match="^--events .*bad subject"):
        subscribe("nats://alice:hunter22@h/a..b", lambda body, headers: None)


# -- three `serve` replicas on one stream, a real registry notifying them ----------------------

WEBHOOK_TOKEN = "nats-replicas-webhook-token-5c1f"
BURST = 36
REPLICA_START = 30.0
REPLICA_STOP = 25.0
_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def notify_each(ports: list[int]) -> dict[str, object]:
    """distribution's notifications: one endpoint per replica, the token as a header."""
    return {
        "notifications": {
            "endpoints": [
                {
                    "name": f"serve-{n}",
                    "url": f"http://127.0.0.1:{port}/events",
                    "headers": {"Authorization": [f"Bearer {WEBHOOK_TOKEN}"]},
                    "timeout": "2s",
                    "threshold": 1,
                    "backoff": "300ms",
                    "ignore": {
                        "mediatypes": ["application/octet-stream"],
                        "actions": ["pull"],
                    },
                }
                for n, port in enumerate(ports)
            ]
        }
    }


class Replica:
    """One ``oci-normalize serve --queue nats://…`` process."""

    def __init__(
        self, workdir: Path, registry_host: str, port: int, queue_url: str, *extra: str
    ) -> None:
        workdir.mkdir(parents=True)
        token_file = workdir / "token"
        token_file.write_text(WEBHOOK_TOKEN + "\n")
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = workdir / "serve.log"
        args = [
            "--registry", registry_host,
            "--listen", f"127.0.0.1:{port}",
            "--state", str(workdir / "state"),
            "--queue", queue_url,
            "--reconcile-every", "0",
            "--concurrency", "2",
            "--webhook-token-file", str(token_file),
            "--grace", "10s",
            "--log-format", "json",
            *extra,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "OCI_NORMALIZE_WEBHOOK_TOKEN"}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "oci_normalize", "serve", *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + REPLICA_START
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited {self.process.returncode}:\n{self.log_text()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"serve never became ready:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def outcomes(self) -> list[tuple[str, str, str]]:
        """(repository, ref, outcome) of every item this replica settled."""
        found = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict) and doc.get("msg") == "item":
                    found.append((doc["repository"], doc["ref"], doc["outcome"]))
        return found

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(REPLICA_STOP)

    def terminate(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(REPLICA_STOP)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(REPLICA_STOP)
        return self.process.returncode


def media_types(url: str, repo: str, ref: str) -> list[str]:
    """Every media type of the tree at ``repo:ref`` as the registry serves it."""
    resp = requests.get(f"{url}/v2/{repo}/manifests/{ref}", headers={"Accept": _ACCEPT}, timeout=10)
    resp.raise_for_status()
    body = json.loads(resp.content)
    types = [body.get("mediaType") or resp.headers["Content-Type"]]
    for child in body.get("manifests") or []:
        types.append(child["mediaType"])
        types.extend(media_types(url, repo, child["digest"]))
    if "config" in body:
        types.append(body["config"]["mediaType"])
        types.extend(layer["mediaType"] for layer in body.get("layers") or [])
    return types


def oci_pure(url: str, repo: str, ref: str) -> bool:
    try:
        return all(t.startswith("application/vnd.oci.") for t in media_types(url, repo, ref))
    except requests.RequestException:
        return False


def stream_messages(server: str, stream: str) -> int:
    async def info() -> int:
        nc = await nats.connect(server)
        try:
            return (await nc.jetstream().stream_info(stream)).state.messages
        finally:
            await nc.close()

    return asyncio.run(info())


@pytest.mark.registry
def test_three_replicas_share_one_stream_and_survive_a_kill9_mid_burst(
    registry_factory: RegistryFactory, nats_server: RunningNats, tmp_path: Path
) -> None:
    secretguard.register(WEBHOOK_TOKEN)
    ports = [free_port() for _ in range(3)]
    reg = registry_factory(extra_config=notify_each(ports))
    queue_url = f"{nats_server.url}/replicas?ack_wait=5s"
    replicas = [
        Replica(tmp_path / f"replica-{n}", reg.host, port, queue_url)
        for n, port in enumerate(ports)
    ]
    victim, survivors = replicas[0], replicas[1:]
    pushed: list[tuple[str, str]] = []
    try:
        for replica in replicas:
            replica.wait_ready()
        mark = reg.log_mark()
        layout = seed.build_layout(tmp_path, seed="replicas")
        for n in range(BURST):
            repo, tag = f"replicas/app{n % 6}", f"v{n}"
            if n % 9 == 0:  # a genuine Docker v2s2 image, pushed by skopeo
                seed.push_docker_v2s2(layout, f"{reg.host}/{repo}:{tag}")
            elif n % 2:
                seed.push_mixed_kaniko(reg.url, repo, tag, seed=f"replicas-{n}")
            else:
                seed.push_docker_with_oci_layers(reg.url, repo, tag, seed=f"replicas-{n}")
            pushed.append((repo, tag))
            if n == BURST // 2:
                victim.kill9()  # mid-burst, whatever it holds
        seed.push_docker_list(reg.url, "replicas/list", "v1", tmp_path)
        pushed.append(("replicas/list", "v1"))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not all(oci_pure(reg.url, r, t) for r, t in pushed):
            time.sleep(0.2)
        impure = [(r, t) for r, t in pushed if not oci_pure(reg.url, r, t)]
        # Let the events of serve's own writes settle: the stream drains to nothing.
        assert wait_for(lambda: stream_messages(nats_server.url, "replicas") == 0, 60)
        puts = collections.Counter(
            e.path
            for e in reg.access_log_lines(since=mark)
            if e.method == "PUT" and "/manifests/" in e.path
        )
        # One PUT by the push itself, one by the conversion: never a second move.
        moves = {(r, t): puts[f"/v2/{r}/manifests/{t}"] for r, t in pushed}
        assert {ref: n for ref, n in moves.items() if ref not in impure} == {
            ref: 2 for ref in pushed if ref not in impure
        }
        outcomes = {
            f"{r}:{ref}": o for s in replicas for r, ref, o in s.outcomes() if (r, ref) in impure
        }
        assert impure == [], f"not OCI-pure: {impure}; last outcomes: {outcomes}"
        converted = [[o for o in s.outcomes() if o[2] == "converted"] for s in survivors]
        assert all(converted), "both surviving replicas took a share of the work"
        for replica in survivors:
            assert replica.process.poll() is None, replica.log_text()
    finally:
        codes = [replica.terminate() for replica in survivors]
        victim.terminate()
    assert codes == [0, 0]


@pytest.mark.registry
def test_serve_converts_what_zot_style_events_on_nats_announce(
    registry_factory: RegistryFactory, nats_server: RunningNats, tmp_path: Path
) -> None:
    secretguard.register(WEBHOOK_TOKEN)
    reg = registry_factory()  # no webhooks: the events come over NATS only
    replica = Replica(
        tmp_path / "replica",
        reg.host,
        free_port(),
        f"{nats_server.url}/zotwork",
        "--events",
        f"{nats_server.url}/zot.cli",
    )
    try:
        replica.wait_ready()
        seed.push_docker_with_oci_layers(reg.url, "zot/app", "v1", seed="zot-cli")
        seed.push_mixed_kaniko(reg.url, "zot/other", "v1", seed="zot-cli-other")
        mark = reg.log_mark()
        publish_all(
            nats_server.url,
            "zot.cli",
            [
                (cloudevent("zot/app", "v1"), None),
                (cloudevent("../zot/other", "v1"), None),  # refused: never acted on
                (b"not json", None),
            ],
        )
        assert wait_for(lambda: oci_pure(reg.url, "zot/app", "v1"), 30), replica.log_text()
        time.sleep(1.0)
        touched = {e.path for e in reg.access_log_lines(since=mark)}
        assert not any("zot/other" in path for path in touched)  # serve never looked at it
        assert not oci_pure(reg.url, "zot/other", "v1")
        events = [json.loads(line) for line in replica.log_text().splitlines() if '"event"' in line]
        assert [e.get("outcome") for e in events if e.get("msg") == "event"] == [
            "queued",
            "ignored:invalid",
        ]
    finally:
        assert replica.terminate() == 0
