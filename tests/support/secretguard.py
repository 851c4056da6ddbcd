"""Fail any test whose captured output or log contains a registered test secret.

Test servers and tests register the passwords, identity tokens and bearer tokens they create
(and the Basic header forms of passwords); after every test phase the captured stdout, stderr
and log sections are searched for them. A leak fails the test that leaked, whatever it asserted.
Loaded from conftest.py as a plugin.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Generator
from typing import Any

import pytest

_SECRETS: set[str] = set()
_LOCK = threading.Lock()
MIN_SECRET_LEN = 6  # shorter strings would match by chance


def register(*secrets: str) -> None:
    with _LOCK:
        _SECRETS.update(s for s in secrets if len(s) >= MIN_SECRET_LEN)


def register_basic(user: str, password: str) -> None:
    register(password, base64.b64encode(f"{user}:{password}".encode()).decode())


def leaks(text: str) -> list[str]:
    """The registered secrets found in ``text``, shortened so the report does not leak them."""
    with _LOCK:
        found = [s for s in _SECRETS if s in text]
    return [f"{s[:3]}…({len(s)} chars)" for s in found]


def assert_clean(text: str, where: str) -> None:
    found = leaks(text)
    assert not found, f"secrets leaked into {where}: {found}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    leaked = [(name, leaks(text)) for name, text in report.sections if leaks(text)]
    if leaked and report.outcome != "skipped":
        report.outcome = "failed"
        report.longrepr = f"secrets leaked into captured output: {leaked}"
