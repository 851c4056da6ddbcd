"""Pure parts of auth: challenge parsing, secret-free reprs, origins, loopback hosts."""

from __future__ import annotations

import pytest
import requests

from oci_normalize.http.auth import Credential, _split_challenges, parse_challenge
from oci_normalize.http.transport import origin
from oci_normalize.reference import is_loopback_host
from tests.support.clock import FakeClock


@pytest.mark.parametrize(
    ("header", "scheme", "params"),
    [
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
            'scope="repository:library/alpine:pull"',
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:library/alpine:pull",
            },
        ),
        (  # quoted commas inside the scope, several scopes separated by spaces
            'Bearer realm="https://r.example/token",scope="repository:a/b:pull,push '
            'repository:c:pull",service="r.example"',
            "bearer",
            {
                "realm": "https://r.example/token",
                "scope": "repository:a/b:pull,push repository:c:pull",
                "service": "r.example",
            },
        ),
        (  # spaces around separators, unquoted values, mixed case keys
            'BEARER  Realm = "https://x/t" , Service=x.io ,error="insufficient_scope"',
            "bearer",
            {"realm": "https://x/t", "service": "x.io", "error": "insufficient_scope"},
        ),
        (  # escaped quote inside a quoted value
            'Bearer realm="https://x/t",error_description="say \\"hi\\", twice"',
            "bearer",
            {"realm": "https://x/t", "error_description": 'say "hi", twice'},
        ),
        ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
        ("Basic", "basic", {}),
    ],
)
def test_parse_challenge(header: str, scheme: str, params: dict[str, str]) -> None:
    challenge = parse_challenge(header)
    assert challenge is not None
    assert (challenge.scheme, challenge.params) == (scheme, params)


def test_parse_challenge_of_nothing() -> None:
    assert parse_challenge("   ") is None


def _response(header: str) -> requests.Response:
    resp = requests.Response()
    resp.status_code = 401
    resp.headers["WWW-Authenticate"] = header
    return resp


@pytest.mark.parametrize(
    ("header", "schemes"),
    [
        ('Bearer realm="a,b",scope="x:y:pull,push"', ["Bearer"]),
        ('Basic realm="r", Bearer realm="https://t",service="s"', ["Basic", "Bearer"]),
        ('Bearer realm="https://t", Basic realm="x,y"', ["Bearer", "Basic"]),
    ],
)
def test_several_challenges_in_one_header(header: str, schemes: list[str]) -> None:
    parts = _split_challenges(_response(header))
    assert [p.split()[0] for p in parts] == schemes


def test_credential_repr_hides_secrets() -> None:
    cred = Credential(
        username="u", password="hunter2-pw", identity_token="idtok-123", source="test"
    )
    assert "hunter2-pw" not in repr(cred) and "idtok-123" not in repr(cred)
    assert "hunter2-pw" not in str(cred)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://r.io/v2/x", "https://r.io:443/v2/y", True),
        ("http://127.0.0.1:5000/v2/", "http://127.0.0.1:5000/v2/a/blobs/uploads/x", True),
        ("https://r.io/v2/", "https://storage.r.io/blob", False),
        ("https://r.io/v2/", "http://r.io/v2/", False),
        ("http://127.0.0.1:5000/v2/", "http://127.0.0.1:5001/v2/", False),
        ("https://R.IO/v2/", "https://r.io/v2/", True),
    ],
)
def test_origin(a: str, b: str, same: bool) -> None:
    assert (origin(a) == origin(b)) is same


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("registry.localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("[::1]", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("ghcr.io", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


class RecordingSession:
    """Stands in for requests.Session at the token realm: records calls, hands out a token."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, object]]] = []

    def _answer(self) -> requests.Response:
        resp = requests.Response()
        resp.status_code = 200
        resp._content = b'{"token": "tok-abcdef", "expires_in": 300}'
        resp._content_consumed = True  # type: ignore[attr-defined]  # read, as a real answer is
        return resp

    def get(self, url: str, **kwargs: object) -> requests.Response:
        self.calls.append(("GET", url, kwargs))
        return self._answer()

    def post(self, url: str, **kwargs: object) -> requests.Response:
        self.calls.append(("POST", url, kwargs))
        return self._answer()


def _authenticator(  # type: ignore[no-untyped-def]
    cred: Credential, *, allow_plain_http: bool = False, clock: FakeClock | None = None
):
    from oci_normalize.http.auth import Authenticator

    session = RecordingSession()
    auth = Authenticator(
        session,  # type: ignore[arg-type]
        cred,
        timeout=(1, 1),
        allow_plain_http=allow_plain_http,
        clock=clock or FakeClock(),
    )
    return auth, session


BASIC = Credential(username="u", password="pw-secret-1", source="test")
REALM = 'Bearer realm="{realm}",service="svc",scope="repository:a:pull,push"'


@pytest.mark.parametrize(
    ("realm", "cred", "allow", "sent"),
    [
        ("https://auth.example/token", BASIC, False, True),
        ("http://127.0.0.1:9/token", BASIC, False, True),  # loopback
        ("http://auth.example/token", BASIC, True, True),  # --plain-http given
        ("http://auth.example/token", BASIC, False, False),  # refused
        ("http://auth.example/token", Credential(), False, True),  # anonymous: nothing to leak
    ],
)
def test_basic_credentials_never_go_to_a_plain_http_realm(
    realm: str, cred: Credential, allow: bool, sent: bool
) -> None:
    from oci_normalize.errors import UnauthorizedError

    auth, session = _authenticator(cred, allow_plain_http=allow)
    resp = _response(REALM.format(realm=realm))
    if not sent:
        with pytest.raises(UnauthorizedError, match="plain-HTTP token service"):
            auth.answer(resp, ["repository:a:pull,push"])
        assert session.calls == []
        return
    auth.answer(resp, ["repository:a:pull,push"])
    assert auth.header(["repository:a:pull,push"]) == "Bearer tok-abcdef"
    (method, url, kwargs) = session.calls[0]
    assert (method, url) == ("GET", realm)
    assert kwargs["params"] == [("service", "svc"), ("scope", "repository:a:pull,push")]
    assert ("Authorization" in kwargs["headers"]) is cred.has_basic


def test_several_scopes_go_as_separate_parameters_and_identity_tokens_post() -> None:
    auth, session = _authenticator(Credential(identity_token="idt-123456", source="t"))
    wanted = ["repository:dst:pull,push", "repository:src:pull"]
    auth.answer(_response(REALM.format(realm="https://a.example/t")), wanted)
    (method, url, kwargs) = session.calls[0]
    form = kwargs["data"]
    assert method == "POST" and form["grant_type"] == "refresh_token"
    assert form["scope"] == "repository:a:pull,push repository:dst:pull,push repository:src:pull"
    # cached for the scope set asked, whatever the order
    assert auth.header(reversed(wanted)) == "Bearer tok-abcdef"
    assert len(session.calls) == 1  # one token fetch


@pytest.mark.parametrize(
    ("scopes", "merged"),
    [
        (["repository:a:pull"], ["repository:a:pull"]),
        (["repository:a:push,pull", "repository:a:pull,push"], ["repository:a:pull,push"]),
        (
            ["repository:dst:pull,push", "repository:src:pull", "repository:dst:push,pull"],
            ["repository:dst:pull,push", "repository:src:pull"],
        ),
        (["repository:a:pull", "repository:a:delete"], ["repository:a:pull,delete"]),
        (["registry:catalog:*"], ["registry:catalog:*"]),
        (["repository:host:5000/x:pull"], ["repository:host:5000/x:pull"]),
        (["garbage", ""], []),
    ],
)
def test_merge_scopes(scopes: list[str], merged: list[str]) -> None:
    from oci_normalize.http.auth import merge_scopes

    assert merge_scopes(scopes) == merged


def test_a_cached_token_is_renewed_before_sending_once_its_lifetime_passes() -> None:
    """The token answer says 300 s; it is used until 10 s before that on the injected clock,
    then renewed before the next request (no 401 needed to learn it expired)."""
    clock = FakeClock()
    auth, session = _authenticator(BASIC, clock=clock)
    wanted = ["repository:a:pull,push"]
    auth.answer(_response(REALM.format(realm="https://auth.example/token")), wanted)
    assert len(session.calls) == 1
    clock.advance(289)
    assert auth.header(wanted) == "Bearer tok-abcdef"
    assert len(session.calls) == 1  # still fresh: cached
    clock.advance(2)
    assert auth.header(wanted) == "Bearer tok-abcdef"
    assert len(session.calls) == 2  # past 290 s: fetched again
    assert clock.slept == []
