"""A registry that lies: a real HTTP server on loopback, one misbehaviour per mode.

Not a stand-in for the real registry (integration tests use docker-registry): this serves what no
honest registry would, to prove the client's trust boundary. By default it serves one small
Docker-typed image ``app:v1`` (config + one layer) and a catalog naming ``app``; each mode in
:data:`MODES` changes one thing. Every request is logged (method, path, headers), and so is every
request that reaches the :class:`Canary`, a second server standing for "another host".
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import ssl
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

#: Every mode and what it does; tests iterate over (a subset of) these.
MODES: dict[str, str] = {
    "honest": "serves app:v1 as it is",
    "lying-digest": "Docker-Content-Digest names other bytes than the body",
    "lying-body": "a manifest fetched by digest has other bytes",
    "lying-size": "an index child's descriptor says 1 byte; the child is longer",
    "lying-blob": "a layer blob is longer than its descriptor (and other bytes)",
    "drip-blob": "a layer blob arrives one byte a second",
    "schema1-appended": "a signed schema1 body with another manifest after its signatures",
    "drip": "the manifest body arrives one byte a second",
    "drip-headers": "the answer's headers arrive one byte a second",
    "endless-manifest": "the manifest body never ends",
    "endless-error": "a 500 whose error body never ends",
    "hostile-error": "a 500 whose message holds ESC sequences, newlines and 60 KB",
    "nested-error": "a 500 whose error body nests 100,000 arrays deep",
    "echo-secret": "a 500 whose message echoes the Authorization header and the password",
    "nested-manifest": "a manifest nested 100,000 arrays deep",
    "huge-catalog": "a catalog page that never ends",
    "endless-pagination": "a catalog whose next-page links never end",
    "pagination-loop": "a catalog whose next page is itself",
    "pagination-elsewhere": "a catalog whose next page is on another host",
    "hostile-catalog": "catalog names with .., //host, ESC and newlines",
    "hostile-tags": "tags with .., ESC and newlines",
    "fanout": "an index 6 wide and 7 deep (43 distinct manifests, 6^7 paths)",
    "hostile-types": "a layer media type with ESC and a newline",
    "hostile-platform": "platform fields and a Content-Type with ESC and newlines",
    "token-huge": "a token answer that never ends",
    "token-nested": "a token answer nested 100,000 deep",
    "token-nonlatin": "a token of non-latin-1 characters",
    "token-malformed": "a token with CR LF and a header after it",
    "token-drip": "a token answer arriving one byte a second",
    "redirect-elsewhere": "the manifest redirects to another host",
    "redirect-file": "the manifest redirects to a file: URL",
}

TOKEN_MODES = frozenset(m for m in MODES if m.startswith("token-"))
DEEP = 100_000


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Log:
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.seen.append(Seen(handler.command, handler.path, dict(handler.headers.items())))

    def writes(self) -> list[Seen]:
        return [s for s in self.seen if s.method not in ("GET", "HEAD")]

    def gets(self, prefix: str = "") -> list[Seen]:
        return [s for s in self.seen if s.method == "GET" and s.path.startswith(prefix)]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        data = b"hello from a hostile registry\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


@dataclass
class Content:
    """The image served, and the blobs and manifests by digest."""

    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    root: str = ""

    def add_manifest(self, data: bytes, media_type: str) -> str:
        digest = _digest(data)
        self.manifests[digest] = (data, media_type)
        return digest


def image(content: Content, salt: str = "") -> tuple[bytes, str]:
    layer = _layer()
    config = _json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": [f"SALT={salt}"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(gzip.decompress(layer))]},
        }
    )
    content.blobs[_digest(layer)] = layer
    content.blobs[_digest(config)] = config
    manifest = _json(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": DOCKER_LAYER, "size": len(layer), "digest": _digest(layer)}],
        }
    )
    return manifest, DOCKER_MANIFEST


def _index(children: list[tuple[bytes, str]], label: str = "") -> bytes:
    return _json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": t, "size": len(d), "digest": _digest(d)} for d, t in children
            ],
            "annotations": {"label": label},
        }
    )


def build(mode: str) -> Content:
    content = Content()
    if mode == "fanout":
        leaves = [image(content, f"leaf{i}") for i in range(6)]
        for data, mtype in leaves:
            content.add_manifest(data, mtype)
        level = leaves
        for depth in range(6):  # 6 more levels of 6 indexes, each naming all 6 below it
            level = [(_index(level, f"{depth}.{i}"), OCI_INDEX) for i in range(6)]
            for data, mtype in level:
                content.add_manifest(data, mtype)
        root = _index(level)
        content.root = content.add_manifest(root, OCI_INDEX)
        return content
    manifest, mtype = image(content)
    if mode in ("hostile-types", "hostile-platform"):
        body = json.loads(manifest)
        if mode == "hostile-types":
            body["layers"][0]["mediaType"] = DOCKER_LAYER + "\x1b[2J\nFAKE LINE"
        del body["mediaType"]  # the type then comes from the descriptor or Content-Type
        child = _json(body)
        content.add_manifest(child, "text/x-\x1b[31m")
        index = json.loads(_index([(child, DOCKER_MANIFEST)]))
        index["manifests"][0]["platform"] = {"os": "linux\x1b[2J", "architecture": "a\nFAKE"}
        content.root = content.add_manifest(_json(index), OCI_INDEX)
        return content
    if mode == "lying-size":
        content.add_manifest(manifest, mtype)
        index = json.loads(_index([(manifest, mtype)]))
        index["manifests"][0]["size"] = 1
        content.root = content.add_manifest(_json(index), OCI_INDEX)
        return content
    if mode == "nested-manifest":
        deep = b'{"schemaVersion":2,"mediaType":"' + OCI_MANIFEST.encode() + b'","x":'
        deep += b"[" * DEEP + b"]" * DEEP + b"}"
        content.root = content.add_manifest(deep, OCI_MANIFEST)
        return content
    if mode == "schema1-appended":
        content.root = content.add_manifest(*_schema1_appended())
        return content
    content.root = content.add_manifest(manifest, mtype)
    return content


def _schema1_appended() -> tuple[bytes, str]:
    """A signed schema1 body with a member after its signature block that the payload lacks.

    The JWS payload (what the digest covers) names no architecture; the unsigned tail adds
    ``"architecture": "arm64"``. A client that verifies the payload but parses the whole
    body would convert an image the digest never vouched for.
    """
    payload = _json(
        {
            "schemaVersion": 1,
            "name": "app",
            "tag": "v1",
            "fsLayers": [{"blobSum": "sha256:" + "a" * 64}],
            "history": [{"v1Compatibility": _json({"id": "b" * 64}).decode()}],
        }
    )
    length = len(payload) - 1  # everything but the closing brace
    protected = base64.urlsafe_b64encode(
        _json({"formatLength": length, "formatTail": base64.urlsafe_b64encode(b"}").decode()})
    ).decode()
    sig = _json({"header": {"alg": "ES256"}, "signature": "c2ln", "protected": protected})
    body = payload[:length] + b',"signatures":[' + sig + b'],"architecture":"arm64"}'
    return body, SCHEMA1_SIGNED


def signed_schema1(payload_obj: dict[str, object]) -> tuple[bytes, bytes]:
    """(body, payload) of an honestly formatted signed schema1 manifest (fake signature)."""
    payload = json.dumps(payload_obj, indent=3).encode()
    length = payload.rindex(b"\n}")
    tail = payload[length:]
    protected = (
        base64.urlsafe_b64encode(
            _json({"formatLength": length, "formatTail": base64.urlsafe_b64encode(tail).decode()})
        )
        .decode()
        .rstrip("=")
    )
    sig = _json({"header": {"alg": "ES256"}, "signature": "c2ln", "protected": protected})
    body = payload[:length] + b',\n   "signatures": [\n      ' + sig + b"\n   ]\n}"
    return body, payload


class Canary:
    """Another host: logs whatever reaches it and answers 200 with a small body."""

    def __init__(self) -> None:
        self.log = Log()
        self.host = ""


@dataclass
class Hostile:
    mode: str
    content: Content
    log: Log
    canary: Canary
    host: str = ""
    #: The token a client must present in token modes (never handed out: the answers are bad).
    token: str = "good-token-never-issued"
    names: list[str] = field(default_factory=list)
    #: When set, every /v2/ request needs HTTP Basic credentials for this user (any password).
    basic_user: str | None = None


def _handler(reg: Hostile) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - the http.server naming
            self._serve()

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve()

        def _write_refused(self) -> None:
            reg.log.add(self)
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self._answer(403, _json({"errors": [{"code": "DENIED", "message": "read-only"}]}))

        do_PUT = do_POST = do_PATCH = do_DELETE = _write_refused  # noqa: N815

        def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _stream(self, status: int, chunks: Iterator[bytes], ctype: str, delay: float) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for chunk in chunks:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                    if delay:
                        time.sleep(delay)
            except OSError:
                pass  # the client gave up, as it should
            self.close_connection = True

        def _serve(self) -> None:
            reg.log.add(self)
            url = urlsplit(self.path)
            path, query = url.path, parse_qs(url.query)
            mode = reg.mode
            if mode in TOKEN_MODES and path == "/token":
                return self._token()
            if mode in TOKEN_MODES and self.headers.get("Authorization") != f"Bearer {reg.token}":
                realm = f"http://{reg.host}/token"
                return self._answer(
                    401,
                    _json({"errors": [{"code": "UNAUTHORIZED", "message": "token please"}]}),
                    {"WWW-Authenticate": f'Bearer realm="{realm}",service="hostile"'},
                )
            if reg.basic_user and not self.headers.get("Authorization", "").startswith("Basic "):
                return self._answer(
                    401,
                    _json({"errors": [{"code": "UNAUTHORIZED", "message": "login please"}]}),
                    {"WWW-Authenticate": 'Basic realm="hostile"'},
                )
            if path == "/v2/":
                return self._answer(200, b"{}")
            if path == "/v2/_catalog":
                return self._catalog(query)
            if path.startswith("/v2/") and path.endswith("/tags/list"):
                return self._tags(path[4 : -len("/tags/list")])
            if path.startswith("/v2/app/manifests/"):
                return self._manifest(path.rsplit("/", 1)[1])
            if path.startswith("/v2/app/blobs/"):
                return self._blob(path.rsplit("/", 1)[1])
            return self._answer(404, b"404 page not found\n", {"Content-Type": "text/plain"})

        def _manifest(self, ref: str) -> None:
            content, mode = reg.content, reg.mode
            digest = content.root if ref == "v1" else ref
            if digest not in content.manifests:
                return self._answer(404, _json({"errors": [{"code": "MANIFEST_UNKNOWN"}]}))
            data, mtype = content.manifests[digest]
            headers = {"Content-Type": mtype, "Docker-Content-Digest": digest}
            if mode == "lying-digest":
                headers["Docker-Content-Digest"] = _digest(data + b" ")
            if mode == "lying-body" and ref != "v1":
                data = data + b" "  # valid JSON still, other bytes
            if mode == "drip":
                return self._stream(200, (bytes([b]) for b in data), mtype, 1.0)
            if mode == "drip-headers":
                return self._drip_headers()
            if mode == "endless-manifest":
                return self._stream(200, _endless(b"[" + b"0," * 30000), mtype, 0)
            if mode == "endless-error":
                return self._stream(500, _endless(b"x" * 65536), "application/json", 0)
            if mode == "hostile-error":
                message = "\x1b[2J\x1b[31mFAKE\nLine two\r\noci-normalize: ok" + "A" * 60_000
                body = _json({"errors": [{"code": "BROKEN\x1b[0m", "message": message}]})
                return self._answer(500, body, {"Content-Type": "application/json"})
            if mode == "echo-secret":
                sent = self.headers.get("Authorization", "")
                decoded = base64.b64decode(sent.split(" ", 1)[-1] + "==").decode(errors="replace")
                message = f"you sent {sent!r}, that is {decoded!r}"
                body = _json({"errors": [{"code": "UNKNOWN", "message": message}]})
                return self._answer(500, body, {"Content-Type": "application/json"})
            if mode == "nested-error":
                body = b'{"errors":' + b"[" * DEEP + b"]" * DEEP + b"}"
                return self._answer(500, body, {"Content-Type": "application/json"})
            if mode == "redirect-elsewhere":
                return self._answer(307, b"", {"Location": f"http://{reg.canary.host}/m/{ref}"})
            if mode == "redirect-file":
                return self._answer(307, b"", {"Location": "file:///etc/passwd"})
            return self._answer(200, data, headers)

        def _blob(self, digest: str) -> None:
            blob = reg.content.blobs.get(digest)
            if blob is None:
                return self._answer(404, _json({"errors": [{"code": "BLOB_UNKNOWN"}]}))
            if reg.mode == "lying-blob" and blob[:2] == b"\x1f\x8b":
                blob = blob + b"\0" * 4096
            if reg.mode == "drip-blob" and blob[:2] == b"\x1f\x8b":
                self.send_response(200)
                self.send_header("Content-Length", str(len(blob)))
                self.end_headers()
                try:
                    for byte in blob:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(1.0)
                except OSError:
                    pass
                self.close_connection = True
                return None
            return self._answer(200, blob, {"Content-Type": "application/octet-stream"})

        def _drip_headers(self) -> None:
            try:
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 600:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(1.0)
            except OSError:
                pass
            self.close_connection = True

        def _catalog(self, query: dict[str, list[str]]) -> None:
            mode = reg.mode
            if mode == "huge-catalog":
                flood = (b'"r%08d",' % i for i in range(10**9))
                start = iter([b'{"repositories":['])
                return self._stream(200, _chain(start, flood), "application/json", 0)
            if mode in ("endless-pagination", "pagination-loop", "pagination-elsewhere"):
                page = int((query.get("page") or ["0"])[0])
                names = [f"r{page:06d}x{i:04d}" for i in range(100)]
                nxt = {
                    "endless-pagination": f"/v2/_catalog?page={page + 1}",
                    "pagination-loop": "/v2/_catalog?page=0",
                    "pagination-elsewhere": f"http://{reg.canary.host}/v2/_catalog?page=1",
                }[mode]
                return self._answer(
                    200, _json({"repositories": names}), {"Link": f'<{nxt}>; rel="next"'}
                )
            names = reg.names or ["app"]
            if mode == "hostile-catalog":
                other = f"//{reg.canary.host}/x"
                names = ["app", "a/../../../v2/x", other, "ok\x1b[31mred", "bad\nname", "UP/x", ""]
            return self._answer(200, _json({"repositories": names}))

        def _tags(self, repository: str) -> None:
            if reg.mode == "hostile-tags":
                tags = ["v1", "../../../v2/x/manifests/t", "t\x1b[31m", "t\nINJECTED", "a" * 300]
            else:
                tags = ["v1"]
            return self._answer(200, _json({"name": repository, "tags": tags}))

        def _token(self) -> None:
            mode = reg.mode
            if mode == "token-huge":
                chunks = _chain(iter([b'{"token":"']), _endless(b"A" * 65536))
                return self._stream(200, chunks, "application/json", 0)
            if mode == "token-nested":
                body = b'{"token":"x","extra":' + b"[" * DEEP + b"]" * DEEP + b"}"
                return self._answer(200, body)
            if mode == "token-nonlatin":
                return self._answer(200, _json({"token": "ключ-доступа"}))
            if mode == "token-malformed":
                return self._answer(200, _json({"token": "abc\r\nX-Injected: yes"}))
            body = _json({"token": "slow-token"})
            return self._stream(200, (bytes([b]) for b in body), "application/json", 1.0)

    return Handler


def _endless(chunk: bytes) -> Iterator[bytes]:
    while True:
        yield chunk


def _chain(*parts: Iterator[bytes]) -> Iterator[bytes]:
    for part in parts:
        yield from part


def _canary_handler(canary: Canary) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:
            pass

        def _serve(self) -> None:
            canary.log.add(self)
            body = b'{"repositories":[]}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_PUT = do_POST = _serve  # noqa: N815

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up on a lie is the point, not a server problem


@contextmanager
def _serving(
    handler: type[BaseHTTPRequestHandler], tls: tuple[str, str] | None = None
) -> Iterator[str]:
    server = _QuietServer(("127.0.0.1", 0), handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def hostile_registry(
    mode: str,
    *,
    names: list[str] | None = None,
    configure: Callable[[Hostile], None] | None = None,
    tls: tuple[str, str] | None = None,
) -> Iterator[Hostile]:
    """Serve ``mode`` (a key of :data:`MODES`) on a free loopback port, with its canary.

    ``tls``: (certificate file, key file) to serve HTTPS instead of HTTP.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    canary = Canary()
    reg = Hostile(mode=mode, content=build(mode), log=Log(), canary=canary, names=names or [])
    if configure is not None:
        configure(reg)
    with (
        _serving(_canary_handler(canary)) as canary_host,
        _serving(_handler(reg), tls) as host,
    ):
        canary.host = canary_host
        reg.host = host
        yield reg
