"""Registry authentication: the bearer-token challenge and basic auth, per registry host.

A :class:`Authenticator` belongs to one registry host. It keeps a token per scope set, answers a
401 challenge by fetching a token (anonymously or with the host's credential) and hands out the
``Authorization`` header for later requests. Credentials are only ever sent to the registry host
itself and to the token realm its challenge names; they never appear in a message.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

import requests

from oci_normalize.clock import SYSTEM_CLOCK, Clock
from oci_normalize.errors import DeniedError, UnauthorizedError
from oci_normalize.http import env as httpenv
from oci_normalize.http import secrets
from oci_normalize.http.deadline import Deadline, armed
from oci_normalize.http.requestline import RequestLine
from oci_normalize.http.token import (
    Token,
    read_token_body,
    token_from,
)
from oci_normalize.reference import is_loopback_host

#: ``client_id`` sent with refresh-token grants, as the distribution token spec asks.
CLIENT_ID: Final = "oci-normalize"

_PARAM: Final = re.compile(r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


@dataclass(frozen=True)
class Credential:
    """A username/password or an identity (refresh) token. The repr never shows a secret."""

    username: str | None = field(default=None)
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    source: str = "none"  # where it came from, for error messages ("--username", "config.json")
    tried: tuple[str, ...] = ()  # the sources looked at, for "none were found" messages

    def looked_in(self) -> str:
        return "looked in: " + ", ".join(self.tried) if self.tried else "no source was searched"

    @property
    def has_basic(self) -> bool:
        return bool(self.username) and self.password is not None

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


ANONYMOUS: Final = Credential()


@dataclass(frozen=True)
class Challenge:
    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """Parse one ``WWW-Authenticate`` value; quoted values may contain commas and spaces."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m or m.end() == pos:
            break
        key, value = m.group(1).lower(), m.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key] = value
        pos = m.end()
    return Challenge(scheme.lower(), params)


class Authenticator:
    """Answers challenges for one registry host and caches what it learns, thread-safely.

    Tokens are cached per scope set until shortly before the ``expires_in`` they came with. A
    401 for a cached token fetches a fresh one (once per refusal, even when many threads were
    refused together). Basic credentials go to a plain-HTTP token realm only when it is on
    loopback or ``allow_plain_http`` (the user's ``--plain-http``) says so. Token lifetimes
    are counted on ``clock``.

    Errors name the request they are about: the registry request refused, or the token
    request that failed.
    """

    def __init__(
        self,
        session: requests.Session,
        credential: Credential = ANONYMOUS,
        *,
        timeout: tuple[float, float],
        verify: bool | str = True,
        allow_plain_http: bool = False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._session = session
        self._clock = clock
        self._credential = credential
        secrets.remember_basic(credential.username, credential.password)
        secrets.remember(credential.identity_token)
        self._timeout = timeout
        self._verify = verify
        self._allow_plain_http = allow_plain_http
        self._lock = threading.Lock()
        self._tokens: dict[frozenset[str], Token] = {}
        self._fetching: dict[frozenset[str], threading.Lock] = {}
        self._basic = False  # the host asked for Basic auth
        self._challenge_params: dict[str, str] | None = None  # realm/service, to renew tokens

    @property
    def credential(self) -> Credential:
        return self._credential

    def header(self, scopes: Iterable[str]) -> str | None:
        """The Authorization value to send for a request needing ``scopes``, if known."""
        key = frozenset(scopes)
        with self._lock:
            if self._basic and self._credential.has_basic:
                return self._credential.basic_header()
            token = self._tokens.get(key)
            if token and token.fresh(self._clock.monotonic()):
                return f"Bearer {token.value}"
            params = self._challenge_params
        if token is None or params is None:
            return None
        # Expired: renew before sending, rather than earn a 401 to learn the same challenge.
        return f"Bearer {self._renew(key, params, merge_scopes(key), None).value}"

    def answer(self, response: requests.Response, scopes: Iterable[str]) -> None:
        """Learn from a 401 so the retried request can succeed; raise if nothing can help."""
        line = RequestLine.answered(response)
        wanted = sorted(set(scopes))
        challenges = _challenges(response)
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        if bearer is not None and bearer.params.get("realm"):
            sent = response.request.headers.get("Authorization") if response.request else None
            asked = bearer.params.get("scope", "").split()
            with self._lock:
                self._challenge_params = dict(bearer.params)
            scopes = merge_scopes([*wanted, *asked])
            self._renew(frozenset(wanted), bearer.params, scopes, sent)
            return
        if any(c.scheme == "basic" for c in challenges):
            if not self._credential.has_basic:
                raise line.error(
                    UnauthorizedError,
                    "the registry requires credentials and none were found "
                    f"({self._credential.looked_in()})",
                    status=401,
                    code="UNAUTHORIZED",
                )
            with self._lock:
                if (
                    self._basic
                    and response.request is not None
                    and response.request.headers.get("Authorization")
                ):
                    self.refused(response, wanted)
                self._basic = True
            return
        raise line.error(UnauthorizedError, "unauthorized (no usable challenge)", status=401)

    def _renew(
        self,
        key: frozenset[str],
        params: dict[str, str],
        scopes: list[str],
        refused: str | None,
    ) -> Token:
        """Fetch a token for ``key`` once, even when many threads need it at the same time."""
        with self._lock:
            fetch_lock = self._fetching.setdefault(key, threading.Lock())
        with fetch_lock:
            with self._lock:
                cached = self._tokens.get(key)
            fresh = cached is not None and cached.fresh(self._clock.monotonic())
            if cached and fresh and f"Bearer {cached.value}" != refused:
                return cached  # another thread already renewed it
            token = self._fetch_token(params, scopes)
            with self._lock:
                self._tokens[key] = token
            return token

    def refused(self, response: requests.Response, scopes: Iterable[str]) -> None:
        """Raise the clearest error for a request still refused after its credentials."""
        line = RequestLine.answered(response)
        bearer = next((c for c in _challenges(response) if c.scheme == "bearer"), None)
        cred = self._credential
        anonymous = not cred.has_basic and not cred.identity_token
        if anonymous:
            raise line.error(
                UnauthorizedError,
                "unauthorized: the registry needs credentials and none were found "
                f"({cred.looked_in()})",
                status=401,
                code="UNAUTHORIZED",
            )
        who = f"credentials from {cred.source}"
        if bearer is not None and bearer.params.get("error") == "insufficient_scope":
            raise line.error(
                DeniedError,
                f"access denied: the token service did not grant {who} "
                f"{' '.join(sorted(set(scopes)))}",
                status=401,
                code="DENIED",
            )
        raise line.error(
            UnauthorizedError,
            f"unauthorized: the registry refused {who}",
            status=401,
            code="UNAUTHORIZED",
        )

    def _fetch_token(self, params: dict[str, str], scopes: list[str]) -> Token:
        realm = params["realm"]
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        query.extend(("scope", s) for s in scopes)  # one scope parameter each
        cred = self._credential
        line = RequestLine.of("POST" if cred.identity_token else "GET", realm)
        if (cred.has_basic or cred.identity_token) and not self._may_send_secrets(realm):
            raise line.error(
                UnauthorizedError,
                "refusing to send credentials to a plain-HTTP token service "
                "(give --plain-http to allow it)",
                status=401,
            )
        headers: dict[str, str] = {}
        proxies, verify = httpenv.settings(realm, self._verify)
        deadline = Deadline(self._timeout[1])
        try:
            if cred.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": cred.identity_token,
                    "service": params.get("service", ""),
                    "scope": " ".join(scopes),
                    "client_id": CLIENT_ID,
                }
                with armed(deadline):
                    resp = self._session.post(
                        realm,
                        data=form,
                        timeout=self._timeout,
                        verify=verify,
                        proxies=proxies,
                        allow_redirects=False,
                        stream=True,
                    )
            else:
                if cred.has_basic:
                    headers["Authorization"] = cred.basic_header()
                with armed(deadline):
                    resp = self._session.get(
                        realm,
                        params=query,
                        headers=headers,
                        timeout=self._timeout,
                        verify=verify,
                        proxies=proxies,
                        allow_redirects=False,
                        stream=True,
                    )
        except requests.RequestException as exc:
            deadline.disarm()
            if deadline.expired:
                raise line.error(
                    UnauthorizedError,
                    "authentication failed: the token service did not answer within "
                    f"{self._timeout[1]:g} s",
                ) from exc
            raise line.error(
                UnauthorizedError, f"token service unreachable ({type(exc).__name__})"
            ) from exc
        try:
            if resp.status_code != 200:
                who = f"credentials from {cred.source}" if cred.source != "none" else "anonymous"
                cls = DeniedError if resp.status_code == 403 else UnauthorizedError
                raise line.error(
                    cls,
                    f"token service refused {who} for {' '.join(scopes) or 'no scope'} "
                    f"(HTTP {resp.status_code})",
                    status=resp.status_code,
                    code="UNAUTHORIZED",
                )
            raw = read_token_body(resp, deadline)
        finally:
            deadline.disarm()
            resp.close()
        return token_from(raw, request=line, now=self._clock.monotonic())

    def _may_send_secrets(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme == "https" or self._allow_plain_http:
            return True
        return is_loopback_host(parts.hostname or "")


_ACTION_ORDER: Final = {"pull": 0, "push": 1}


def merge_scopes(scopes: Iterable[str]) -> list[str]:
    """One ``type:name:actions`` per resource, actions united in a stable order.

    ``repository:a:push,pull`` and ``repository:a:pull`` become ``repository:a:pull,push``:
    a registry's challenge lists actions in any order, and asking twice for one resource
    only makes the token service work harder.
    """
    merged: dict[tuple[str, str], set[str]] = {}
    for scope in scopes:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if not kind or not name:
            continue
        merged.setdefault((kind, name), set()).update(a for a in actions.split(",") if a)
    return [
        f"{kind}:{name}:{','.join(sorted(acts, key=lambda a: (_ACTION_ORDER.get(a, 9), a)))}"
        for (kind, name), acts in sorted(merged.items())
    ]


def _challenges(response: requests.Response) -> list[Challenge]:
    return [c for c in (parse_challenge(h) for h in _split_challenges(response)) if c is not None]


def _split_challenges(response: requests.Response) -> list[str]:
    """``WWW-Authenticate`` may hold several challenges; split on scheme starts."""
    raw = response.headers.get("WWW-Authenticate", "")
    parts = re.split(r",\s*(?=(?:Bearer|Basic)\s)", raw, flags=re.IGNORECASE)
    return [p for p in parts if p.strip()]
