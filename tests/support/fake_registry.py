"""A scripted HTTP server for unit tests of error paths that a real registry will not produce.

Never the only proof of anything: integration tests use the real docker-registry. Routes map
``(METHOD, path)`` to a list of canned answers (the last one repeats); every request is recorded.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int] = ("", 0)  # the client's address: one per connection


class FakeRegistry:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Answer]] = {}
        self.seen: list[Seen] = []
        self.host = ""

    def route(self, method: str, path: str, *answers: Answer) -> None:
        self.routes[(method, path)] = list(answers)

    def requests(self, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if method is None or s.method == method]


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client hanging up mid-answer (a body cut short, a lie refused) is a test
        super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextmanager
def fake_registry() -> Iterator[FakeRegistry]:
    fake = FakeRegistry()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:  # keep test output quiet
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            peer = (str(self.client_address[0]), int(self.client_address[1]))
            fake.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body, peer))
            answers = fake.routes.get((self.command, path))
            if answers is None:  # prefix routes end in "*"
                answers = next(
                    (
                        a
                        for (m, p), a in fake.routes.items()
                        if m == self.command and p.endswith("*") and path.startswith(p[:-1])
                    ),
                    None,
                )
            if not answers:
                answer = Answer(404, b'{"errors":[{"code":"NOT_FOUND","message":"no route"}]}')
            else:
                answer = answers.pop(0) if len(answers) > 1 else answers[0]
            self.send_response(answer.status)
            headers = {"Content-Length": str(len(answer.body)), **answer.headers}
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _serve  # noqa: N815

    server = _Server(("127.0.0.1", 0), Handler)
    fake.host = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
