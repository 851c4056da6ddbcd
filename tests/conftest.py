"""Shared fixtures: real registry processes, and the skip-or-fail rule for registry tests.

A test is a registry test when it carries ``@pytest.mark.registry`` or uses one of the registry
fixtures (the marker is then added for it). Registry tests skip when docker-registry, skopeo or
umoci is missing, except under ``CI=true``, where they fail: CI never skips them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.registry import (
    RegistryFactory,
    RunningRegistry,
    registry_factory_at,
    require_tools,
)

pytest_plugins = [
    "tests.support.secretguard"
]  # fails any test whose captured output leaks a secret

REGISTRY_FIXTURES = frozenset({"registry", "schema1_registry", "registry_factory"})


@pytest.hookimpl(tryfirst=True)  # before -m selects on markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if REGISTRY_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.registry)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("registry") is not None:
        require_tools()


@pytest.fixture(scope="session")
def _session_registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryFactory]:
    with registry_factory_at(tmp_path_factory.mktemp("session-registries")) as factory:
        yield factory


@pytest.fixture(scope="session")
def registry(_session_registries: RegistryFactory) -> RunningRegistry:
    """One plain registry (no auth, delete enabled) shared by the whole session."""
    return _session_registries()


@pytest.fixture(scope="session")
def schema1_registry(_session_registries: RegistryFactory) -> RunningRegistry:
    """A session-wide registry with ``compatibility.schema1.enabled``."""
    return _session_registries(schema1=True)


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[RegistryFactory]:
    """``start(*, schema1=False, htpasswd=None, extra_config=None) -> RunningRegistry``;
    every registry it started is stopped when the test ends."""
    with registry_factory_at(tmp_path / "registries") as factory:
        yield factory
