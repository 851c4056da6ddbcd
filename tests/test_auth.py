"""Pure parts of auth: challenge parsing, secret-free reprs, origins, loopback hosts."""

from __future__ import annotations

import pytest
import requests

from oci_normalize.auth import Credential, _split_challenges, is_loopback_host, parse_challenge
from oci_normalize.transport import origin


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
