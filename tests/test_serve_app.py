"""The HTTP side in process (waitress on a loopback port): hostile inputs first."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from oci_normalize import api
from oci_normalize.serve.app import EventsApp, HttpServer, Intake
from oci_normalize.serve.events import Scope
from oci_normalize.serve.logs import Logger
from oci_normalize.serve.metrics import Metrics
from oci_normalize.serve.queue import SqliteQueue, open_sqlite
from oci_normalize.serve.worker import Mode, Processor, WorkerPool
from oci_normalize.serve.written import WrittenDigests
from tests.support import seed
from tests.support.notify import oci_pure, wait_until
from tests.support.registry import RegistryFactory, free_port

TOKEN = "s3cret-token-value"
V2 = "application/vnd.docker.distribution.manifest.v2+json"
MAX_BODY = 4096


@dataclass
class Served:
    url: str
    app: EventsApp
    queue: SqliteQueue
    metrics: Metrics
    log_lines: list[str]

    def post(
        self, body: bytes | str, *, token: str | None = TOKEN, **headers: str
    ) -> requests.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = body.encode() if isinstance(body, str) else body
        return requests.post(f"{self.url}/events", data=data, headers=headers, timeout=10)


class _Lines:
    def __init__(self, sink: list[str]) -> None:
        self._sink = sink

    def write(self, text: str) -> int:
        self._sink.extend(line for line in text.splitlines() if line)
        return len(text)

    def flush(self) -> None:
        return None


def _serve(tmp_path: Path, registry: str = "127.0.0.1:9") -> Iterator[Served]:
    queue = open_sqlite(tmp_path / "state")
    metrics = Metrics()
    metrics.watch(queue.depth, lambda: len(queue.parked()))
    lines: list[str] = []
    log = Logger("json", stream=_Lines(lines))  # type: ignore[arg-type]
    intake = Intake(scope=Scope(registry=registry), queue=queue, token=TOKEN, max_body=MAX_BODY)
    app = EventsApp(intake, metrics=metrics, log=log)
    port = free_port()
    server = HttpServer(app, "127.0.0.1", port, threads=4, max_body=MAX_BODY)
    server.start()
    app.mark_ready()
    try:
        yield Served(f"http://127.0.0.1:{port}", app, queue, metrics, lines)
    finally:
        server.close()
        queue.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from _serve(tmp_path)


def envelope(repository: str = "team/app", tag: str = "1", url: str = "http://x/") -> str:
    return json.dumps(
        {
            "events": [
                {
                    "action": "push",
                    "target": {"mediaType": V2, "repository": repository, "tag": tag, "url": url},
                    "request": {"host": "evil.example"},
                }
            ]
        }
    )


@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN + "x", TOKEN[:-1]])
def test_no_token_or_a_wrong_one_is_401_and_queues_nothing(
    served: Served, token: str | None
) -> None:
    resp = served.post(envelope(), token=token)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert served.queue.depth() == 0


def test_the_token_never_reaches_a_log_line_or_metrics(served: Served) -> None:
    served.post(envelope())
    served.post(envelope(), token="wrong-" + TOKEN)
    metrics = requests.get(f"{served.url}/metrics", timeout=5).text
    assert TOKEN not in "\n".join(served.log_lines) + metrics


def test_basic_auth_is_not_a_bearer_token(served: Served) -> None:
    resp = requests.post(f"{served.url}/events", data=envelope(), auth=("x", TOKEN), timeout=5)
    assert resp.status_code == 401


def test_a_good_event_is_queued_before_the_answer(served: Served) -> None:
    resp = served.post(envelope())
    assert resp.status_code == 200 and resp.json() == {"queued": 1, "ignored": 0}
    assert served.queue.depth() == 1


def test_an_oversize_body_is_413(served: Served) -> None:
    big = envelope(url="http://x/" + "a" * (MAX_BODY * 2))
    assert served.post(big).status_code == 413
    assert served.queue.depth() == 0


def test_an_oversize_chunked_body_is_413(served: Served) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY // 64 + 10):
            yield b" " * 64

    resp = requests.post(
        f"{served.url}/events",
        data=chunks(),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert resp.status_code == 413


@pytest.mark.parametrize(
    "body", [b"{not json", b"\xff\xfe", b"[]", b'{"what": 1}', b"", b'{"events": 3}']
)
def test_malformed_bodies_are_400(served: Served, body: bytes) -> None:
    resp = served.post(body)
    assert resp.status_code == 400
    assert "error" in resp.json()
    assert served.queue.depth() == 0


@pytest.mark.parametrize(
    "repository", ["team/../etc", "..", "team%2fapp", "team%2Fapp", "team/./app", "/abs", "a//b"]
)
def test_dot_dot_and_encoded_slashes_are_ignored_and_counted(
    served: Served, repository: str
) -> None:
    resp = served.post(envelope(repository=repository))
    assert resp.status_code == 200 and resp.json() == {"queued": 0, "ignored": 1}
    assert served.queue.depth() == 0
    assert served.metrics.ignored.labels(reason="invalid")._value.get() == 1


def test_a_flood_of_duplicates_is_one_item(served: Served) -> None:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def send(_: int) -> int:
        return session.post(
            f"{served.url}/events", data=envelope(), headers=headers, timeout=10
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, range(1000)))
    assert codes == [200] * 1000
    assert served.queue.depth() == 1
    text = requests.get(f"{served.url}/metrics", timeout=5).text
    assert "oci_normalize_serve_events_queued_total 1000.0" in text
    assert "oci_normalize_serve_queue_depth 1.0" in text


def test_health_ready_and_drain(served: Served) -> None:
    assert requests.get(f"{served.url}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{served.url}/readyz", timeout=5).status_code == 200
    served.app.drain()
    assert requests.get(f"{served.url}/readyz", timeout=5).status_code == 503
    assert served.post(envelope()).status_code == 503
    assert served.queue.depth() == 0
    assert requests.get(f"{served.url}/healthz", timeout=5).status_code == 200


def test_unknown_paths_and_methods(served: Served) -> None:
    assert requests.get(f"{served.url}/nope", timeout=5).status_code == 404
    resp = requests.get(f"{served.url}/events", timeout=5)
    assert resp.status_code == 405 and resp.headers["Allow"] == "POST"


def test_one_json_log_line_per_event(served: Served) -> None:
    body = json.dumps(
        {
            "events": [
                json.loads(envelope())["events"][0],
                {"action": "delete", "target": {"repository": "team/app", "tag": "1"}},
            ]
        }
    )
    served.post(body)
    events = [json.loads(line) for line in served.log_lines if '"msg": "event"' in line]
    assert [e["outcome"] for e in events] == ["queued", "ignored:not-push"]


class Trap:
    """A listener that counts the connections it gets (it must get none)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def test_addresses_in_an_event_are_never_contacted(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    """The whole path, event to conversion on the configured registry: the listener named by
    target.url, request.host and source.addr gets no connection."""
    registry = registry_factory()  # its own: a session registry's catalog is other tests' too
    trap = Trap()
    seed.push_mixed_kaniko(registry.url, "serve-trap/app", "1")
    there = f"127.0.0.1:{trap.port}"
    body = json.dumps(
        {
            "events": [
                {
                    "action": "push",
                    "target": {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "repository": "serve-trap/app",
                        "tag": "1",
                        "url": f"http://{there}/v2/serve-trap/app/manifests/1",
                    },
                    "request": {"host": there, "addr": there},
                    "source": {"addr": there},
                }
            ]
        }
    )
    gen = _serve(tmp_path, registry=registry.host)
    served = next(gen)
    client = api.Client()
    pool = WorkerPool(
        served.queue,
        Processor(client, Mode(registry=registry.host), WrittenDigests()).process,
        metrics=served.metrics,
        log=lambda *_a, **_k: None,
        concurrency=1,
    )
    pool.start()
    try:
        assert served.post(body).status_code == 200
        wait_until(lambda: oci_pure(registry.url, "serve-trap/app", "1"), 30, "the conversion")
        assert trap.connections == 0
    finally:
        pool.stop(5)
        client.close()
        trap.close()
        with pytest.raises(StopIteration):
            next(gen)
