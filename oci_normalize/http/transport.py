"""HTTP plumbing under :class:`~oci_normalize.store.registry.Registry`: auth, redirects, retries.

One :class:`Transport` per registry host sends every request: it adds the ``Authorization``
header (only to the registry's own origin), answers one 401 challenge, follows redirects of reads
itself (a blob redirected to object storage travels without credentials), retries what may change
(:mod:`oci_normalize.http.retry`), counts requests and turns requests' exceptions into ours, each
naming the request that failed (:class:`~oci_normalize.http.requestline.RequestLine`). It sends;
judging an error answer is :mod:`oci_normalize.http.status`'s work.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, NoReturn, cast
from urllib.parse import urlencode, urljoin, urlsplit

import requests
from requests.cookies import get_cookie_header
from requests.structures import CaseInsensitiveDict

from oci_normalize.clock import SYSTEM_CLOCK, Clock
from oci_normalize.errors import RegistryError, TLSFailureError, TransportError
from oci_normalize.http import env as httpenv
from oci_normalize.http.auth import Authenticator
from oci_normalize.http.body import Reply, close_ends, read_reply
from oci_normalize.http.deadline import Deadline, armed
from oci_normalize.http.requestline import RequestLine
from oci_normalize.http.retry import Again, parse_retry_after, retrying
from oci_normalize.http.status import raise_for_status
from oci_normalize.limits import MAX_ERROR_BODY, min_blob_rate, parse_count
from oci_normalize.options import NO_RETRY, RetryPolicy
from oci_normalize.text import printable

__all__ = ["MAX_ERROR_BODY", "Transport", "origin"]
MAX_REDIRECTS: Final = 5
REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_FOLLOWED_METHODS: Final = frozenset({"GET", "HEAD"})

#: A body to send: bytes, or an iterable of chunks with a known ``len``.
Body = Any


@dataclass(frozen=True, kw_only=True)
class _Outgoing:
    """What one request sends beyond its method and URL, the same on every try."""

    headers: dict[str, str]
    params: dict[str, Any] | None = None
    data: Body = None
    stream: bool = False
    max_body: int = MAX_ERROR_BODY


def _gave_up(exc: TransportError, tries: int) -> NoReturn:
    if tries > 1:
        raise TransportError(
            f"{exc} (gave up after {tries} tries)", method=exc.method, url=exc.url
        ) from exc
    raise exc


def _still_answered(resp: requests.Response | Reply, tries: int) -> NoReturn:
    """A retryable status answered to the last try: its error."""
    raise_for_status(resp, tries=tries)
    raise AssertionError("unreachable: a retryable status is an error")


def origin(url: str) -> tuple[str, str]:
    """(scheme, host:port) with default ports made explicit, for same-origin checks."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme.lower(), f"{(parts.hostname or '').lower()}:{port}"


class Transport:
    """Sends requests for one registry host; thread-safe; counts every request it sends.

    ``clock`` is what retry waits sleep on and what their time budget is measured by.
    """

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
        clock: Clock = SYSTEM_CLOCK,
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
        self.clock = clock
        self._lock = threading.Lock()
        self.requests = 0  # every request sent, retries and redirect hops included
        self.retries = 0  # of which were retries after a transient failure

    def request(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...],
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        data: Body = None,
        max_body: int = MAX_ERROR_BODY,
        retry_auth: bool = True,
        replayable: bool = True,
    ) -> Reply:
        """Send with auth and read the answer's body, at most ``max_body`` bytes: an error
        answer is cut there, a longer success answer is refused. Transient failures are
        retried when the request can be sent again (``replayable``).

        A retryable status still answered after the last try raises (429 as
        :class:`~oci_normalize.errors.RateLimitedError`); any other answer is returned for
        the caller to judge (:func:`~oci_normalize.http.status.raise_for_status`).
        """
        out = _Outgoing(headers=headers or {}, params=params, data=data, max_body=max_body)
        answer = self._exchange(method, url, scopes, out, retry_auth, replayable)
        assert isinstance(answer, Reply)
        return answer

    def open(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...],
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """:meth:`request` for a body the caller streams: the caller reads it and closes the
        response, which ends its deadline (:attr:`deadline_s`, from the request sent)."""
        out = _Outgoing(headers=headers or {}, stream=True)
        answer = self._exchange(method, url, scopes, out, True, True)
        assert isinstance(answer, requests.Response)
        return answer

    def _exchange(
        self,
        method: str,
        url: str,
        scopes: tuple[str, ...],
        out: _Outgoing,
        retry_auth: bool,
        replayable: bool,
    ) -> requests.Response | Reply:
        policy = self.retry if replayable else NO_RETRY

        def attempt() -> requests.Response | Reply | Again:
            try:
                resp = self._authorized(method, url, scopes, out, retry_auth)
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
                give_up=partial(_still_answered, resp), retry_after=after, release=resp.close
            )

        # mypy cannot split T out of ``T | Again`` when T is itself a union: name it.
        answer = retrying(policy, attempt, backoff=self.backoff, clock=self.clock)
        return cast("requests.Response | Reply", answer)

    def backoff(self, delay: float) -> None:
        """Count one retry and wait ``delay`` seconds before it."""
        with self._lock:
            self.retries += 1
        self.clock.sleep(delay)

    def _ours(self, url: str) -> bool:
        return url.startswith(self._prefix) or origin(url) == self._origin

    # ---- one try: auth, one 401 answer, redirects --------------------------------------------

    def _authorized(
        self, method: str, url: str, scopes: tuple[str, ...], out: _Outgoing, retry_auth: bool
    ) -> requests.Response | Reply:
        ours = self._ours(url)
        for attempt in (1, 2):
            headers = dict(out.headers)
            header = self.auth.header(scopes) if ours else None
            if header:
                headers["Authorization"] = header
            resp = self._send(method, url, headers, out)
            if resp.status_code in REDIRECT_STATUSES and method in _FOLLOWED_METHODS:
                resp = self._follow(method, url, resp, scopes, out)
            if resp.status_code != 401 or not retry_auth or not ours:
                return resp
            refusal = resp.response if isinstance(resp, Reply) else resp
            if attempt == 2:
                self.auth.refused(refusal, scopes)  # raises a clear error
            self.auth.answer(refusal, scopes)
            resp.close()
        raise AssertionError("unreachable")

    def _follow(
        self,
        method: str,
        url: str,
        resp: requests.Response | Reply,
        scopes: tuple[str, ...],
        out: _Outgoing,
    ) -> requests.Response | Reply:
        """Follow redirects of a read; Authorization goes only to the registry's own origin."""
        line = RequestLine.of(method, url)
        for _ in range(MAX_REDIRECTS):
            location = resp.headers.get("Location")
            if resp.status_code not in REDIRECT_STATUSES or not location:
                return resp
            resp.close()
            url = urljoin(url, location)
            if urlsplit(url).scheme.lower() not in ("http", "https"):
                shown = printable(RequestLine.of(method, url).url, limit=120)
                raise line.error(
                    RegistryError, f"the registry redirected to a non-HTTP URL ({shown})"
                )
            headers = dict(out.headers)
            if self._ours(url):
                header = self.auth.header(scopes)
                if header:
                    headers["Authorization"] = header
            resp = self._send(method, url, headers, out)
        raise line.error(RegistryError, f"more than {MAX_REDIRECTS} redirects")

    def _send(
        self, method: str, url: str, headers: dict[str, str], out: _Outgoing
    ) -> requests.Response | Reply:
        # The request line (a masked URL) is built only for an error: most requests succeed.
        with self._lock:
            self.requests += 1
        proxies = self._proxies
        if not self._ours(url):  # a redirect elsewhere (object storage)
            proxies = httpenv.settings(url, True)[0]
        deadline = self._deadline_for(out.data, headers)
        try:
            with armed(deadline):
                resp = self._dispatch(method, url, headers, proxies, out)
        except requests.exceptions.SSLError as exc:
            deadline.disarm()
            if deadline.expired:
                raise self._late(RequestLine.of(method, url), deadline) from exc
            reason = "certificate verify failed" if "CERTIFICATE_VERIFY" in str(exc) else "error"
            raise RequestLine.of(method, url).error(
                TLSFailureError,
                f"TLS {reason} talking to {self.registry} "
                "(--ca-file for a private CA, --insecure to skip the check)",
            ) from exc
        except requests.exceptions.Timeout as exc:
            deadline.disarm()
            raise RequestLine.of(method, url).error(
                TransportError, f"{self.registry} timed out"
            ) from exc
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader) as exc:
            deadline.disarm()
            raise RequestLine.of(method, url).error(
                TransportError, "invalid URL or header", retryable=False
            ) from exc
        except (requests.RequestException, OSError) as exc:
            deadline.disarm()
            if deadline.expired:
                raise self._late(RequestLine.of(method, url), deadline) from exc
            raise RequestLine.of(method, url).error(
                TransportError, f"cannot reach {self.registry} ({type(exc).__name__})"
            ) from exc
        if out.stream:
            close_ends(resp, deadline)
            resp.deadline = deadline  # type: ignore[attr-defined]
            return resp
        try:
            reply = read_reply(resp, out.max_body)
        except (requests.RequestException, OSError) as exc:
            deadline.disarm()
            resp.close()
            if deadline.expired:
                raise self._late(RequestLine.of(method, url), deadline) from exc
            raise RequestLine.of(method, url).error(
                TransportError, f"{self.registry} broke off its answer"
            ) from exc
        except BaseException:  # over the cap (its connection is closed), or interrupted
            deadline.disarm()
            raise
        # Disarmed before the connection goes back to the pool, where another request may
        # take it: a late watchdog must never shut a socket that serves someone else.
        deadline.disarm()
        resp.close()
        if deadline.expired:
            raise self._late(RequestLine.of(method, url), deadline)
        return reply

    def _dispatch(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        proxies: dict[str, str],
        out: _Outgoing,
    ) -> requests.Response:
        """One request through the session's adapter, prepared here.

        ``Session.request`` would re-merge the session's settings, re-parse and re-quote the
        URL and walk its hooks for every call: about a third of a request's CPU, measured, for
        URLs this client built itself or checked (a registry's ``Location`` is percent-encoded
        again by urllib3). What it did that matters is kept: the session's headers (our
        User-Agent), ``params``, the body and its Content-Length, and its cookie jar.
        """
        params = out.params
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
                raise RequestLine.of(method, url).error(
                    TransportError, f"invalid {name} header value", retryable=False
                )
            prep.headers[name] = value
        body = out.data
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

    def _late(self, line: RequestLine, deadline: Deadline | None = None) -> TransportError:
        seconds = self.deadline_s if deadline is None else deadline.seconds
        return line.error(
            TransportError, f"{self.registry} did not finish answering within {seconds:g} s"
        )

    def body_error(self, resp: requests.Response, exc: Exception) -> TransportError:
        """The error for a streamed body whose reading failed (deadline or broken connection)."""
        line = RequestLine.answered(resp)
        deadline = getattr(resp, "deadline", None)
        if isinstance(deadline, Deadline) and deadline.expired:
            return self._late(line)  # the response deadline, however far a long body extended it
        name = type(exc).__name__
        return line.error(TransportError, f"{self.registry} broke off its answer ({name})")
