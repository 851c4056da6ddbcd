"""The HTTP side: a WSGI app served by waitress.

``POST /events`` needs ``Authorization: Bearer TOKEN`` (compared in constant time; 401
otherwise), a body of at most :data:`~.events.MAX_BODY_BYTES` (413) that parses as one of the
accepted shapes (400 otherwise). It answers 200 only once :meth:`~.queue.WorkQueue.put` has
returned, i.e. the items are durable; while draining (SIGTERM) it answers 503 so the sender keeps
the events for later. ``GET /healthz``, ``GET /readyz`` and ``GET /metrics`` need no token.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from oci_normalize.serve.events import (
    MAX_BODY_BYTES,
    BadEventError,
    Parsed,
    Scope,
    parse_body,
)
from oci_normalize.serve.logs import Logger
from oci_normalize.serve.metrics import CONTENT_TYPE, Metrics
from oci_normalize.serve.queue import WorkQueue
from oci_normalize.text import printable

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Environ = dict[str, Any]

_STATUS: Final = {
    200: "200 OK",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    413: "413 Content Too Large",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}
_BEARER: Final = "bearer "


@dataclass(frozen=True, kw_only=True)
class Intake:
    """What ``POST /events`` needs: the scope, where items go, and the token (None: no auth)."""

    scope: Scope
    queue: WorkQueue
    token: str | None
    max_body: int = MAX_BODY_BYTES


class EventsApp:
    def __init__(
        self,
        intake: Intake,
        *,
        metrics: Metrics,
        log: Logger,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._intake = intake
        self._metrics = metrics
        self._log = log
        self._clock = clock
        self._draining = threading.Event()
        self._ready = threading.Event()

    def mark_ready(self) -> None:
        self._ready.set()

    def drain(self) -> None:
        """Stop intake: /readyz and POST /events answer 503 from now on."""
        self._draining.set()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        try:
            code, body, ctype, extra = self._route(method, path, environ)
        except Exception as exc:  # noqa: BLE001 - one bad request never takes the server down
            self._log("error", path=path, detail=f"{type(exc).__name__}: {exc}")
            code, body, ctype, extra = _json(500, {"error": "internal error"})
        headers = [("Content-Type", ctype), ("Content-Length", str(len(body))), *extra]
        start_response(_STATUS[code], headers)
        return [body]

    def _route(self, method: str, path: str, environ: Environ) -> _Reply:
        if path == "/healthz":
            return _text(200, "ok\n")
        if path == "/readyz":
            ready = self._ready.is_set() and not self._draining.is_set()
            return _text(200, "ready\n") if ready else _text(503, "not ready\n")
        if path == "/metrics":
            return 200, self._metrics.render(), CONTENT_TYPE, []
        if path != "/events":
            return _text(404, "not found\n")
        if method != "POST":
            code, body, ctype, extra = _text(405, "POST only\n")
            return code, body, ctype, [*extra, ("Allow", "POST")]
        return self._events(environ)

    def _events(self, environ: Environ) -> _Reply:
        if not self._authorized(environ.get("HTTP_AUTHORIZATION", "")):
            return self._reject(
                401, "missing or wrong bearer token", [("WWW-Authenticate", "Bearer")]
            )
        if self._draining.is_set() or not self._ready.is_set():
            return self._reject(503, "shutting down; send again later")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self._reject(400, "bad Content-Length")
        cap = self._intake.max_body
        if length > cap:
            return self._reject(413, f"body larger than {cap} bytes")
        body = environ["wsgi.input"].read(cap + 1)
        if len(body) > cap:
            return self._reject(413, f"body larger than {cap} bytes")
        headers = {
            k[5:].replace("_", "-").lower(): str(v)
            for k, v in environ.items()
            if k.startswith("HTTP_CE_")
        }
        try:
            parsed = self.accept(body, headers)
        except BadEventError as exc:
            return self._reject(400, str(exc))
        queued = len(parsed.items)
        return _json(200, {"queued": queued, "ignored": len(parsed.events) - queued})

    def accept(self, body: bytes, headers: Mapping[str, str] | None = None) -> Parsed:
        """Parse one body, queue its items (durably: returns after ``put``), count and log
        each event. Raises BadEventError for a malformed body. The NATS event source
        (``--events nats://``) hands each message here too."""
        parsed = parse_body(body, scope=self._intake.scope, received=self._clock(), headers=headers)
        items = parsed.items
        if items:
            self._intake.queue.put(items)
        for event in parsed.events:
            self._metrics.received.labels(format=event.format).inc()
            if event.item is not None:
                self._metrics.queued.inc()
            else:
                self._metrics.ignored.labels(reason=event.ignored or "").inc()
            self._log(
                "event",
                format=event.format,
                action=event.action or None,
                repository=event.repository or None,
                ref=event.ref or None,
                outcome="queued" if event.item is not None else f"ignored:{event.ignored}",
            )
        return parsed

    def _authorized(self, header: str) -> bool:
        expected = self._intake.token
        if expected is None:
            return True
        given = header[len(_BEARER) :] if header[: len(_BEARER)].lower() == _BEARER else ""
        return hmac.compare_digest(given.strip().encode(), expected.encode())

    def _reject(self, code: int, why: str, extra: list[tuple[str, str]] | None = None) -> _Reply:
        self._metrics.rejected.labels(code=str(code)).inc()
        self._log("rejected", code=code, detail=why)
        reply_code, body, ctype, headers = _json(code, {"error": printable(why)})
        return reply_code, body, ctype, [*headers, *(extra or [])]


_Reply = tuple[int, bytes, str, list[tuple[str, str]]]


def _text(code: int, text: str) -> _Reply:
    return code, text.encode(), "text/plain; charset=utf-8", []


def _json(code: int, doc: dict[str, Any]) -> _Reply:
    return code, (json.dumps(doc) + "\n").encode(), "application/json", []


class HttpServer:
    """waitress on ``host:port`` in a daemon thread; :meth:`close` ends it quietly (the loop may
    trip over its own closed sockets on the way out: that is not an error worth a traceback)."""

    def __init__(self, app: EventsApp, host: str, port: int, *, threads: int, max_body: int):
        import waitress

        self._server = waitress.create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            max_request_body_size=max_body,
            ident="oci-normalize",
        )
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="serve-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self._server.run()
        except Exception:  # noqa: BLE001
            if not self._closing.is_set():
                raise

    def close(self) -> None:
        self._closing.set()
        self._server.close()
