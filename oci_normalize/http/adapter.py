"""The connection layer under the transport: requests' adapter, with less work per request.

requests' ``HTTPAdapter.send`` does, for every request: parse the URL to look up its
connection pool (proxy choice, TLS key), split the URL again for the request target, and build
the response with a fresh cookie extraction. A batch sends thousands of requests to the same
one or two origins, and that work was about a fifth of a request's CPU, measured. The
:class:`Adapter` keeps ``send`` itself (its error translation, its timeouts, urllib3's pool) and
overrides the three hooks requests documents for subclasses:

- :meth:`~Adapter.get_connection_with_tls_context`: a direct (no proxy, no client certificate)
  connection pool is remembered per origin and TLS setting, and looked up again once the pool
  manager lets go of it (evicted past its size, cleared);
- :meth:`~Adapter.request_url`: the target of a direct request is cut from the URL, not parsed;
- :meth:`~Adapter.build_response`: cookies are extracted only from an answer that sets some.

A request through a proxy, or with a client certificate, takes requests' own path unchanged.
Its connections report to the current :class:`~oci_normalize.http.deadline.Deadline`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Final

import requests
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from urllib3.connectionpool import ConnectionPool, HTTPConnectionPool

from oci_normalize.http.deadline import DeadlineAdapter

#: Direct pools remembered at most (origins × TLS settings); past it the memory starts over.
MAX_REMEMBERED_POOLS: Final = 64
_COOKIE_HEADERS: Final = ("Set-Cookie", "Set-Cookie2")


def split_origin(url: str) -> tuple[str, str] | None:
    """(``scheme://netloc``, ``/path?query``) of an absolute http(s) URL, without parsing it;
    None for anything else (no path, a fragment, an empty query, another scheme, characters
    that parsing would drop): requests' own path, which gives the same target for the rest."""
    if url.startswith("http://"):
        start = 7
    elif url.startswith("https://"):
        start = 8
    else:
        return None
    slash = url.find("/", start)
    if slash < 0 or "#" in url or "?" in url[start:slash] or not url.isprintable():
        return None  # urlsplit drops tabs and line breaks: leave such a URL to it
    target = url[slash:]
    if target.startswith("//") or target.endswith("?"):
        return None
    return url[:slash], target


class Adapter(DeadlineAdapter):
    """requests' adapter for http and https, with the per-request work above cut."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._pools: dict[tuple[str, bool | str], HTTPConnectionPool] = {}
        self._pools_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        # A pool the manager lets go of (evicted past its size, or cleared) is forgotten
        # here too: the next request looks its origin up again, as requests would.
        self.poolmanager.pools.dispose_func = self._forget

    def _forget(self, pool: HTTPConnectionPool) -> None:
        with self._pools_lock:
            for key in [k for k, v in self._pools.items() if v is pool]:
                del self._pools[key]

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: Any = None,
    ) -> ConnectionPool:
        parts = split_origin(request.url or "")
        if parts is None or proxies or cert is not None or verify is None:
            return super().get_connection_with_tls_context(
                request, verify, proxies=proxies, cert=cert
            )
        key = (parts[0], verify)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        found = super().get_connection_with_tls_context(request, verify, proxies=None, cert=None)
        if not isinstance(found, HTTPConnectionPool):
            return found
        pool = found
        with self._pools_lock:
            if len(self._pools) >= MAX_REMEMBERED_POOLS:
                self._pools.clear()
            self._pools[key] = pool
        return pool

    def request_url(
        self, request: requests.PreparedRequest, proxies: Mapping[str, str] | None
    ) -> str:
        parts = split_origin(request.url or "")
        if parts is None or proxies:
            url: str = super().request_url(request, proxies)
            return url
        return parts[1]

    def build_response(self, req: requests.PreparedRequest, resp: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = resp.status
        response.headers = CaseInsensitiveDict(resp.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = resp
        response.reason = resp.reason
        response.url = req.url or ""
        if any(name in response.headers for name in _COOKIE_HEADERS):
            extract_cookies_to_jar(response.cookies, req, resp)  # type: ignore[no-untyped-call]
        response.request = req
        response.connection = self
        return response

    def close(self) -> None:
        with self._pools_lock:
            self._pools.clear()
        super().close()


def mount(session: requests.Session, *, pool_size: int | None = None) -> None:
    """Mount an :class:`Adapter` for http and https on ``session``."""
    if pool_size is None:
        adapter = Adapter()
    else:
        adapter = Adapter(pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
