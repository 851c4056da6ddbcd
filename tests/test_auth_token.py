"""Token auth against the real registry: scopes per operation, refusals, identity tokens, expiry.

The registry runs with ``auth.token`` trusting :mod:`tests.support.tokenserver`, which lets alice push
only under ``alice/`` and bob only under ``bob/``, and anonymous callers pull only ``public/``.
Images are seeded through a second, open registry process on the same storage directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from oci_normalize import api
from oci_normalize.errors import DeniedError, UnauthorizedError
from oci_normalize.http.auth import ANONYMOUS, Credential
from oci_normalize.options import ClientOptions
from oci_normalize.reference import Reference
from tests.support import secretguard, seed
from tests.support.clock import FakeClock
from tests.support.registry import RunningRegistry, registry_factory_at
from tests.support.tokenserver import TokenServer

pytestmark = pytest.mark.registry

ALICE_PW = "alice-token-pw-1234"
BOB_PW = "bob-token-pw-5678"
ALICE_REFRESH = "alice-refresh-token-abcdef"
secretguard.register_basic("alice", ALICE_PW)
secretguard.register_basic("bob", BOB_PW)
secretguard.register(ALICE_REFRESH)

ALICE = Credential(username="alice", password=ALICE_PW, source="test:alice")
ALICE_ID = Credential(identity_token=ALICE_REFRESH, source="test:alice-identity")


@dataclass
class Setup:
    tokens: TokenServer
    open: RunningRegistry  # no auth, same storage: for seeding and for checking
    secured: RunningRegistry  # token auth

    def ref(self, repo_tag: str) -> str:
        return f"{self.secured.host}/{repo_tag}"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("token-auth")
    with (
        TokenServer(
            base / "tokens",
            users={"alice": ALICE_PW, "bob": BOB_PW},
            refresh_tokens={ALICE_REFRESH: "alice"},
            push_prefixes={"alice": ("alice/",), "bob": ("bob/",)},
        ) as tokens,
        registry_factory_at(base / "registries") as factory,
    ):
        open_reg = factory()
        secured = factory(
            extra_config={
                **tokens.registry_config(),
                "storage": {"filesystem": {"rootdirectory": str(open_reg.storage_dir)}},
            }
        )
        layout = seed.build_layout(base, layers=2, seed="token")
        for repo in ("bob/src:v1", "public/base:v1", "alice/inplace:v1", "bob/inplace:v1"):
            seed.push_docker_v2s2(layout, f"{open_reg.host}/{repo}")
        yield Setup(tokens, open_reg, secured)


def client(cred: Credential) -> api.Client:
    return api.Client(credentials=lambda _registry: cred)


def token_scopes(tokens: TokenServer, since: int) -> list[tuple[str, ...]]:
    return [g.scopes for g in tokens.grants[since:]]


def test_read_one_repository_push_another_with_a_cross_repo_mount(setup: Setup) -> None:
    mark = len(setup.tokens.grants)
    c = client(ALICE)
    result = api.convert(setup.ref("bob/src:v1"), setup.ref("alice/copy:v1"), client=c)
    assert result.status == "converted"
    assert result.mounted_blobs == 3 and result.pushed_blobs == 0  # config + 2 layers
    scopes = token_scopes(setup.tokens, mark)
    assert ("repository:bob/src:pull",) in scopes  # reading
    assert ("repository:alice/copy:pull,push",) in scopes  # writing
    # the mount asks for both, each as its own scope parameter
    assert ("repository:alice/copy:pull,push", "repository:bob/src:pull") in scopes
    assert seed.head_manifest(setup.open.url, "alice/copy", "v1") == result.new_digest


def test_push_to_a_repository_without_push_access_is_denied_and_changes_nothing(
    setup: Setup,
) -> None:
    before = seed.head_manifest(setup.open.url, "bob/inplace", "v1")
    with pytest.raises(DeniedError) as info:
        api.convert(setup.ref("bob/inplace:v1"), client=client(ALICE))
    message = str(info.value)
    assert "denied" in message and "test:alice" in message and "bob/inplace" in message
    print(message)
    assert seed.head_manifest(setup.open.url, "bob/inplace", "v1") == before


def test_wrong_password_is_refused_by_the_token_service(setup: Setup) -> None:
    wrong = Credential(username="alice", password="not-" + ALICE_PW, source="test:wrong")
    with pytest.raises(
        UnauthorizedError, match="token service refused credentials from test:wrong"
    ):
        api.check(setup.ref("public/base:v1"), client=client(wrong))


def test_anonymous_pulls_public_and_is_refused_elsewhere(setup: Setup) -> None:
    assert not api.check(setup.ref("public/base:v1"), client=client(ANONYMOUS)).oci
    with pytest.raises(UnauthorizedError, match="none were found"):
        api.check(setup.ref("bob/src:v1"), client=client(ANONYMOUS))


def test_identity_token_uses_the_refresh_token_grant(setup: Setup) -> None:
    mark = len(setup.tokens.grants)
    result = api.convert(setup.ref("alice/inplace:v1"), client=client(ALICE_ID))
    assert result.status == "converted"
    grants = setup.tokens.grants[mark:]
    assert grants and {(g.method, g.user) for g in grants} == {("POST", "alice")}


def test_tokens_are_cached_per_scope_set(setup: Setup) -> None:
    c = client(ALICE)
    mark = len(setup.tokens.grants)
    for _ in range(3):
        api.check(setup.ref("public/base:v1"), client=c)
    assert len(setup.tokens.grants) - mark == 1


def test_token_renewed_after_expires_in_without_a_401(setup: Setup) -> None:
    # The client counts token lifetimes on its injected clock: advancing it past expires_in
    # (1 s, less the half-lifetime margin) ages the token without any real wait.
    setup.tokens.expires_in = 1
    clock = FakeClock()
    try:
        c = api.Client(options=ClientOptions(clock=clock), credentials=lambda _registry: ALICE)
        reg = c.registry(Reference.parse(setup.ref("public/base:v1")))
        granted = len(setup.tokens.grants)
        assert reg.head_manifest("public/base", "v1") is not None
        assert len(setup.tokens.grants) - granted == 1
        mark = setup.secured.log_mark()
        assert reg.head_manifest("public/base", "v1") is not None  # still fresh: cached
        assert len(setup.tokens.grants) - granted == 1
        clock.advance(1.1)
        assert reg.head_manifest("public/base", "v1") is not None
        statuses = [e.status for e in setup.secured.access_log_lines(since=mark)]
        assert len(setup.tokens.grants) - granted == 2  # renewed before sending
        assert 401 not in statuses
        assert clock.slept == []
    finally:
        setup.tokens.expires_in = None


def test_token_refused_as_expired_is_fetched_again_once(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The client renews its aged token before sending (its clock says so); the token service
    # hands out one token already past exp (and the registry's 60 s leeway), then good ones
    # again: the registry refuses the renewed token, and the client fetches one more, once.
    clock = FakeClock()
    setup.tokens.expires_in = 300
    issue = setup.tokens.issue

    def issue_one_dead(user: str | None, scopes: list[str], method: str = "GET") -> str:
        token = issue(user, scopes, method)
        setup.tokens.exp_offset_s = 0  # only the first one after the switch is dead
        return token

    try:
        c = api.Client(options=ClientOptions(clock=clock), credentials=lambda _registry: ALICE)
        reg = c.registry(Reference.parse(setup.ref("public/base:v1")))
        granted = len(setup.tokens.grants)
        assert reg.head_manifest("public/base", "v1") is not None
        setup.tokens.exp_offset_s = -setup.tokens.lifetime_s - 120
        monkeypatch.setattr(setup.tokens, "issue", issue_one_dead)
        clock.advance(301)  # the cached token aged on our side
        mark = setup.secured.log_mark()
        assert reg.head_manifest("public/base", "v1") is not None
        entries = setup.secured.access_log_lines(since=mark)
        assert [e.status for e in entries] == [401, 200]  # refused, renewed, retried once
        assert len(setup.tokens.grants) - granted == 3  # first, the dead one, its successor
    finally:
        setup.tokens.exp_offset_s = 0
        setup.tokens.expires_in = None


def test_token_service_never_sees_a_password_in_a_url(setup: Setup) -> None:
    # Run on its own, this test must still have something to look at: ask for tokens with a
    # password and with an identity token, then read what the token service was sent.
    mark = len(setup.tokens.paths)
    api.check(setup.ref("alice/inplace:v1"), client=client(ALICE))
    api.check(setup.ref("public/base:v1"), client=client(ALICE_ID))
    paths = setup.tokens.paths[mark:]
    assert len(paths) >= 2
    for path in paths:
        secretguard.assert_clean(path, "a token service URL")
    for entry in setup.secured.access_log_lines():
        secretguard.assert_clean(entry.uri, "a registry URL")
    secretguard.assert_clean(setup.secured.log_text(), "the registry log")
