"""Secrets this process holds, so that text a registry echoes back never shows one.

A registry's error message is outside text: a careless or hostile registry can echo the
``Authorization`` header it received, or the password inside it. Every credential and token the
client uses is remembered here (in the forms it travels in), and :func:`redact` replaces each with
``***`` before a registry's text reaches a message. :func:`safe_url` makes a request's URL fit to
show the same way.
"""

from __future__ import annotations

import base64
import threading
from typing import Final
from urllib.parse import urlsplit, urlunsplit

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


#: Query parameters whose values are kept in a shown URL: pagination and blob names, no secrets.
SHOWN_QUERY: Final = frozenset({"n", "last", "digest", "mount", "from"})


def safe_url(url: str) -> str:
    """``url`` fit for a message or an error field: no userinfo, and every query value masked
    except the harmless :data:`SHOWN_QUERY` ones (an upload's ``_state``, an object store's
    signature), then :func:`redact`-ed."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(
        f"{key}={value if key in SHOWN_QUERY else MASK}" if sep else key
        for key, sep, value in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, "")))
