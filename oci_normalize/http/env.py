"""What requests would read from the environment on every call, read once per origin instead.

Sessions here run with ``trust_env = False``: requests otherwise re-reads the proxy variables
(and ``no_proxy``) for every request — measurable CPU per request in a batch — and would add
``~/.netrc`` credentials to requests we did not mean to authenticate. The proxies and CA bundle
the environment names are still honoured: :func:`settings` resolves them for a URL, once.
"""

from __future__ import annotations

import os
from functools import lru_cache
from urllib.parse import urlsplit

import requests

from oci_normalize.http import adapter


def new_session() -> requests.Session:
    """A session that takes nothing from the environment on its own (see the module doc).

    Its connections report to :mod:`.deadline`, so each response can be bounded as a whole.
    """
    session = requests.Session()
    session.trust_env = False
    adapter.mount(session)
    return session


def proxies_for(url: str) -> dict[str, str]:
    """The proxies ``HTTP(S)_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` give for ``url``'s origin."""
    parts = urlsplit(url)
    return dict(_proxies_for_origin(f"{parts.scheme}://{parts.netloc}/", _env_key()))


def _env_key() -> tuple[tuple[str, str], ...]:
    """The proxy variables as they are now (a change to them is a new cache key)."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.lower().endswith("_proxy")))


@lru_cache(maxsize=64)
def _proxies_for_origin(
    origin: str, _env: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    found = requests.utils.get_environ_proxies(origin)
    return tuple(sorted((k, v) for k, v in found.items() if k != "no"))


def settings(url: str, verify: bool | str) -> tuple[dict[str, str], bool | str]:
    """(proxies, verify) for ``url``: explicit TLS choices win over ``REQUESTS_CA_BUNDLE``."""
    if verify is True:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return proxies_for(url), verify
