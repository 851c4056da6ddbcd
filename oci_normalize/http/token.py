"""What a token service answers, read with a cap and judged before it becomes a header.

The answer is read under the response deadline, at most :data:`~oci_normalize.limits.MAX_TOKEN_BODY`
bytes; it must be a flat enough JSON object with a token of visible ASCII (anything else could
not travel in an ``Authorization`` header). Every way it can be wrong is one
:class:`~oci_normalize.errors.UnauthorizedError` saying "authentication failed".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Final

import requests

from oci_normalize.errors import UnauthorizedError
from oci_normalize.http import secrets
from oci_normalize.http.deadline import Deadline
from oci_normalize.http.requestline import RequestLine
from oci_normalize.limits import MAX_TOKEN_BODY, parse_count
from oci_normalize.manifest import too_deep

#: Tokens are refreshed this many seconds before the expiry they announce.
EXPIRY_MARGIN_S: Final = 10
#: When a token response gives no ``expires_in`` the spec says to assume 60 seconds.
DEFAULT_TOKEN_LIFETIME_S: Final = 60
#: A longer ``expires_in`` is cut to this (a day): the cache must not keep a token for ever.
MAX_TOKEN_LIFETIME_S: Final = 86_400
#: A token is visible ASCII (RFC 6750's b64token and the JWTs registries send); anything else
#: could not travel in a header and is refused as a failed authentication.
_TOKEN_CHARS: Final = re.compile(r"[\x21-\x7e]+")


@dataclass
class Token:
    """A bearer token and when it stops being used, on the clock its ``now`` was read from."""

    value: str
    expires_at: float

    def fresh(self, now: float) -> bool:
        return self.expires_at > now


def read_token_body(resp: requests.Response, deadline: Deadline) -> bytes:
    """The token answer, at most :data:`MAX_TOKEN_BODY` bytes, under the response deadline."""
    line = RequestLine.answered(resp)
    length = parse_count(resp.headers.get("Content-Length", ""))
    failed = line.error(
        UnauthorizedError,
        f"authentication failed: the token service's answer is over {MAX_TOKEN_BODY} bytes",
    )
    if length is not None and length > MAX_TOKEN_BODY:
        raise failed
    buf = bytearray()
    try:
        for chunk in resp.iter_content(64 * 1024):
            buf += chunk
            if len(buf) > MAX_TOKEN_BODY:
                raise failed
    except (requests.RequestException, OSError) as exc:
        why = "did not finish answering in time" if deadline.expired else "broke off its answer"
        raise line.error(
            UnauthorizedError, f"authentication failed: the token service {why}"
        ) from exc
    return bytes(buf)


def token_from(raw: bytes, *, request: RequestLine, now: float) -> Token:
    """The token and its lifetime from the answer to ``request``, received at ``now``;
    anything unusable is a failed login."""

    def failed(why: str) -> UnauthorizedError:
        return request.error(UnauthorizedError, f"authentication failed: the token service {why}")

    if too_deep(raw):
        raise failed("answered with malformed JSON")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise failed("answered with malformed JSON") from exc
    if not isinstance(body, dict):
        raise failed("answered with malformed JSON")
    value = body.get("token") or body.get("access_token")
    if not isinstance(value, str) or not value:
        raise failed("answered without a token")
    if len(value) > MAX_TOKEN_BODY or not _TOKEN_CHARS.fullmatch(value):
        raise failed("sent a malformed token (not printable ASCII)")
    secrets.remember(value)
    lifetime = body.get("expires_in")
    if (
        not isinstance(lifetime, (int, float))
        or isinstance(lifetime, bool)
        or not 0 < lifetime < float("inf")
    ):
        lifetime = DEFAULT_TOKEN_LIFETIME_S
    lifetime = float(min(lifetime, MAX_TOKEN_LIFETIME_S))  # float() of a huge int overflows
    margin = min(EXPIRY_MARGIN_S, lifetime / 2)
    return Token(value, now + lifetime - margin)
