"""Credential resolution: order of sources, Docker config forms, helpers, containers auth files."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from pathlib import Path

import pytest

from oci_normalize.errors import CredentialError
from oci_normalize.http.auth import Credential
from oci_normalize.http.credentials import lookup, resolve
from tests.support import secretguard

HOST = "registry.example:5000"
PASSWORDS = {
    "flag": "flag-pw-1111",
    "env": "env-pw-2222",
    "auths": "auths-pw-3333",
    "hub": "hub-pw-4444",
    "helper": "helper-pw-5555",
    "store": "store-pw-6666",
    "containers": "containers-pw-7777",
    "xdg": "xdg-pw-8888",
    "identity": "identity-token-9999",
    "helper-token": "helper-identity-0000",
}
secretguard.register(*PASSWORDS.values())


def b64(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME, no DOCKER_CONFIG/REGISTRY_AUTH_FILE/XDG_RUNTIME_DIR, helpers on PATH."""
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for var in (
        "DOCKER_CONFIG",
        "REGISTRY_AUTH_FILE",
        "XDG_RUNTIME_DIR",
        "OCI_NORMALIZE_USERNAME",
        "OCI_NORMALIZE_PASSWORD",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return home


def helper(
    home: Path, name: str, entries: dict[str, tuple[str, str]], *, fail: bool = False
) -> None:
    """A fake ``docker-credential-NAME`` answering ``get`` for the given server URLs."""
    script = home.parent / "bin" / f"docker-credential-{name}"
    table = json.dumps(
        {k: {"ServerURL": k, "Username": u, "Secret": s} for k, (u, s) in entries.items()}
    )
    body = (
        "echo 'the keychain is locked' >&2; exit 3"
        if fail
        else f"""python3 -c '
import json, sys
table = json.loads(sys.argv[1])
server = sys.stdin.read().strip()
if server in table:
    print(json.dumps(table[server]))
else:
    print("credentials not found in native keychain")
    sys.exit(1)
' '{table}'"""
    )
    script.write_text(f'#!/bin/sh\n[ "$1" = get ] || exit 2\n{body}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def docker_config(home: Path, doc: dict[str, object], *, where: Path | None = None) -> Path:
    path = (where or home / ".docker") / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def auth_file(path: Path, auths: dict[str, dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": auths}))
    return path


def basic(cred: Credential) -> tuple[str | None, str | None]:
    return cred.username, cred.password


def test_order_flag_env_docker_containers_anonymous(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker_config(home, {"auths": {HOST: {"auth": b64("d", PASSWORDS["auths"])}}})
    auth_file(
        home / ".config/containers/auth.json", {HOST: {"auth": b64("c", PASSWORDS["containers"])}}
    )
    env = dict(os.environ, OCI_NORMALIZE_USERNAME="e", OCI_NORMALIZE_PASSWORD=PASSWORDS["env"])

    flag = resolve(HOST, username="f", password=PASSWORDS["flag"], environ=env)
    assert (basic(flag), flag.source) == (("f", PASSWORDS["flag"]), "--username")
    from_env = resolve(HOST, environ=env)
    assert (basic(from_env), from_env.source) == (
        ("e", PASSWORDS["env"]),
        "$OCI_NORMALIZE_USERNAME",
    )
    from_docker = resolve(HOST, environ=dict(os.environ))
    assert basic(from_docker) == ("d", PASSWORDS["auths"])
    assert from_docker.source == str(home / ".docker/config.json")
    (home / ".docker/config.json").unlink()
    from_containers = resolve(HOST, environ=dict(os.environ))
    assert basic(from_containers) == ("c", PASSWORDS["containers"])
    (home / ".config/containers/auth.json").unlink()
    nobody = resolve(HOST, environ=dict(os.environ))
    assert (nobody.source, nobody.has_basic, nobody.identity_token) == ("none", False, None)
    assert nobody.tried == (
        "--username",
        "$OCI_NORMALIZE_USERNAME",
        str(home / ".docker/config.json"),
        str(home / ".config/containers/auth.json"),
    )


@pytest.mark.parametrize(
    ("doc", "registry", "expected"),
    [
        ({"auths": {HOST: {"auth": b64("u", "auths-pw-3333")}}}, HOST, ("u", "auths-pw-3333")),
        (  # legacy URL-shaped key
            {"auths": {f"https://{HOST}/v1/": {"auth": b64("u", "auths-pw-3333")}}},
            HOST,
            ("u", "auths-pw-3333"),
        ),
        (  # Docker Hub's key
            {"auths": {"https://index.docker.io/v1/": {"auth": b64("hub", "hub-pw-4444")}}},
            "docker.io",
            ("hub", "hub-pw-4444"),
        ),
        ({"auths": {"other.example": {"auth": b64("o", "x" * 8)}}}, HOST, None),
        ({"auths": {HOST: {}}}, HOST, None),  # empty entry: nothing to use
        (  # a malformed entry elsewhere does not break this one
            {
                "auths": {
                    "bad.example": {"auth": "%%%not-base64"},
                    HOST: {"auth": b64("u", "auths-pw-3333")},
                }
            },
            HOST,
            ("u", "auths-pw-3333"),
        ),
        ({"auths": {HOST: {"auth": "bm9jb2xvbg=="}}}, HOST, None),  # "nocolon": skipped
    ],
)
def test_docker_config_auths(
    home: Path, doc: dict[str, object], registry: str, expected: tuple[str, str] | None
) -> None:
    docker_config(home, doc)
    cred = resolve(registry)
    assert (basic(cred) if cred.source != "none" else None) == expected


def test_docker_config_identity_token(home: Path) -> None:
    docker_config(
        home, {"auths": {HOST: {"auth": b64("u", "p" * 8), "identitytoken": PASSWORDS["identity"]}}}
    )
    cred = resolve(HOST)
    assert cred.identity_token == PASSWORDS["identity"]
    assert not cred.has_basic


def test_docker_config_env_var_wins_over_home(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker_config(home, {"auths": {HOST: {"auth": b64("home", "auths-pw-3333")}}})
    elsewhere = docker_config(
        home, {"auths": {HOST: {"auth": b64("dc", "auths-pw-3333")}}}, where=tmp_path / "dc"
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(elsewhere.parent))
    cred = resolve(HOST)
    assert (cred.username, cred.source) == ("dc", str(elsewhere))


def test_cred_helper_for_the_host(home: Path) -> None:
    helper(home, "fake", {HOST: ("hu", PASSWORDS["helper"])})
    docker_config(
        home,
        {"credHelpers": {HOST: "fake"}, "auths": {HOST: {"auth": b64("u", PASSWORDS["auths"])}}},
    )
    cred = resolve(HOST)
    assert basic(cred) == ("hu", PASSWORDS["helper"])
    assert cred.source.startswith("docker-credential-fake (via ")


def test_creds_store_uses_hub_url_key_and_token_username(home: Path) -> None:
    helper(
        home,
        "store",
        {
            "https://index.docker.io/v1/": ("<token>", PASSWORDS["helper-token"]),
            HOST: ("su", PASSWORDS["store"]),
        },
    )
    docker_config(home, {"credsStore": "store"})
    hub = resolve("docker.io")
    assert (hub.identity_token, hub.username) == (PASSWORDS["helper-token"], None)
    assert basic(resolve(HOST)) == ("su", PASSWORDS["store"])


def test_creds_store_without_entry_falls_back_to_auths(home: Path) -> None:
    helper(home, "store", {})
    docker_config(
        home, {"credsStore": "store", "auths": {HOST: {"auth": b64("u", PASSWORDS["auths"])}}}
    )
    assert basic(resolve(HOST)) == ("u", PASSWORDS["auths"])


@pytest.mark.parametrize("broken", ["missing", "failing"])
def test_broken_helper_falls_back_to_auths_with_a_warning(
    home: Path, broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    if broken == "failing":
        helper(home, "gone", {}, fail=True)
    docker_config(
        home, {"credsStore": "gone", "auths": {HOST: {"auth": b64("u", PASSWORDS["auths"])}}}
    )
    with caplog.at_level(logging.WARNING, logger="oci_normalize"):
        cred = resolve(HOST)
    assert basic(cred) == ("u", PASSWORDS["auths"])
    assert "docker-credential-gone" in caplog.text
    secretguard.assert_clean(caplog.text, "the warning")


def test_malformed_docker_config_is_a_clear_error(home: Path) -> None:
    path = home / ".docker/config.json"
    path.parent.mkdir()
    path.write_text('{"auths": {"' + HOST + '": {"auth": "' + PASSWORDS["auths"] + '"')
    with pytest.raises(CredentialError) as info:
        resolve(HOST)
    assert str(path) in str(info.value)
    secretguard.assert_clean(str(info.value), "the error")


def test_containers_auth_files_in_order(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_file = auth_file(
        home / ".config/containers/auth.json",
        {HOST: {"auth": b64("home", PASSWORDS["containers"])}},
    )
    runtime = tmp_path / "run"
    auth_file(runtime / "containers/auth.json", {HOST: {"auth": b64("xdg", PASSWORDS["xdg"])}})
    explicit = auth_file(
        tmp_path / "explicit.json", {HOST: {"auth": b64("explicit", PASSWORDS["containers"])}}
    )
    assert resolve(HOST).source == str(user_file)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert resolve(HOST).username == "xdg"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(explicit))
    assert (resolve(HOST).username, resolve(HOST).source) == ("explicit", str(explicit))


@pytest.mark.parametrize(
    ("key", "registry", "found"),
    [
        ("docker.io", "docker.io", True),
        ("index.docker.io", "docker.io", True),
        (HOST, HOST, True),
        (f"{HOST}/team/app", HOST, False),  # repository-scoped keys are not host credentials
        ("other.example", HOST, False),
    ],
)
def test_containers_auth_keys(home: Path, key: str, registry: str, found: bool) -> None:
    auth_file(
        home / ".config/containers/auth.json", {key: {"auth": b64("c", PASSWORDS["containers"])}}
    )
    assert (resolve(registry).source != "none") is found


def test_env_username_without_password_is_an_error(home: Path) -> None:
    with pytest.raises(CredentialError, match="OCI_NORMALIZE_PASSWORD"):
        resolve(HOST, environ={"OCI_NORMALIZE_USERNAME": "u", "HOME": str(home)})


def test_lookup_resolves_once_per_registry(home: Path) -> None:
    docker_config(home, {"auths": {HOST: {"auth": b64("u", PASSWORDS["auths"])}}})
    find = lookup()
    first = find(HOST)
    (home / ".docker/config.json").unlink()
    assert find(HOST) is first
    assert find("other.example").source == "none"
