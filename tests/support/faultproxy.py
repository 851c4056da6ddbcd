"""A fault-injecting reverse proxy between the client under test and a real registry.

Loopback only, threaded, bounded: each :class:`Rule` fires a fixed number of times on requests
whose method and path match, then the proxy forwards faithfully. Faults:

- ``status``: answer ``status`` (e.g. 503, or 429 with ``Retry-After``) without forwarding;
- ``reset``: drop the connection (TCP RST) before forwarding;
- ``slow``: wait ``delay`` seconds, then forward (to trip the client's read timeout);
- ``lose``: forward, let the registry act, then drop the connection instead of answering —
  a PUT that happened although the client never heard so;
- ``redirect``: answer 307 to ``target`` + the request path (a blob served from "object
  storage").

With ``tls`` it serves HTTPS (a registry behind a private CA). With ``upstream_auth`` the
proxy itself authenticates upstream (the fake object store). Every request is recorded with
whether the client sent an ``Authorization`` header. Request bodies are read whole (test blobs
are small). Neither this module nor its callers import the package under test.
"""

from __future__ import annotations

import base64
import http.client
import re
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
    }
)
UPSTREAM_TIMEOUT = 30.0
MAX_DELAY = 10.0


@dataclass
class Rule:
    action: str  # status | reset | slow | lose | redirect
    method: str = ".*"
    path: str = ".*"
    times: int = 1
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    target: str = ""
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.fired < self.times
            and re.fullmatch(self.method, method) is not None
            and re.search(self.path, path) is not None
        )


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    action: str  # the fault applied, or "forward"
    authorization: bool


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        upstream_auth: tuple[str, str] | None = None,
        strip_prefix: str = "",
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.upstream = upstream  # "127.0.0.1:PORT"
        self.upstream_auth = upstream_auth
        self.strip_prefix = strip_prefix
        self.tls = tls  # (certificate, key) PEM paths: serve HTTPS in front of the registry
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def add(self, *rules: Rule) -> FaultProxy:
        with self._lock:
            self.rules.extend(rules)
        return self

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.seen.clear()

    def faults(self) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.action != "forward"]

    def _pick(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.fired += 1
                    return rule
        return None

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = UPSTREAM_TIMEOUT

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def handle_one_request(self) -> None:
                try:
                    super().handle_one_request()
                except (TimeoutError, ConnectionError):
                    self.close_connection = True

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rule = proxy._pick(self.command, self.path)
                action = rule.action if rule else "forward"
                proxy._record(
                    Seen(self.command, self.path, action, "Authorization" in self.headers)
                )
                if rule is None or rule.action in ("slow", "lose"):
                    if rule is not None and rule.action == "slow":
                        time.sleep(min(rule.delay, MAX_DELAY))
                    status, headers, data = proxy._forward(self, body)
                    if rule is not None and rule.action == "lose":
                        self._reset()
                        return
                    self._reply(status, headers, data)
                elif rule.action == "status":
                    data = b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
                    hdrs = [("Content-Type", "application/json"), *rule.headers.items()]
                    self._reply(rule.status, hdrs, data)
                elif rule.action == "redirect":
                    self._reply(307, [("Location", rule.target + self.path)], b"")
                else:  # reset
                    self._reset()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any  # noqa: N815

            def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                length = str(len(data))
                for key, value in headers:
                    if key.lower() == "content-length" and self.command == "HEAD":
                        length = value  # a HEAD answer announces the size of the GET
                    elif key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _reset(self) -> None:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def _forward(
        self, handler: BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        path = handler.path
        if self.strip_prefix and path.startswith(self.strip_prefix):
            path = path[len(self.strip_prefix) :]
        headers = {
            k: v
            for k, v in handler.headers.items()
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
        }
        if self.upstream_auth is not None:
            user, password = self.upstream_auth
            headers.pop("Authorization", None)
            raw = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {raw}"
            headers["Host"] = self.upstream
        conn = http.client.HTTPConnection(self.upstream, timeout=UPSTREAM_TIMEOUT)
        try:
            conn.request(handler.command, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.getheaders(), data
        finally:
            conn.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
