"""Secrets this process holds, so that text a registry echoes back never shows one.

A registry's error message is outside text: a careless or hostile registry can echo the
``Authorization`` header it received, or the password inside it. Every credential and token the
client uses is remembered here (in the forms it travels in), and :func:`redact` replaces each with
``***`` before a registry's text reaches a message.
"""

from __future__ import annotations

import base64
import threading
from typing import Final

#: Shorter strings are not remembered: they would match ordinary text by chance.
MIN_SECRET_CHARS: Final = 6
MASK: Final = "***"

_lock = threading.Lock()
_secrets: set[str] = set()


def remember(*values: str | None) -> None:
    """Remember secrets (passwords, identity tokens, bearer tokens)."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= MIN_SECRET_CHARS)


def remember_basic(username: str | None, password: str | None) -> None:
    """Remember a password and the Basic header value it travels in."""
    if password is None:
        return
    pair = f"{username or ''}:{password}".encode()
    remember(password, base64.b64encode(pair).decode("ascii"))


def redact(text: str) -> str:
    """``text`` with every remembered secret replaced by :data:`MASK`, longest first."""
    with _lock:
        found = [s for s in _secrets if s in text]
    for secret in sorted(found, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
