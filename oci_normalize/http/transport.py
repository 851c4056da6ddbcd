"""HTTP plumbing under :class:`~.store.registry.Registry`: auth, redirects, retries, errors.

One :class:`Transport` per registry host sends every request: it adds the ``Authorization``
header (only to the registry's own origin), answers one 401 challenge, follows redirects of reads
itself (a blob redirected to object storage travels without credentials), retries what may change
(:mod:`oci_normalize.http.retry`), counts requests and turns requests' exceptions into ours. Error
answers become exceptions in one place, :func:`raise_for_status`, which reads at most
:data:`MAX_ERROR_BODY` bytes of the body.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Final, NoReturn
from urllib.parse import urlencode, urljoin, urlsplit

import requests
from requests.cookies import get_cookie_header
from requests.structures import CaseInsensitiveDict

from oci_normalize.errors import (
    DeniedError,
    ManifestTooLargeError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
    TLSFailureError,
    TransportError,
    UnauthorizedError,
)
from oci_normalize.http import env as httpenv
from oci_normalize.http.auth import Authenticator
from oci_normalize.http.body import close_ends, preload
from oci_normalize.http.deadline import Deadline, armed
from oci_normalize.http.retry import NO_RETRY, Again, RetryPolicy, parse_retry_after, retrying
from oci_normalize.http.secrets import redact
from oci_normalize.limits import MAX_ERROR_BODY, min_blob_rate, parse_count
from oci_normalize.manifest import too_deep
from oci_normalize.text import printable

__all__ = ["MAX_ERROR_BODY", "Transport", "raise_for_status", "read_errors"]
MAX_REDIRECTS: Final = 5
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_FOLLOWED_METHODS: Final = frozenset({"GET", "HEAD"})


def _gave_up(exc: TransportError, tries: int) -> NoReturn:
    if tries > 1:
        raise TransportError(f"{exc} (gave up after {tries} tries)") from exc
    raise exc


def _still_answered(resp: requests.Response, what: str, tries: int) -> NoReturn:
    """A retryable status answered to the last try: its error."""
    if tries > 1:
        what = f"{what} (gave up after {tries} tries)"
    raise_for_status(resp, what, kind="")
    raise AssertionError("unreachable: a retryable status is an error")


def origin(url: str) -> tuple[str, str]:
    """(scheme, host:port) with default ports made explicit, for same-origin checks."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme.lower(), f"{(parts.hostname or '').lower()}:{port}"


class Transport:
    """Sends requests for one registry host; thread-safe; counts every request it sends."""

    def __init__(
        self,
        *,
        registry: str,
        base_url: str,
        session: requests.Session,
        auth: Authenticator,
        timeout: tuple[float, float],
        verify: bool | str,
        retry: RetryPolicy,
        deadline_s: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        self._origin = origin(base_url)
        # URLs under this exact prefix are the registry's own origin without parsing them.
        self._prefix = "{}://{}/".format(*urlsplit(base_url)[:2])
        self._session = session
        self.auth = auth
        self._timeout = timeout
        #: Overall time for one response, from request sent to last byte read.
        self.deadline_s = timeout[1] if deadline_s is None else deadline_s
        self._proxies, self._verify = httpenv.settings(base_url, verify)
        self.retry = retry
        self.sleep = sleep
        self._lock = threading.Lock()
        self.requests = 0  # every request sent, retries and redirect hops included
        self.retries = 0  # of which were retries after a transient failure

    def request(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...],
        what: str,
        retry_auth: bool = True,
        replayable: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Send with auth; retry transient failures when the request can be sent again.

        Every answer is read under an overall deadline (:attr:`deadline_s`). Without
        ``stream=True`` the body is read here, at most ``max_body`` bytes (an error answer is
        cut there, a longer success answer is refused); with it, the caller reads the body and
        closes the response, which ends its deadline.

        A retryable status still answered after the last try raises (429 as
        :class:`RateLimitedError`); any other answer is returned for the caller to judge.
        """
        policy = self.retry if replayable else NO_RETRY

        def attempt() -> requests.Response | Again:
            try:
                resp = self._authorized(method, url, scopes, what, retry_auth, kwargs)
            except TransportError as exc:
                if not exc.retryable:
                    raise
                return Again(give_up=partial(_gave_up, exc))
            if resp.status_code not in policy.statuses:
                return resp
            after = None
            if resp.status_code == 429:
                after = parse_retry_after(resp.headers.get("Retry-After"))
            return Again(
                give_up=partial(_still_answered, resp, what), retry_after=after, release=resp.close
            )

        return retrying(policy, attempt, backoff=self.backoff)

    def backoff(self, delay: float) -> None:
        """Count one retry and wait ``delay`` seconds before it."""
        with self._lock:
            self.retries += 1
        self.sleep(delay)

    def _ours(self, url: str) -> bool:
        return url.startswith(self._prefix) or origin(url) == self._origin

    # ---- one try: auth, one 401 answer, redirects --------------------------------------------

    def _authorized(
        self,
        method: str,
        url: str,
        scopes: tuple[str, ...],
        what: str,
        retry_auth: bool,
        kwargs: dict[str, Any],
    ) -> requests.Response:
        ours = self._ours(url)
        for attempt in (1, 2):
            headers: dict[str, str] = dict(kwargs.get("headers") or {})
            header = self.auth.header(scopes) if ours else None
            if header:
                headers["Authorization"] = header
            resp = self._send(method, url, headers, what, kwargs)
            if resp.status_code in REDIRECT_STATUSES and method in _FOLLOWED_METHODS:
                resp = self._follow(method, url, resp, scopes, what, kwargs)
            if resp.status_code != 401 or not retry_auth or not ours:
                return resp
            if attempt == 2:
                self.auth.refused(resp, scopes, what)  # raises a clear error
            self.auth.answer(resp, scopes, what)
            resp.close()
        raise AssertionError("unreachable")

    def _follow(
        self,
        method: str,
        url: str,
        resp: requests.Response,
        scopes: tuple[str, ...],
        what: str,
        kwargs: dict[str, Any],
    ) -> requests.Response:
        """Follow redirects of a read; Authorization goes only to the registry's own origin."""
        for _ in range(MAX_REDIRECTS):
            location = resp.headers.get("Location")
            if resp.status_code not in REDIRECT_STATUSES or not location:
                return resp
            resp.close()
            url = urljoin(url, location)
            if urlsplit(url).scheme.lower() not in ("http", "https"):
                raise RegistryError(
                    f"{what}: the registry redirected to a non-HTTP URL "
                    f"({printable(url, limit=120)})"
                )
            headers: dict[str, str] = dict(kwargs.get("headers") or {})
            if self._ours(url):
                header = self.auth.header(scopes)
                if header:
                    headers["Authorization"] = header
            resp = self._send(method, url, headers, what, kwargs)
        raise RegistryError(f"{what}: more than {MAX_REDIRECTS} redirects")

    def _send(
        self, method: str, url: str, headers: dict[str, str], what: str, kwargs: dict[str, Any]
    ) -> requests.Response:
        extra = {k: v for k, v in kwargs.items() if k not in ("headers", "stream", "max_body")}
        streams = bool(kwargs.get("stream"))
        max_body = int(kwargs.get("max_body") or MAX_ERROR_BODY)
        with self._lock:
            self.requests += 1
        proxies = self._proxies
        if not self._ours(url):  # a redirect elsewhere (object storage)
            proxies = httpenv.settings(url, True)[0]
        deadline = self._deadline_for(extra.get("data"), headers)
        try:
            with armed(deadline):
                resp = self._dispatch(method, url, headers, proxies, extra)
        except requests.exceptions.SSLError as exc:
            deadline.disarm()
            if deadline.expired:
                raise self._late(what, deadline) from exc
            reason = "certificate verify failed" if "CERTIFICATE_VERIFY" in str(exc) else "error"
            raise TLSFailureError(
                f"{what}: TLS {reason} talking to {self.registry} "
                "(--ca-file for a private CA, --insecure to skip the check)"
            ) from exc
        except requests.exceptions.Timeout as exc:
            deadline.disarm()
            raise TransportError(f"{what}: {self.registry} timed out") from exc
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader) as exc:
            deadline.disarm()
            raise TransportError(f"{what}: invalid URL or header", retryable=False) from exc
        except (requests.RequestException, OSError) as exc:
            deadline.disarm()
            if deadline.expired:
                raise self._late(what, deadline) from exc
            raise TransportError(
                f"{what}: cannot reach {self.registry} ({type(exc).__name__})"
            ) from exc
        if streams:
            close_ends(resp, deadline)
            resp.deadline = deadline  # type: ignore[attr-defined]
            return resp
        try:
            preload(resp, max_body, what)
        except (requests.RequestException, OSError) as exc:
            deadline.disarm()
            resp.close()
            if deadline.expired:
                raise self._late(what, deadline) from exc
            raise TransportError(f"{what}: {self.registry} broke off its answer") from exc
        except BaseException:  # over the cap (its connection is closed), or interrupted
            deadline.disarm()
            raise
        # Disarmed before the connection goes back to the pool, where another request may
        # take it: a late watchdog must never shut a socket that serves someone else.
        deadline.disarm()
        resp.close()
        if deadline.expired:
            raise self._late(what, deadline)
        return resp

    def _dispatch(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        proxies: dict[str, str],
        extra: dict[str, Any],
    ) -> requests.Response:
        """One request through the session's adapter, prepared here.

        ``Session.request`` would re-merge the session's settings, re-parse and re-quote the
        URL and walk its hooks for every call: about a third of a request's CPU, measured, for
        URLs this client built itself or checked (a registry's ``Location`` is percent-encoded
        again by urllib3). What it did that matters is kept: the session's headers (our
        User-Agent), ``params``, the body and its Content-Length, and its cookie jar.
        """
        unknown = set(extra) - {"params", "data"}
        if unknown:
            raise TypeError(f"unsupported request options: {sorted(unknown)}")
        params = extra.get("params")
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params, doseq=True)}"
        prep = requests.PreparedRequest()
        prep.method = method
        prep.url = url
        prep.headers = CaseInsensitiveDict()
        for name, default in self._session.headers.items():
            if isinstance(default, str):
                prep.headers[name] = default
        for name, value in headers.items():
            if "\r" in value or "\n" in value:  # a token or header that would split the request
                raise TransportError(f"invalid {name} header value", retryable=False)
            prep.headers[name] = value
        body = extra.get("data")
        if isinstance(body, (bytes, bytearray)):
            prep.headers["Content-Length"] = str(len(body))
        elif body is None and method not in ("GET", "HEAD"):
            prep.headers.setdefault("Content-Length", "0")
        elif body is not None and "Content-Length" not in prep.headers:
            raise TypeError("a streamed body needs its Content-Length")
        prep.body = body
        jar = self._session.cookies
        if len(jar):
            cookie = get_cookie_header(jar, prep)  # type: ignore[no-untyped-call]
            if cookie:
                prep.headers["Cookie"] = cookie
        adapter = self._session.get_adapter(url)
        resp = adapter.send(
            prep, stream=True, timeout=self._timeout, verify=self._verify, proxies=proxies
        )
        if "Set-Cookie" in resp.headers:
            jar.update(resp.cookies)
        return resp

    def _deadline_for(self, body: object, headers: dict[str, str]) -> Deadline:
        """A request without a body: the response deadline. With one: the clock starts before
        the body is sent, and the body gets time for its length at the minimum blob rate, so a
        server that takes an upload one byte a second cannot hold it for ever."""
        if body is None:
            return Deadline(self.deadline_s)
        length = len(body) if isinstance(body, (bytes, bytearray)) else None
        if length is None:
            length = parse_count(headers.get("Content-Length", "")) or 0
        seconds = self.deadline_s + length / min_blob_rate()
        return Deadline(seconds, covers_sending=True)

    def _late(self, what: str, deadline: Deadline | None = None) -> TransportError:
        seconds = self.deadline_s if deadline is None else deadline.seconds
        return TransportError(
            f"{what}: {self.registry} did not finish answering within {seconds:g} s"
        )

    def body_error(self, resp: requests.Response, what: str, exc: Exception) -> TransportError:
        """The error for a streamed body whose reading failed (deadline or broken connection)."""
        deadline = getattr(resp, "deadline", None)
        if isinstance(deadline, Deadline) and deadline.expired:
            return self._late(what)  # the response deadline, however far a long body extended it
        name = type(exc).__name__
        return TransportError(f"{what}: {self.registry} broke off its answer ({name})")


# ---- error answers -----------------------------------------------------------------------------

ERROR_CLASSES: Final = {
    "MANIFEST_UNKNOWN": NotFoundError,
    "NAME_UNKNOWN": NotFoundError,
    "BLOB_UNKNOWN": NotFoundError,
    "DENIED": DeniedError,
    "UNAUTHORIZED": UnauthorizedError,
    "TOOMANYREQUESTS": RateLimitedError,
}


def raise_for_status(resp: requests.Response, what: str, *, kind: str) -> None:
    """Turn a non-2xx answer into one exception carrying the registry's error code."""
    if resp.status_code < 300:
        return
    code, message = read_errors(resp)
    status = resp.status_code
    if code:
        detail = f"{code}: {message}" if message else code
    else:
        detail = f"HTTP {status} {printable(redact(str(resp.reason or '')), limit=80)}".strip()
    text = f"{what}: {detail}"
    if status == 413:
        raise ManifestTooLargeError(
            f"{what}: the registry refused the size (HTTP 413 Payload Too Large)"
        )
    cls = ERROR_CLASSES.get(code or "")
    if cls is NotFoundError or (cls is None and status == 404):
        noun = "repository" if code == "NAME_UNKNOWN" else (kind or "resource")
        raise NotFoundError(f"{what}: {noun} not found ({detail})", status=status, code=code)
    if cls is None:
        if status == 401:
            cls = UnauthorizedError
        elif status == 403:
            cls = DeniedError
        elif status == 429:
            cls = RateLimitedError
            text = f"{what}: rate limited by the registry (HTTP 429)"
        else:
            cls = RegistryError
    raise cls(text, status=status, code=code)


def read_errors(resp: requests.Response) -> tuple[str | None, str]:
    """The first (code, message) of an error body read with a cap, made safe to show."""
    raw = bytearray()
    try:
        if getattr(resp, "_content_consumed", False):  # preloaded (and capped) by _preload
            raw += resp.content or b""
        else:
            for chunk in resp.iter_content(8192):
                raw += chunk
                if len(raw) >= MAX_ERROR_BODY:
                    break
    except (requests.RequestException, OSError, RuntimeError):
        pass  # an unreadable error body must not hide the error itself
    text = bytes(raw[:MAX_ERROR_BODY])
    if too_deep(text):
        return None, ""
    try:
        errors = json.loads(text).get("errors") or []
        first = errors[0]
        code = printable(redact(str(first.get("code") or "")), limit=64) or None
        return code, printable(redact(str(first.get("message") or "")), limit=300)
    except (ValueError, AttributeError, IndexError, TypeError, KeyError, RecursionError):
        return None, ""
