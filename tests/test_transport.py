"""The transport in process (http/transport.py, http/status.py, http/body.py, http/secrets.py).

Requests are prepared by the transport itself; error answers become one typed error naming the
request (method, URL without credentials or query secrets, status, code); retries wait on the
injected clock, so nothing here sleeps. The fake registry serves what a real one will not (a 503
forever, a Retry-After); the real registry proves the same fields on a real error answer.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
import requests

from oci_normalize.digest import Digest
from oci_normalize.errors import (
    DeniedError,
    ManifestTooLargeError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
    TransportError,
    UnauthorizedError,
)
from oci_normalize.http.secrets import MASK, remember, safe_url
from oci_normalize.http.status import error_for, raise_for_status
from oci_normalize.options import NO_RETRY, ClientOptions, RetryPolicy
from oci_normalize.reference import Reference
from oci_normalize.store.registry import Registry
from tests.support.clock import FakeClock
from tests.support.fake_registry import Answer, FakeRegistry, fake_registry
from tests.support.registry import RunningRegistry
from tests.support.transports import transport

UPLOAD_STATE = "state-secret-0123456789"
remember(UPLOAD_STATE)


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    with fake_registry() as server:
        yield server


def _errors(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


# ---- request preparation ----------------------------------------------------------------------


def test_a_request_carries_its_params_headers_and_the_length_of_its_body(
    fake: FakeRegistry,
) -> None:
    fake.route("PUT", "/v2/a/thing", Answer(201))
    fake.route("POST", "/v2/a/empty", Answer(202))
    t = transport(fake.host)
    url = f"http://{fake.host}/v2/a/thing"
    reply = t.request(
        "PUT", url, scopes=(), params={"n": 3, "last": "x y"}, headers={"X-A": "1"}, data=b"abc"
    )
    assert reply.status_code == 201 and reply.body == b""
    t.request("POST", f"http://{fake.host}/v2/a/empty", scopes=())
    put, post = fake.seen
    assert put.path == "/v2/a/thing?n=3&last=x+y"
    assert put.headers["X-A"] == "1" and put.headers["User-Agent"] == "oci-normalize/test"
    assert put.headers["Content-Length"] == "3" and put.body == b"abc"
    assert post.headers["Content-Length"] == "0"  # a write without a body says so
    assert t.requests == 2 and t.retries == 0


def test_a_streamed_body_without_its_length_is_refused_before_sending(fake: FakeRegistry) -> None:
    t = transport(fake.host)
    with pytest.raises(TypeError, match="Content-Length"):
        t.request("PUT", f"http://{fake.host}/v2/a/x", scopes=(), data=iter([b"a"]))
    assert fake.seen == []


@pytest.mark.parametrize("value", ["x\r\nX-Injected: 1", "x\nY", "x\rY"])
def test_a_header_value_with_cr_or_lf_is_refused_before_sending(
    fake: FakeRegistry, value: str
) -> None:
    t = transport(fake.host)
    with pytest.raises(TransportError, match="invalid Accept header value") as info:
        t.request(
            "GET", f"http://{fake.host}/v2/a/manifests/t", scopes=(), headers={"Accept": value}
        )
    assert not info.value.retryable
    assert (info.value.method, info.value.url) == ("GET", f"http://{fake.host}/v2/a/manifests/t")
    assert fake.seen == []


# ---- error answers become typed errors naming the request ---------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "error", "words"),
    [
        (404, _errors("MANIFEST_UNKNOWN", "gone"), NotFoundError, "manifest not found"),
        (404, _errors("NAME_UNKNOWN", "no repo"), NotFoundError, "repository not found"),
        (404, b"", NotFoundError, "manifest not found (HTTP 404"),
        (403, _errors("DENIED", "no"), DeniedError, "DENIED: no"),
        (403, b"", DeniedError, "HTTP 403"),
        (401, b"", UnauthorizedError, "HTTP 401"),
        (400, _errors("TOOMANYREQUESTS", "slow"), RateLimitedError, "TOOMANYREQUESTS: slow"),
        (400, _errors("MANIFEST_INVALID", "bad"), RegistryError, "MANIFEST_INVALID: bad"),
        (500, b"[" * 100_000, RegistryError, "HTTP 500"),  # too deep to read: the status
        (413, b"", ManifestTooLargeError, "refused the size"),
    ],
)
def test_an_error_answer_is_one_typed_error_naming_its_request(
    fake: FakeRegistry, status: int, body: bytes, error: type[Exception], words: str
) -> None:
    fake.route("GET", "/v2/a/b/manifests/t", Answer(status, body))
    reply = transport(fake.host).request(
        "GET", f"http://{fake.host}/v2/a/b/manifests/t", scopes=(), retry_auth=False
    )
    with pytest.raises(error) as info:
        raise_for_status(reply)
    assert type(info.value) is error
    message = str(info.value)
    assert message.startswith(f"GET {fake.host}/v2/a/b/manifests/t: ")
    assert words in message and "\n" not in message
    if isinstance(info.value, RegistryError):
        assert info.value.status == status
        assert info.value.method == "GET"
        assert info.value.url == f"http://{fake.host}/v2/a/b/manifests/t"


def test_a_success_is_not_an_error(fake: FakeRegistry) -> None:
    fake.route("GET", "/v2/a/ok", Answer(200, b"{}"))
    reply = transport(fake.host).request("GET", f"http://{fake.host}/v2/a/ok", scopes=())
    raise_for_status(reply)  # returns
    assert reply.body == b"{}"


def test_an_error_names_the_upload_url_without_its_state_or_credentials(fake: FakeRegistry) -> None:
    """The upload location's ``_state`` (a registry secret) and userinfo never reach the
    error's message or its ``url`` field; the digest parameter (a public name) stays."""
    fake.route(
        "POST",
        "/v2/a/b/blobs/uploads/",
        Answer(202, b"", {"Location": f"/v2/a/b/blobs/uploads/1?_state={UPLOAD_STATE}"}),
    )
    fake.route("PUT", "/v2/a/b/blobs/uploads/1", Answer(400, _errors("DIGEST_INVALID", "nope")))
    reg = Registry(Reference.parse(f"{fake.host}/a/b:t"), options=ClientOptions(retry=NO_RETRY))
    data = b"blob"
    with pytest.raises(RegistryError, match="DIGEST_INVALID") as info:
        reg.upload_blob("a/b", Digest.of(data), len(data), [data])
    exc = info.value
    assert (exc.method, exc.status, exc.code) == ("PUT", 400, "DIGEST_INVALID")
    assert exc.url is not None and UPLOAD_STATE not in exc.url and UPLOAD_STATE not in str(exc)
    assert f"_state={MASK}" in exc.url and "digest=sha256%3A" in exc.url
    assert str(exc).startswith(f"PUT {fake.host}/v2/a/b/blobs/uploads/1: ")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://u:pw-secret@r.example/v2/a/tags/list?n=10&last=x",
            "https://r.example/v2/a/tags/list?n=10&last=x",
        ),
        (
            "https://s3.example/b/k?X-Amz-Signature=abc&X-Amz-Credential=def",
            f"https://s3.example/b/k?X-Amz-Signature={MASK}&X-Amz-Credential={MASK}",
        ),
        (
            "http://r:5000/v2/a/blobs/uploads/1?_state=zz&digest=sha256:00",
            f"http://r:5000/v2/a/blobs/uploads/1?_state={MASK}&digest=sha256:00",
        ),
        ("http://r/v2/x?flag", "http://r/v2/x?flag"),
        (f"http://r/v2/{UPLOAD_STATE}/x", f"http://r/v2/{MASK}/x"),  # a remembered secret
    ],
)
def test_urls_are_shown_without_credentials_or_query_secrets(url: str, shown: str) -> None:
    assert safe_url(url) == shown


def test_a_cut_error_body_still_gives_the_status_and_never_the_whole_body(
    fake: FakeRegistry,
) -> None:
    huge = b'{"errors":[{"code":"X","message":"' + b"m" * 200_000 + b'"}]}'
    fake.route("GET", "/v2/a/huge", Answer(500, huge))
    reply = transport(fake.host).request("GET", f"http://{fake.host}/v2/a/huge", scopes=())
    assert len(reply.body) < len(huge)
    error = error_for(reply)
    assert isinstance(error, RegistryError) and error.status == 500 and len(str(error)) < 300


def test_a_success_answer_over_its_cap_is_refused(fake: FakeRegistry) -> None:
    fake.route("GET", "/v2/a/big", Answer(200, b"x" * 5000))
    t = transport(fake.host)
    with pytest.raises(RegistryError, match="over the 1000 byte cap") as info:
        t.request("GET", f"http://{fake.host}/v2/a/big", scopes=(), max_body=1000)
    assert info.value.status == 200 and info.value.method == "GET"


def test_a_redirect_to_a_non_http_url_is_refused_naming_the_request(fake: FakeRegistry) -> None:
    fake.route("GET", "/v2/a/m", Answer(302, b"", {"Location": "file:///etc/passwd"}))
    with pytest.raises(RegistryError, match="non-HTTP URL") as info:
        transport(fake.host).request("GET", f"http://{fake.host}/v2/a/m", scopes=())
    assert info.value.method == "GET" and info.value.url == f"http://{fake.host}/v2/a/m"


# ---- retries wait on the injected clock -----------------------------------------------------------


def test_retry_after_is_waited_for_on_the_clock_before_the_next_try(fake: FakeRegistry) -> None:
    fake.route(
        "GET",
        "/v2/a/r",
        Answer(429, b"", {"Retry-After": "7"}),
        Answer(200, b"ok"),
    )
    clock = FakeClock()
    t = transport(fake.host, retry=RetryPolicy(), clock=clock)
    reply = t.request("GET", f"http://{fake.host}/v2/a/r", scopes=())
    assert reply.body == b"ok"
    assert clock.slept == [7.0]  # the server's floor, above the first backoff
    assert t.retries == 1 and t.requests == 2


def test_a_retry_after_beyond_the_limit_fails_at_once_as_rate_limited(fake: FakeRegistry) -> None:
    fake.route("GET", "/v2/a/r", Answer(429, b"", {"Retry-After": "3600"}))
    clock = FakeClock()
    t = transport(fake.host, retry=RetryPolicy(), clock=clock)
    with pytest.raises(
        RateLimitedError, match=r"rate limited by the registry \(HTTP 429\)"
    ) as info:
        t.request("GET", f"http://{fake.host}/v2/a/r", scopes=())
    assert info.value.status == 429 and info.value.method == "GET"
    assert clock.slept == [] and len(fake.seen) == 1


def test_a_registry_that_stays_unwell_is_given_up_on_after_the_policy_tries(
    fake: FakeRegistry,
) -> None:
    fake.route("GET", "/v2/a/r", Answer(503, _errors("UNAVAILABLE", "later")))
    clock = FakeClock()
    t = transport(fake.host, retry=RetryPolicy(attempts=4), clock=clock)
    with pytest.raises(
        RegistryError, match=r"UNAVAILABLE: later \(gave up after 4 tries\)"
    ) as info:
        t.request("GET", f"http://{fake.host}/v2/a/r", scopes=())
    assert info.value.status == 503 and info.value.code == "UNAVAILABLE"
    assert len(clock.slept) == 3 and len(fake.seen) == 4
    assert all(0 < s <= 2.0 for s in clock.slept)  # jittered backoff, never really slept


def test_an_unreachable_registry_is_a_transport_error_naming_the_request() -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{probe.getsockname()[1]}"
    clock = FakeClock()
    t = transport(host, retry=RetryPolicy(attempts=2), clock=clock)
    with pytest.raises(TransportError, match=r"cannot reach .*\(gave up after 2 tries\)") as info:
        t.request("HEAD", f"http://{host}/v2/a/blobs/x", scopes=())
    assert info.value.retryable
    assert (info.value.method, info.value.url) == ("HEAD", f"http://{host}/v2/a/blobs/x")
    assert len(clock.slept) == 1


def test_a_streamed_answer_is_handed_over_unread(fake: FakeRegistry) -> None:
    fake.route("GET", "/v2/a/blobs/x", Answer(200, b"0123456789"))
    resp = transport(fake.host).open("GET", f"http://{fake.host}/v2/a/blobs/x", scopes=())
    with resp:
        assert isinstance(resp, requests.Response)
        assert b"".join(resp.iter_content(4)) == b"0123456789"


# ---- the real registry --------------------------------------------------------------------------


@pytest.mark.registry
def test_a_real_registry_error_carries_method_url_status_and_code(
    registry: RunningRegistry,
) -> None:
    reg = Registry(Reference.parse(f"{registry.host}/transport/missing:v1"))
    with pytest.raises(NotFoundError) as info:
        reg.get_manifest("transport/missing", "v1")
    exc = info.value
    assert exc.method == "GET" and exc.status == 404 and exc.code == "MANIFEST_UNKNOWN"
    assert exc.url == f"{reg.base_url}transport/missing/manifests/v1"
    assert str(exc).startswith(f"GET {registry.host}/v2/transport/missing/manifests/v1: ")
    assert "manifest not found (MANIFEST_UNKNOWN" in str(exc)
