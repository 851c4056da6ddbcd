"""Error paths of the registry client and the API, against a scripted fake server.

The happy paths and the peers' verdicts live in the real-registry tests; here we produce the
answers a healthy registry never gives: wrong bytes, oversized bodies, denials, odd challenges.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from oci_normalize import api
from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import (
    DeniedError,
    DigestMismatchError,
    MalformedManifestError,
    ManifestTooLargeError,
    NotFoundError,
    RegistryError,
    TransportError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from oci_normalize.http.auth import Credential
from oci_normalize.manifest import jws_payload
from oci_normalize.options import ClientOptions
from oci_normalize.reference import Reference
from oci_normalize.store.registry import Registry
from tests.support.fake_registry import Answer, FakeRegistry, fake_registry

CONFIG = {"mediaType": mt.DOCKER_CONFIG, "size": 2, "digest": "sha256:" + "d" * 64}
LAYER = {"mediaType": mt.DOCKER_LAYER_GZIP, "size": 3, "digest": "sha256:" + "c" * 64}


def manifest_bytes(**extra: object) -> bytes:
    body = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": CONFIG,
        "layers": [LAYER],
    }
    body.update(extra)
    return json.dumps(body).encode()


def manifest_answer(data: bytes, media_type: str = mt.DOCKER_MANIFEST, **headers: str) -> Answer:
    return Answer(
        200,
        data,
        {"Content-Type": media_type, "Docker-Content-Digest": str(Digest.of(data)), **headers},
    )


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    with fake_registry() as server:
        yield server


def client(fake: FakeRegistry, **options: object) -> Registry:
    return Registry(Reference.parse(f"{fake.host}/a/b:t"), options=ClientOptions(**options))  # type: ignore[arg-type]


def test_manifest_by_digest_with_wrong_bytes_is_refused(fake: FakeRegistry) -> None:
    good, evil = manifest_bytes(), manifest_bytes(annotations={"x": "y"})
    digest = Digest.of(good)
    fake.route(
        "GET",
        f"/v2/a/b/manifests/{digest}",
        Answer(200, evil, {"Content-Type": mt.DOCKER_MANIFEST}),
    )
    with pytest.raises(DigestMismatchError) as info:
        client(fake).get_manifest("a/b", str(digest), expected=digest)
    assert str(digest) in str(info.value) and str(Digest.of(evil)) in str(info.value)


def test_tag_with_lying_digest_header_is_refused(fake: FakeRegistry) -> None:
    data = manifest_bytes()
    fake.route(
        "GET",
        "/v2/a/b/manifests/t",
        Answer(200, data, {"Docker-Content-Digest": "sha256:" + "0" * 64}),
    )
    with pytest.raises(DigestMismatchError):
        client(fake).get_manifest("a/b", "t")


def test_oversized_manifest_is_refused_by_length_and_by_stream(fake: FakeRegistry) -> None:
    data = manifest_bytes(annotations={"pad": "x" * 500})
    fake.route("GET", "/v2/a/b/manifests/t", manifest_answer(data))
    with pytest.raises(ManifestTooLargeError, match="cap"):
        client(fake, max_manifest_bytes=100).get_manifest("a/b", "t")
    # The real 4 MiB cap, announced by Content-Length: refused before reading the body.
    fake.route(
        "GET", "/v2/a/b/manifests/big", Answer(200, b"{}", {"Content-Length": str(5 * 1024 * 1024)})
    )
    with pytest.raises(ManifestTooLargeError, match="over the 4194304 cap"):
        client(fake).get_manifest("a/b", "big")


def test_broken_json_is_one_clear_error(fake: FakeRegistry) -> None:
    data = b'{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", '
    fake.route("GET", "/v2/a/b/manifests/t", manifest_answer(data))
    with pytest.raises(MalformedManifestError, match="not valid JSON"):
        api.check(f"{fake.host}/a/b:t")


def test_unknown_root_media_type_is_refused(fake: FakeRegistry) -> None:
    data = b'{"hello": "world"}'
    fake.route(
        "GET", "/v2/a/b/manifests/t", manifest_answer(data, "application/vnd.example.thing+json")
    )
    with pytest.raises(UnsupportedMediaTypeError, match="application/vnd.example.thing"):
        api.check(f"{fake.host}/a/b:t")
    with pytest.raises(UnsupportedMediaTypeError):
        api.convert(f"{fake.host}/a/b:t")
    assert fake.requests("PUT") == []


def test_denied_push_stops_before_the_tag_moves(fake: FakeRegistry) -> None:
    child = manifest_bytes()
    child_digest = Digest.of(child)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_LIST,
            "manifests": [
                {"mediaType": mt.DOCKER_MANIFEST, "size": len(child), "digest": str(child_digest)}
            ],
        }
    ).encode()
    fake.route("GET", "/v2/a/b/manifests/t", manifest_answer(index, mt.DOCKER_LIST))
    fake.route("GET", f"/v2/a/b/manifests/{child_digest}", manifest_answer(child))
    # in place, what points at the old digest is read first (the fake has no referrers API)
    fake.route("GET", "/v2/a/b/tags/list", Answer(200, b'{"name":"a/b","tags":["t"]}'))
    denied = (
        b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'
    )
    fake.route("PUT", "/v2/a/b/manifests/*", Answer(403, denied))
    with pytest.raises(DeniedError, match="DENIED"):
        api.convert(f"{fake.host}/a/b:t")
    puts = fake.requests("PUT")
    assert len(puts) == 1 and "/manifests/sha256:" in puts[0].path  # the child; never the tag


def test_registry_error_codes_become_typed_errors(fake: FakeRegistry) -> None:
    fake.route(
        "GET",
        "/v2/a/b/manifests/t",
        Answer(
            404,
            b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}',
        ),
    )
    with pytest.raises(NotFoundError, match="repository not found"):
        client(fake).get_manifest("a/b", "t")
    huge = b'{"errors":[{"code":"X","message":"' + b"m" * 200_000 + b'"}]}'
    fake.route("GET", "/v2/a/b/manifests/u", Answer(500, huge))
    with pytest.raises(RegistryError) as info:
        client(fake).get_manifest("a/b", "u")
    assert len(str(info.value)) < 500  # the error body is read with a cap
    assert info.value.status == 500 and info.value.code is None  # cut: no code to trust


def test_basic_challenge_without_credentials_says_so(fake: FakeRegistry) -> None:
    fake.route(
        "GET", "/v2/a/b/manifests/t", Answer(401, b"", {"WWW-Authenticate": 'Basic realm="r"'})
    )
    with pytest.raises(UnauthorizedError, match="requires credentials"):
        client(fake).get_manifest("a/b", "t")


def test_bearer_token_is_fetched_once_per_scope_and_never_shown(fake: FakeRegistry) -> None:
    data = manifest_bytes()
    secret = "tok-very-secret-123"
    challenge = (
        f'Bearer realm="http://{fake.host}/token",service="fake",scope="repository:a/b:pull"'
    )
    fake.route(
        "GET",
        "/v2/a/b/manifests/t",
        Answer(401, b"", {"WWW-Authenticate": challenge}),
        manifest_answer(data),
    )
    fake.route(
        "GET", "/token", Answer(200, json.dumps({"token": secret, "expires_in": 300}).encode())
    )
    reg = Registry(
        Reference.parse(f"{fake.host}/a/b:t"), credential=Credential("u", "pw", source="test")
    )
    assert reg.get_manifest("a/b", "t").data == data
    assert reg.get_manifest("a/b", "t").data == data
    tokens = [s for s in fake.seen if s.path.startswith("/token")]
    assert len(tokens) == 1
    assert "scope=repository%3Aa%2Fb%3Apull" in tokens[0].path and "service=fake" in tokens[0].path
    manifests = [s for s in fake.seen if "/manifests/" in s.path]
    assert [s.headers.get("Authorization") for s in manifests] == [
        None,
        f"Bearer {secret}",
        f"Bearer {secret}",
    ]
    assert secret not in repr(reg.auth.credential) and "pw" not in repr(reg.auth.credential)


def test_token_refusal_names_the_source_not_the_secret(fake: FakeRegistry) -> None:
    challenge = f'Bearer realm="http://{fake.host}/token",service="fake"'
    fake.route("GET", "/v2/a/b/manifests/t", Answer(401, b"", {"WWW-Authenticate": challenge}))
    fake.route("GET", "/token", Answer(401, b"{}"))
    reg = Registry(
        Reference.parse(f"{fake.host}/a/b:t"),
        credential=Credential("user", "hunter2", source="--username"),
    )
    with pytest.raises(UnauthorizedError) as info:
        reg.get_manifest("a/b", "t")
    assert "--username" in str(info.value) and "hunter2" not in str(info.value)


def test_jws_payload_strips_schema1_signatures() -> None:
    import base64

    payload = b'{\n   "schemaVersion": 1,\n   "name": "a/b"\n}'
    length = len(payload) - 2  # everything before the closing "\n}"
    protected = (
        base64.urlsafe_b64encode(
            json.dumps(
                {
                    "formatLength": length,
                    "formatTail": base64.urlsafe_b64encode(b"\n}").decode().rstrip("="),
                }
            ).encode()
        )
        .decode()
        .rstrip("=")
    )
    signed = (
        payload[:length] + b',\n   "signatures": [{"protected": "' + protected.encode() + b'"}]\n}'
    )
    assert jws_payload(signed) == payload
    assert jws_payload(b"not json") == b"not json"


def test_requests_carry_our_user_agent_and_a_cookie_the_registry_set(fake: FakeRegistry) -> None:
    """Requests are prepared by the transport itself (not Session.request): the session's
    headers and its cookie jar still travel, as a load balancer's sticky cookie needs."""
    data = manifest_bytes()
    fake.route(
        "GET",
        "/v2/a/b/manifests/t",
        manifest_answer(data, **{"Set-Cookie": "lb=node-2; Path=/"}),
    )
    reg = client(fake)
    assert reg.get_manifest("a/b", "t").data == data
    assert reg.get_manifest("a/b", "t").data == data
    first, second = fake.requests("GET")
    assert first.headers.get("User-Agent", "").startswith("oci-normalize/")
    assert "Cookie" not in first.headers
    assert second.headers.get("Cookie") == "lb=node-2"


def test_a_header_value_with_a_line_break_is_refused_before_sending(fake: FakeRegistry) -> None:
    reg = client(fake)
    with pytest.raises(TransportError, match="invalid Accept header"):
        reg.request("GET", "a/b/manifests/t", scopes=(), headers={"Accept": "x\r\nX-Injected: 1"})
    assert fake.seen == []


def test_a_list_request_sends_its_query_parameters(fake: FakeRegistry) -> None:
    fake.route(
        "GET",
        "/v2/a/b/tags/list",
        Answer(200, json.dumps({"name": "a/b", "tags": ["t"]}).encode()),
    )
    assert client(fake).list_tags("a/b", page_size=7) == ["t"]
    (seen,) = fake.requests("GET")
    assert seen.path == "/v2/a/b/tags/list?n=7"


def test_a_registry_cookie_goes_back_to_it_and_never_to_a_redirect_target(
    fake: FakeRegistry,
) -> None:
    """A manifest redirected to another host (object storage): the cookie the registry set on
    the redirect returns to the registry on the next request, never to the other host."""
    data = manifest_bytes()
    with fake_registry() as storage:
        elsewhere = storage.host.replace("127.0.0.1", "localhost")  # another host name
        storage.route("GET", "/m/t", manifest_answer(data))
        fake.route(
            "GET",
            "/v2/a/b/manifests/t",
            Answer(307, b"", {"Location": f"http://{elsewhere}/m/t", "Set-Cookie": "sid=s3"}),
        )
        reg = client(fake)
        assert reg.get_manifest("a/b", "t").data == data
        assert reg.get_manifest("a/b", "t").data == data
        first, second = fake.requests("GET")
        assert "Cookie" not in first.headers and second.headers.get("Cookie") == "sid=s3"
        assert len(storage.seen) == 2
        assert all("Cookie" not in s.headers for s in storage.seen)
