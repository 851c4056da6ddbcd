"""Paginated listings of a registry: ``_catalog``, ``tags/list`` and the referrers API.

Every page is read with a cap, the whole listing is bounded in names and pages, a ``next`` link
must stay on the registry and never repeat. The names come back as the registry sent them:
callers parse them like user input (:mod:`oci_normalize.reference`) before using one.

The functions take any :class:`Requester` (the registry client is one): they send through its
public request methods and know nothing else of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final, Protocol
from urllib.parse import urljoin, urlsplit

import requests

from oci_normalize import limits
from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import MalformedManifestError, RegistryError
from oci_normalize.http.body import Reply
from oci_normalize.http.requestline import RequestLine
from oci_normalize.http.status import ERROR_CLASSES, error_for, raise_for_status
from oci_normalize.http.transport import origin
from oci_normalize.limits import MAX_LISTING_PAGE
from oci_normalize.manifest import check_type_fields, parse_body
from oci_normalize.text import printable

#: A listing longer than this many pages is treated as a registry loop.
MAX_PAGES: Final = 10_000
#: Codes with which a registry that has the referrers API says the subject is unknown; from
#: one without the API, a 400/404/405 with any other or no code just means "no such API".
_NO_API: Final = frozenset({"MANIFEST_UNKNOWN", "BLOB_UNKNOWN"})


class Requester(Protocol):
    """What a listing needs of a registry client."""

    #: ``scheme://host/v2/``: a ``next`` link must stay under it.
    base_url: str

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` under :attr:`base_url`."""
        ...

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: tuple[str, ...],
        params: dict[str, Any] | None = ...,
        max_body: int = ...,
    ) -> Reply:
        """Send and read the answer's body, at most ``max_body`` bytes."""
        ...

    def open(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: tuple[str, ...],
        headers: dict[str, str] | None = ...,
    ) -> requests.Response:
        """Send; the caller streams the body and closes the answer."""
        ...

    def read_manifest_body(self, resp: requests.Response) -> bytes:
        """A streamed manifest-sized body, capped like a manifest."""
        ...


def paginate(
    reg: Requester, path: str, key: str, scopes: tuple[str, ...], page_size: int
) -> list[str]:
    """The whole listing (:func:`iter_pages`), at most
    :func:`~oci_normalize.limits.max_listed_names` names. Names are returned as sent: the
    caller parses them like user input before using one."""
    return [name for items in iter_pages(reg, path, key, scopes, page_size) for name in items]


def iter_pages(
    reg: Requester, path: str, key: str, scopes: tuple[str, ...], page_size: int
) -> Iterator[list[str]]:
    """A listing one page at a time, the next asked for only when the caller wants it (so a
    listing of any length is held a page at a time). Follows ``Link: <…>; rel="next"``; without
    one, a full page asks on with ``last``. Each page is read with a cap
    (:data:`~oci_normalize.limits.MAX_LISTING_PAGE`); a ``next`` link must stay on the registry
    and never repeat; at most :data:`MAX_PAGES` pages and
    :func:`~oci_normalize.limits.max_listed_names` names are counted (none is held), so a
    registry whose listing never ends is refused rather than followed for ever.
    """
    cap = limits.max_listed_names()
    count = 0
    url: str | None = reg.url(path)
    line = RequestLine.of("GET", reg.url(path))
    params: dict[str, Any] | None = {"n": page_size}
    seen: set[str] = set()
    previous: list[str] | None = None
    for _ in range(MAX_PAGES):
        if url is None:
            return
        reply = reg.request("GET", url, scopes=scopes, params=params, max_body=MAX_LISTING_PAGE)
        raise_for_status(reply)
        items = _listed(reply, key)
        if params is not None and "last" in params and items == previous:
            # Asked on with ``last`` (no Link came) and answered the same page again: the
            # registry ignores n and last (distribution 2.8's tags/list), so that page was the
            # whole listing, as peers read it (they never ask on without a Link).
            return
        previous = items
        count += len(items)
        if count > cap:
            raise line.error(
                RegistryError,
                f"more than {cap} names (set {limits.ENV_MAX_LISTED_NAMES} to allow more)",
            )
        nxt = reply.links.get("next", {}).get("url")
        if nxt:
            url, params = _same_registry(reg, urljoin(url, nxt), line), None
        elif len(items) == page_size and items:
            url, params = reg.url(path), {"n": page_size, "last": items[-1]}
        else:
            url = None
        marker = f"{url} {params}"
        if url is not None and marker in seen:
            raise line.error(RegistryError, "the registry's pagination goes round in a loop")
        seen.add(marker)
        yield items
    raise line.error(RegistryError, f"more than {MAX_PAGES} pages")


def _same_registry(reg: Requester, url: str, line: RequestLine) -> str:
    """A pagination link, refused unless it stays on this registry's origin."""
    if origin(url) != origin(reg.base_url) or not urlsplit(url).path.startswith("/v2/"):
        shown = printable(RequestLine.of("GET", url).url, limit=120)
        raise line.error(RegistryError, f"the registry's next-page link leaves it ({shown})")
    return url


def referrers(reg: Requester, repository: str, digest: Digest) -> bytes | None:
    """The referrers API's index for ``digest``, or None when the registry lacks the API.

    A registry with the API answers 200 for any digest (an empty index when nothing
    refers to it); distribution 2.8 answers a plain 404 (or 400/405 elsewhere). Auth
    failures still raise. The index is capped like a manifest; Link pagination is followed.
    """
    url: str | None = reg.url(f"{repository}/referrers/{digest}")
    line = RequestLine.of("GET", reg.url(f"{repository}/referrers/{digest}"))
    merged: dict[str, Any] | None = None
    seen: set[str | None] = {url}
    while url:
        resp = reg.open(
            "GET",
            url,
            scopes=(f"repository:{repository}:pull",),
            headers={"Accept": mt.OCI_INDEX},
        )
        with resp:
            if merged is None and resp.status_code in (400, 404, 405):
                error = error_for(resp)
                code = getattr(error, "code", None)
                if code not in ERROR_CLASSES or code in _NO_API:
                    return None
                raise error
            raise_for_status(resp)
            data = reg.read_manifest_body(resp)
        try:
            page = parse_body(data, line.context)
            entries = page.get("manifests") or []
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise TypeError("manifests is not a list of descriptors")
            for i, entry in enumerate(entries):
                check_type_fields(entry, f"{line.context}: manifests[{i}]")
        except (ValueError, AttributeError, TypeError, MalformedManifestError) as exc:
            raise line.error(RegistryError, "the registry answered with a malformed index") from exc
        if merged is None:
            merged = page
        else:
            merged["manifests"] = [*(merged.get("manifests") or []), *entries]
        if len(merged.get("manifests") or []) > limits.max_listed_names():
            raise line.error(RegistryError, f"more referrers than {limits.max_listed_names()}")
        nxt = resp.links.get("next", {}).get("url")
        url = _same_registry(reg, urljoin(url, nxt), line) if nxt else None
        if url in seen:
            raise line.error(RegistryError, "the registry's pagination goes round in a loop")
        seen.add(url)
    return json.dumps(merged).encode()


def _listed(reply: Reply, key: str) -> list[str]:
    """The names of one listing page: a JSON object whose ``key`` is a list of strings."""
    line = RequestLine.answered(reply)
    try:
        items = parse_body(reply.body, line.context).get(key) or []
    except MalformedManifestError as exc:
        raise line.error(RegistryError, "the registry answered with broken JSON") from exc
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise line.error(RegistryError, f"the registry's {key!r} is not a list of names")
    return items
