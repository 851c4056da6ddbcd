"""The network side of the trust boundary, unit by unit (the CLI view is test_hostile_registry).

Bytes verified are bytes used (signed schema1 payloads, descriptor sizes), each digest fetched
once, registry names parsed like user input, registry text made printable.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from oci_normalize.convert.tree import build_tree, fetch_tree
from oci_normalize.digest import Digest
from oci_normalize.errors import (
    DigestMismatchError,
    InvalidReferenceError,
    MalformedManifestError,
)
from oci_normalize.manifest import VerifiedManifest, parse_body, signed_payload, verify_manifest
from oci_normalize.reference import Reference, parse_repository, parse_tag, shown
from tests.support.hostile_registry import (
    OCI_INDEX,
    SCHEMA1_SIGNED,
    Content,
    _index,
    _schema1_appended,
    image,
    signed_schema1,
)

SCHEMA1 = {
    "schemaVersion": 1,
    "name": "a/b",
    "tag": "v1",
    "architecture": "amd64",
    "fsLayers": [{"blobSum": "sha256:" + "a" * 64}],
    "history": [{"v1Compatibility": '{"id":"' + "b" * 64 + '"}'}],
}


def test_signed_schema1_is_verified_and_used_as_its_payload() -> None:
    body, payload = signed_schema1(SCHEMA1)
    digest, content = verify_manifest(body, SCHEMA1_SIGNED, Digest.of(payload), None, "m")
    assert content == payload and digest == Digest.of(payload)
    assert "signatures" not in parse_body(content, "m")


def test_bytes_after_the_signature_block_are_refused() -> None:
    body, _ = _schema1_appended()
    with pytest.raises(MalformedManifestError, match="signature block"):
        signed_payload(body, "m")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.replace(b'"signatures": [', b'"signatures": [], "x": ['),
        lambda b: b[:-1] + b', "evil": "arm64"}',
        lambda b: b.replace(b'"signatures": [\n      ', b'"signatures": [\n      1,'),
    ],
)
def test_any_extra_member_after_the_payload_is_refused(mutate: Any) -> None:
    body, _ = signed_schema1(SCHEMA1)
    with pytest.raises(MalformedManifestError):
        signed_payload(mutate(body), "m")


def test_unsigned_bodies_are_verified_whole_even_with_a_schema1_type() -> None:
    body = json.dumps(SCHEMA1).encode()
    assert signed_payload(body, "m") is None
    digest, content = verify_manifest(body, SCHEMA1_SIGNED, None, None, "m")
    assert content == body and digest == Digest.of(body)
    with pytest.raises(DigestMismatchError):
        verify_manifest(body + b" ", SCHEMA1_SIGNED, Digest.of(body), None, "m")


def test_a_schema1_content_type_on_another_body_does_not_pick_the_payload_route() -> None:
    # An OCI manifest with a "signatures" member is hashed whole: only schema1 bodies are JWS.
    body = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
    digest, content = verify_manifest(
        body, "application/vnd.oci.image.manifest.v1+json", None, None, "m"
    )
    assert content == body and digest == Digest.of(body)


class CountingStore:
    """A Store over :class:`Content` that counts GETs and threads in use."""

    name = "hostile.test"
    requests = 0

    def __init__(self, content: Content) -> None:
        self.content = content
        self.gets: list[str] = []
        self.lock = threading.Lock()
        self.threads: set[int] = set()

    def get_manifest(
        self, repository: str, ref: str, *, expected: Digest | None = None, what: str = ""
    ) -> VerifiedManifest:
        with self.lock:
            self.gets.append(ref)
            self.threads.add(threading.get_ident())
        key = self.content.root if ref == "v1" else ref
        data, mtype = self.content.manifests[key]
        return VerifiedManifest(data=data, media_type=mtype, digest=Digest.parse(key))


def test_a_wide_deep_index_is_fetched_once_per_digest_on_few_threads() -> None:
    from tests.support.hostile_registry import build

    content = build("fanout")
    store = CountingStore(content)
    tree = fetch_tree(store, Reference.parse("hostile.test/app:v1"))  # type: ignore[arg-type]
    assert len(store.gets) == len(set(store.gets)) == 43
    assert len(store.threads) <= 5  # the caller and a pool of 4
    assert len(tree.walk()) == 43


def test_the_tree_has_a_global_bound_on_manifests(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.hostile_registry import build

    monkeypatch.setenv("OCI_NORMALIZE_MAX_TREE_MANIFESTS", "20")
    store = CountingStore(build("fanout"))
    with pytest.raises(MalformedManifestError, match="more than 20 manifests"):
        fetch_tree(store, Reference.parse("hostile.test/app:v1"))  # type: ignore[arg-type]
    assert len(store.gets) <= 20


@pytest.mark.parametrize("said", [1, 10_000])
def test_a_child_whose_size_differs_from_its_descriptor_is_refused(said: int) -> None:
    content = Content()
    child, mtype = image(content)
    content.add_manifest(child, mtype)
    index = json.loads(_index([(child, mtype), (child, mtype)]))
    index["manifests"][1]["size"] = said  # the second naming lies; the first is right
    data = json.dumps(index).encode()
    content.root = content.add_manifest(data, OCI_INDEX)
    store = CountingStore(content)
    root = VerifiedManifest(data=data, media_type=OCI_INDEX, digest=Digest.of(data))
    with pytest.raises(DigestMismatchError, match=f"descriptor says {said}"):
        build_tree(store, Reference.parse("hostile.test/app:v1"), root)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        "a/../../../v2/x",
        "//127.0.0.1:5000/x",
        "ok\x1bname",
        "bad\nname",
        "",
        "A/b",
        "a//b",
        "x" * 256,
    ],
)
def test_registry_names_parse_like_user_input(name: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        parse_repository(name)
    assert "\x1b" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("tag", ["../x", "t\x1b[31m", "t\nX", "", "a" * 129, "-t", ".t"])
def test_registry_tags_parse_like_user_input(tag: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_tag(tag)


def test_good_names_pass_unchanged() -> None:
    assert parse_repository("team/app-1/x_y.z") == "team/app-1/x_y.z"
    assert parse_tag("v1.2_3-rc") == "v1.2_3-rc"


@pytest.mark.parametrize(
    "text",
    [
        "user:pw-s3cret@host.example/app",
        "user:pw-s3cret@host.example/app@sha256:zz",
        "pw-s3cret@h.io/a",
    ],
)
def test_a_password_in_a_reference_is_never_echoed(text: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        Reference.parse(text)
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in shown(text)


def test_port_out_of_range_is_a_reference_error() -> None:
    for text in ("127.0.0.1:99999/app", "host.example:0/app", "host.example:65536/a"):
        with pytest.raises(InvalidReferenceError, match="bad registry host"):
            Reference.parse(text)
    assert Reference.parse("host.example:65535/a").registry == "host.example:65535"


def test_markdown_cells_escape_html() -> None:
    from oci_normalize.batch.report import _md_table

    (head, rule, row, _) = _md_table(["a", "b"], [["<script>x</script>", "p|q\n\x1b[31m"]])
    assert "<script>" not in row and "&lt;script&gt;" in row
    assert "p\\|q" in row and "\x1b" not in row and "\n" not in row


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", 12),
        (" 7 ", 7),
        ("²", None),
        ("1" * 19, None),
        ("1" * 5000, None),
        ("-1", None),
        ("", None),
    ],
)
def test_numbers_from_outside_are_ascii_and_short(text: str, value: int | None) -> None:
    from oci_normalize.http.retry import parse_retry_after
    from oci_normalize.limits import parse_count

    assert parse_count(text) == value
    assert parse_retry_after(text) == (None if value is None else float(value))


def test_a_junk_environment_value_keeps_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from oci_normalize import limits

    for junk in ("", "0", "-5", "²", "lots", "9" * 40):
        monkeypatch.setenv(limits.ENV_MAX_TREE_MANIFESTS, junk)
        assert limits.max_tree_manifests() == limits.MAX_TREE_MANIFESTS
    monkeypatch.setenv(limits.ENV_MAX_TREE_MANIFESTS, "5000")
    assert limits.max_tree_manifests() == 5000


@pytest.mark.parametrize(
    "raw",
    [
        b'{"token": "t", "expires_in": 1' + b"0" * 400 + b"}",
        b'{"token": "t", "expires_in": 1e999}',
        b'{"token": "t", "expires_in": NaN}',
        b'{"token": "t", "expires_in": true}',
    ],
)
def test_odd_token_lifetimes_are_bounded(raw: bytes) -> None:
    from oci_normalize.http.requestline import RequestLine
    from oci_normalize.http.token import MAX_TOKEN_LIFETIME_S, token_from

    token = token_from(raw, request=RequestLine.of("GET", "https://auth.example/t"), now=50.0)
    assert 50.0 < token.expires_at <= 50.0 + MAX_TOKEN_LIFETIME_S
    assert token.fresh(token.expires_at - 1) and not token.fresh(token.expires_at)


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"token": "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87"}',
        b'{"token": "abc\\r\\nX-Injected: 1"}',
        b'{"token": ""}',
        b'{"access_token": 5}',
        b"not json",
        b'["token"]',
    ],
)
def test_malformed_token_answers_are_failed_authentication(raw: bytes) -> None:
    from oci_normalize.errors import UnauthorizedError
    from oci_normalize.http.requestline import RequestLine
    from oci_normalize.http.token import token_from

    asked = RequestLine.of("GET", "https://auth.example/token?scope=repository:a:pull")
    with pytest.raises(UnauthorizedError, match="authentication failed") as info:
        token_from(raw, request=asked, now=0.0)
    assert str(info.value).startswith("GET auth.example/token: ")
    assert (info.value.method, info.value.url) == ("GET", "https://auth.example/token?scope=***")


def test_secrets_a_registry_echoes_are_masked() -> None:
    import base64

    from oci_normalize.http import secrets

    secrets.remember_basic("someone", "pa55-unit-secret")
    secrets.remember("tok-unit-secret-123", None, "short")
    b64 = base64.b64encode(b"someone:pa55-unit-secret").decode()
    text = f"got Basic {b64} = someone:pa55-unit-secret, Bearer tok-unit-secret-123, short"
    shown = secrets.redact(text)
    assert "pa55-unit-secret" not in shown and b64 not in shown
    assert "tok-unit-secret-123" not in shown and "short" in shown


def test_a_non_http_upload_location_is_refused_before_any_byte_goes() -> None:
    from oci_normalize.errors import RegistryError
    from oci_normalize.store.registry import Registry
    from tests.support.fake_registry import Answer, fake_registry

    with fake_registry() as fake:
        fake.route(
            "POST", "/v2/a/b/blobs/uploads/", Answer(202, b"", {"Location": "file:///etc/x"})
        )
        reg = Registry(Reference.parse(f"{fake.host}/a/b:t"))
        digest = Digest.of(b"blob")
        with pytest.raises(RegistryError, match="non-HTTP upload location"):
            reg.upload_blob("a/b", digest, 4, [b"blob"])
        assert [s.method for s in fake.seen] == ["POST"]


def test_a_lying_size_on_an_already_fetched_child_is_refused_too() -> None:
    # root → [A, C]; A → [C] with a wrong size: C is fetched once, before A names it.
    content = Content()
    leaf, mtype = image(content)
    content.add_manifest(leaf, mtype)
    inner = json.loads(_index([(leaf, mtype)], "A"))
    inner["manifests"][0]["size"] = len(leaf) + 7
    inner_data = json.dumps(inner).encode()
    content.add_manifest(inner_data, OCI_INDEX)
    root = _index([(inner_data, OCI_INDEX), (leaf, mtype)], "root")
    content.root = content.add_manifest(root, OCI_INDEX)
    store = CountingStore(content)
    with pytest.raises(DigestMismatchError, match=f"descriptor says {len(leaf) + 7}"):
        fetch_tree(store, Reference.parse("hostile.test/app:v1"))  # type: ignore[arg-type]
    assert len(store.gets) == 3  # root, A, C: each once
