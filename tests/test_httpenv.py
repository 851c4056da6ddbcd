from __future__ import annotations

import pytest

from oci_normalize.http import env as httpenv


def test_sessions_take_nothing_from_the_environment() -> None:
    assert httpenv.new_session().trust_env is False


def test_proxies_follow_the_environment_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    assert httpenv.proxies_for("https://reg.example/v2/") == {}
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    assert httpenv.proxies_for("https://reg.example/v2/a/manifests/b") == {
        "https": "http://proxy.example:3128"
    }
    assert httpenv.proxies_for("https://internal.example/v2/") == {}


def test_ca_bundle_from_environment_only_when_nothing_explicit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corp.pem")
    assert httpenv.settings("https://reg.example/", True)[1] == "/etc/ssl/corp.pem"
    assert httpenv.settings("https://reg.example/", "/my/ca.pem")[1] == "/my/ca.pem"
    assert httpenv.settings("https://reg.example/", False)[1] is False
