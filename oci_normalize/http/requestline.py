"""The request an error is about: its method and its URL, safe to show.

Errors of the HTTP layer carry the request they answer instead of a caller's description: the
message starts with :attr:`RequestLine.context` (``GET host/v2/app/manifests/v1``) and the error
keeps :attr:`~RequestLine.method` and :attr:`~RequestLine.url` (credentials and query secrets
masked by :func:`~oci_normalize.http.secrets.safe_url`) as fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import urlsplit

import requests

from oci_normalize.errors import RegistryError, TransportError
from oci_normalize.http.secrets import safe_url
from oci_normalize.text import printable

#: How much of a URL path a message shows.
MAX_SHOWN_PATH: Final = 200

E = TypeVar("E", bound=RegistryError | TransportError)


class Answered(Protocol):
    """What an answer tells about its request: a ``requests.Response`` or a read ``Reply``."""

    @property
    def request(self) -> requests.PreparedRequest | None: ...

    @property
    def url(self) -> str | None: ...


@dataclass(frozen=True)
class RequestLine:
    """A request's method and URL, the URL without credentials or query secrets."""

    method: str
    url: str

    @classmethod
    def of(cls, method: str, url: str) -> RequestLine:
        return cls(method.upper(), safe_url(url))

    @classmethod
    def answered(cls, answer: Answered) -> RequestLine:
        """The request ``answer`` answers (after redirects: the last hop's URL)."""
        request = answer.request
        method = (request.method if request is not None else None) or "GET"
        url = answer.url or (request.url if request is not None else None) or ""
        return cls.of(method, url)

    @property
    def context(self) -> str:
        """``METHOD host/path``: the start of every message about this request."""
        parts = urlsplit(self.url)
        return printable(f"{self.method} {parts.netloc}{parts.path}", limit=MAX_SHOWN_PATH)

    def error(self, cls: type[E], detail: str, **fields: Any) -> E:
        """``cls`` with a one-line message about this request and the request as fields."""
        return cls(f"{self.context}: {detail}", method=self.method, url=self.url, **fields)
