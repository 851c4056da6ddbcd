"""Registry.referrers and the per-registry probe memory, against a tiny in-process HTTP stub.

distribution 2.8 has no referrers API, so the 200 path (and Link pagination) is exercised
here with canned answers; the 404 path is also covered end to end in test_inplace.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import NotFoundError
from oci_normalize.inplace import ReferrerCache
from oci_normalize.reference import Reference
from oci_normalize.registry import Registry

D = Digest("sha256", "ab" * 32)
R1 = {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "01" * 32, "size": 1}
R2 = {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "02" * 32, "size": 2}

# path -> (status, content type, body, extra headers)
Answer = tuple[int, str, bytes, dict[str, str]]


class Stub:
    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.hits: list[str] = []


@pytest.fixture
def stub() -> Iterator[tuple[Stub, str]]:
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            state.hits.append(self.path)
            status, ctype, body, headers = state.answers.get(
                self.path, (404, "text/plain", b"404 page not found\n", {})
            )
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state, f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _index(*entries: dict[str, object]) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    ).encode()


def _registry(host: str) -> Registry:
    return Registry(Reference.parse(f"{host}/app:v1"))


def test_referrers_api_pages_are_merged(stub: tuple[Stub, str]) -> None:
    state, host = stub
    first = f"/v2/app/referrers/{D}"
    state.answers[first] = (
        200,
        mt.OCI_INDEX,
        _index(R1),
        {"Link": f'<{first}?last=1>; rel="next"'},
    )
    state.answers[f"{first}?last=1"] = (200, mt.OCI_INDEX, _index(R2), {})
    data = _registry(host).referrers("app", D)
    assert data is not None
    assert json.loads(data)["manifests"] == [R1, R2]


@pytest.mark.parametrize(
    ("status", "ctype", "body"),
    [
        (404, "text/plain", b"404 page not found\n"),  # distribution 2.8
        (405, "text/plain", b""),
        (400, "application/json", b'{"errors":[{"code":"UNSUPPORTED"}]}'),
        (404, "application/json", b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'),
    ],
)
def test_referrers_unsupported_is_none(
    stub: tuple[Stub, str], status: int, ctype: str, body: bytes
) -> None:
    state, host = stub
    state.answers[f"/v2/app/referrers/{D}"] = (status, ctype, body, {})
    assert _registry(host).referrers("app", D) is None


def test_referrers_unknown_repository_raises(stub: tuple[Stub, str]) -> None:
    state, host = stub
    body = b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}'
    state.answers[f"/v2/app/referrers/{D}"] = (404, "application/json", body, {})
    with pytest.raises(NotFoundError, match="NAME_UNKNOWN"):
        _registry(host).referrers("app", D)


def test_probe_is_remembered_per_registry(stub: tuple[Stub, str]) -> None:
    state, host = stub
    cache = ReferrerCache()
    reg = _registry(host)
    other = Digest("sha256", "cd" * 32)
    assert cache.referrers_index(reg, "app", D) is None
    assert cache.referrers_index(reg, "other", other) is None  # no second probe
    assert state.hits == [f"/v2/app/referrers/{D}"]
    assert cache.has_api(reg.registry) is False


def test_supported_api_is_asked_for_every_digest(stub: tuple[Stub, str]) -> None:
    state, host = stub
    other = Digest("sha256", "cd" * 32)
    for digest in (D, other):
        state.answers[f"/v2/app/referrers/{digest}"] = (200, mt.OCI_INDEX, _index(R1), {})
    cache = ReferrerCache()
    reg = _registry(host)
    assert cache.referrers_index(reg, "app", D) is not None
    assert cache.referrers_index(reg, "app", other) is not None
    assert len(state.hits) == 2 and cache.has_api(reg.registry) is True
