"""The connection layer (http/adapter.py): requests' adapter with its per-request work cut.

A direct request reuses the connection pool it found for its origin (until that pool is
closed), is sent to the same target requests would send, and still brings cookies home; a
request through a proxy from the environment takes requests' own path and reaches the proxy.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from oci_normalize.http import env as httpenv
from oci_normalize.http.adapter import Adapter, split_origin
from tests.support.fake_registry import Answer, FakeRegistry, fake_registry
from tests.support.transports import transport

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    with fake_registry() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://reg.example:5000/v2/a/blobs/uploads/x?_state=abc&digest=sha256%3A00",
        "https://reg.example/v2/",
        "http://user:pw@reg.example/v2/a/tags/list?n=10&last=t1",
        "https://reg.example/v2/a%2Fb/manifests/t",
        "http://reg.example/v2/a/b?x=1/2",
    ],
)
def test_a_direct_url_is_split_into_the_origin_and_the_target_requests_would_send(
    url: str,
) -> None:
    prep = requests.Request("GET", url).prepare()
    prep.url = url  # as the transport sends it: not re-quoted
    parts = split_origin(url)
    assert parts is not None
    assert parts[1] == prep.path_url
    assert parts[0] + parts[1] == url


@pytest.mark.parametrize(
    "url",
    [
        "http://reg.example",  # no path
        "http://reg.example?x=1",  # a query without a path
        "http://reg.example/v2/a#frag",  # a fragment is never sent
        "http://reg.example/v2/a?",  # an empty query: requests drops the "?"
        "http://reg.example//v2/a",  # urllib3 would read "//v2" as a host
        "http://reg.example/v2/a\tb",  # urlsplit drops tabs and line breaks
        "ftp://reg.example/v2/",
        "/v2/a",
    ],
)
def test_urls_the_shortcut_cannot_split_exactly_are_left_to_requests(url: str) -> None:
    assert split_origin(url) is None


def test_direct_requests_to_one_origin_reuse_one_pool_until_the_manager_lets_it_go(
    fake: FakeRegistry,
) -> None:
    fake.route("GET", "/v2/*", Answer(200, b"{}"))
    session = httpenv.new_session()
    adapter = session.get_adapter("http://")
    assert isinstance(adapter, Adapter)
    t = transport(fake.host, session=session)
    url = f"http://{fake.host}/v2/a/tags/list"
    t.request("GET", url, scopes=())
    prep = requests.Request("GET", url).prepare()
    first = adapter.get_connection_with_tls_context(prep, True)
    assert adapter.get_connection_with_tls_context(prep, True) is first
    assert adapter.get_connection_with_tls_context(prep, False) is not first  # TLS is a key
    adapter.poolmanager.clear()  # the manager lets go of its pools, as an eviction does
    again = adapter.get_connection_with_tls_context(prep, True)
    assert again is not first
    assert adapter.get_connection_with_tls_context(prep, True) is again
    reply = t.request("GET", url, scopes=())  # and requests keep flowing on the new pool
    assert reply.status_code == 200 and [s.path for s in fake.seen] == ["/v2/a/tags/list"] * 2


def test_a_pool_evicted_from_the_manager_is_not_handed_out_again() -> None:
    adapter = Adapter(pool_connections=2)
    preps = [requests.Request("GET", f"http://h{i}.example/v2/").prepare() for i in range(3)]
    first = adapter.get_connection_with_tls_context(preps[0], True)
    for prep in preps[1:]:  # the third origin evicts the first from a manager of two
        adapter.get_connection_with_tls_context(prep, True)
    assert adapter.get_connection_with_tls_context(preps[0], True) is not first


def test_the_target_sent_keeps_the_registrys_own_encoding_and_query(fake: FakeRegistry) -> None:
    fake.route("PUT", "/v2/a/blobs/uploads/u1", Answer(201))
    t = transport(fake.host)
    target = "/v2/a/blobs/uploads/u1?_state=a%2Bb%3D&digest=sha256%3A00"
    reply = t.request("PUT", f"http://{fake.host}{target}", scopes=(), data=b"x")
    assert reply.status_code == 201
    assert fake.seen[0].path == target


def test_cookies_an_answer_sets_are_sent_back(fake: FakeRegistry) -> None:
    fake.route("GET", "/v2/", Answer(200, b"{}", {"Set-Cookie": "lb=node-2; Path=/"}))
    fake.route("GET", "/v2/a/tags/list", Answer(200, b"{}"))
    t = transport(fake.host)
    t.request("GET", f"http://{fake.host}/v2/", scopes=())
    t.request("GET", f"http://{fake.host}/v2/a/tags/list", scopes=())
    first, second = fake.seen
    assert "Cookie" not in first.headers
    assert second.headers.get("Cookie") == "lb=node-2"


def test_a_proxy_from_the_environment_is_used_for_a_registry_not_excluded(
    fake: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake plays the proxy: a proxied plain-HTTP request names its absolute URL.
    fake.route("GET", "http://registry.example:5000/v2/a/tags/list", Answer(200, b"{}"))
    monkeypatch.setenv("HTTP_PROXY", f"http://{fake.host}")
    monkeypatch.setenv("NO_PROXY", "other.example")
    t = transport("registry.example:5000")
    reply = t.request("GET", "http://registry.example:5000/v2/a/tags/list", scopes=())
    assert reply.status_code == 200
    assert [s.path for s in fake.seen] == ["http://registry.example:5000/v2/a/tags/list"]
