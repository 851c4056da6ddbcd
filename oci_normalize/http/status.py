"""Error answers become exceptions here, and only here.

:func:`raise_for_status` turns a non-2xx answer into one exception of the tree in
:mod:`oci_normalize.errors`, chosen by the distribution-spec error code (:data:`ERROR_CLASSES`)
or the status. The error body is read with a cap (:data:`~oci_normalize.limits.MAX_ERROR_BODY`)
and made safe to show; the message names the request (``GET host/v2/app/manifests/v1: …``) and
the exception carries it as fields (``method``, ``url`` without secrets, ``status``, ``code``).
"""

from __future__ import annotations

import json
from typing import Final

import requests

from oci_normalize.errors import (
    DeniedError,
    ManifestTooLargeError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
    UnauthorizedError,
)
from oci_normalize.http.body import Reply
from oci_normalize.http.requestline import RequestLine
from oci_normalize.http.secrets import redact
from oci_normalize.limits import MAX_ERROR_BODY
from oci_normalize.manifest import too_deep
from oci_normalize.text import printable

__all__ = ["ERROR_CLASSES", "error_for", "raise_for_status", "read_errors"]

#: An answer: streamed (``requests.Response``) or read with a cap (:class:`Reply`).
Answer = requests.Response | Reply

ERROR_CLASSES: Final[dict[str, type[RegistryError]]] = {
    "MANIFEST_UNKNOWN": NotFoundError,
    "NAME_UNKNOWN": NotFoundError,
    "BLOB_UNKNOWN": NotFoundError,
    "DENIED": DeniedError,
    "UNAUTHORIZED": UnauthorizedError,
    "TOOMANYREQUESTS": RateLimitedError,
}
#: The error class of a status that came without a known code.
STATUS_CLASSES: Final[dict[int, type[RegistryError]]] = {
    401: UnauthorizedError,
    403: DeniedError,
    404: NotFoundError,
    429: RateLimitedError,
}
#: What a 404 says is missing, by the distribution-spec path the request went to.
_NOUNS: Final = (("/manifests/", "manifest"), ("/blobs/", "blob"), ("/referrers/", "referrers"))
_LISTINGS: Final = ("/tags/list", "/_catalog")


def raise_for_status(answer: Answer, *, tries: int = 1) -> None:
    """Raise :func:`error_for` ``answer`` unless it is a success (below 300)."""
    if answer.status_code < 300:
        return
    raise error_for(answer, tries=tries)


def error_for(answer: Answer, *, tries: int = 1) -> RegistryError | ManifestTooLargeError:
    """The exception for an error answer (one line naming its request and the registry's
    code); ``tries`` above 1 says the answer came to the last of that many tries."""
    line = RequestLine.answered(answer)
    status = answer.status_code
    gave_up = f" (gave up after {tries} tries)" if tries > 1 else ""
    if status == 413:
        return ManifestTooLargeError(
            f"{line.context}: the registry refused the size (HTTP 413 Payload Too Large)"
        )
    code, message = read_errors(answer)
    if code:
        detail = f"{code}: {message}" if message else code
    else:
        reason = printable(redact(str(answer.reason or "")), limit=80)
        detail = f"HTTP {status} {reason}".strip()
    cls = ERROR_CLASSES.get(code or "") or STATUS_CLASSES.get(status, RegistryError)
    text = f"{detail}{gave_up}"
    if cls is NotFoundError:
        noun = "repository" if code == "NAME_UNKNOWN" else _noun(line.url)
        text = f"{noun} not found ({detail}){gave_up}"
    elif cls is RateLimitedError and code not in ERROR_CLASSES:
        text = f"rate limited by the registry (HTTP 429){gave_up}"
    return line.error(cls, text, status=status, code=code)


def _noun(url: str) -> str:
    path = url.partition("?")[0]
    if path.endswith(_LISTINGS):
        return "repository"
    return next((noun for part, noun in _NOUNS if part in path), "resource")


def read_errors(answer: Answer) -> tuple[str | None, str]:
    """The first (code, message) of an error body read with a cap, made safe to show."""
    text = answer.body[:MAX_ERROR_BODY] if isinstance(answer, Reply) else _read_some(answer)
    if too_deep(text):
        return None, ""
    try:
        errors = json.loads(text).get("errors") or []
        first = errors[0]
        code = printable(redact(str(first.get("code") or "")), limit=64) or None
        return code, printable(redact(str(first.get("message") or "")), limit=300)
    except (ValueError, AttributeError, IndexError, TypeError, KeyError, RecursionError):
        return None, ""


def _read_some(resp: requests.Response) -> bytes:
    """At most :data:`MAX_ERROR_BODY` bytes of a streamed error body."""
    raw = bytearray()
    try:
        for chunk in resp.iter_content(8192):
            raw += chunk
            if len(raw) >= MAX_ERROR_BODY:
                break
    except (requests.RequestException, OSError, RuntimeError):
        pass  # an unreadable error body must not hide the error itself
    return bytes(raw[:MAX_ERROR_BODY])
