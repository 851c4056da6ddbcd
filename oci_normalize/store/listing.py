"""Paginated listings of a registry: ``_catalog``, ``tags/list`` and the referrers API.

Every page is read with a cap, the whole listing is bounded in names and pages, a ``next`` link
must stay on the registry and never repeat. The names come back as the registry sent them:
callers parse them like user input (:mod:`oci_normalize.reference`) before using one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urljoin, urlsplit

from oci_normalize import limits
from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import MalformedManifestError, RegistryError
from oci_normalize.http.transport import ERROR_CLASSES, origin, raise_for_status, read_errors
from oci_normalize.limits import MAX_LISTING_PAGE
from oci_normalize.manifest import check_type_fields, parse_body
from oci_normalize.text import printable

if TYPE_CHECKING:
    from oci_normalize.store.registry import Registry

#: A listing longer than this many pages is treated as a registry loop.
MAX_PAGES: Final = 10_000


def paginate(
    reg: Registry, path: str, key: str, scopes: tuple[str, ...], what: str, page_size: int
) -> list[str]:
    """Follow ``Link: <…>; rel="next"``; without one, a full page asks on with ``last``.

    Each page is read with a cap (:data:`~oci_normalize.limits.MAX_LISTING_PAGE`), the
    whole listing holds at most :func:`~oci_normalize.limits.max_listed_names` names, a
    ``next`` link must stay on the registry and never repeat. Names are returned as sent:
    the caller parses them like user input before using one.
    """
    out: list[str] = []
    cap = limits.max_listed_names()
    url: str | None = reg._url(path)
    params: dict[str, Any] | None = {"n": page_size}
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        if url is None:
            return out
        resp = reg._request(
            "GET", url, scopes=scopes, what=what, params=params, max_body=MAX_LISTING_PAGE
        )
        raise_for_status(resp, what, kind="repository")
        items = _listed(resp.content, key, what)
        out.extend(items)
        if len(out) > cap:
            raise RegistryError(
                f"{what}: more than {cap} names (set {limits.ENV_MAX_LISTED_NAMES} to allow more)"
            )
        nxt = resp.links.get("next", {}).get("url")
        if nxt:
            url, params = _same_registry(reg, urljoin(url, nxt), what), None
        elif len(items) == page_size and items:
            url, params = reg._url(path), {"n": page_size, "last": items[-1]}
        else:
            url = None
        marker = f"{url} {params}"
        if url is not None and marker in seen:
            raise RegistryError(f"{what}: the registry's pagination goes round in a loop")
        seen.add(marker)
    raise RegistryError(f"{what}: more than {MAX_PAGES} pages")


def iter_pages(
    reg: Registry, path: str, key: str, scopes: tuple[str, ...], what: str, page_size: int
) -> Iterator[list[str]]:
    """:func:`paginate`, one page at a time: the next page is asked for only when the caller
    wants it, so a listing of any length is held a page at a time. The same caps and checks,
    except that the number of names is not bounded (the caller holds none of them)."""
    url: str | None = reg._url(path)
    params: dict[str, Any] | None = {"n": page_size}
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        if url is None:
            return
        resp = reg._request(
            "GET", url, scopes=scopes, what=what, params=params, max_body=MAX_LISTING_PAGE
        )
        raise_for_status(resp, what, kind="repository")
        items = _listed(resp.content, key, what)
        nxt = resp.links.get("next", {}).get("url")
        if nxt:
            url, params = _same_registry(reg, urljoin(url, nxt), what), None
        elif len(items) == page_size and items:
            url, params = reg._url(path), {"n": page_size, "last": items[-1]}
        else:
            url = None
        marker = f"{url} {params}"
        if url is not None and marker in seen:
            raise RegistryError(f"{what}: the registry's pagination goes round in a loop")
        seen.add(marker)
        yield items
    raise RegistryError(f"{what}: more than {MAX_PAGES} pages")


def _same_registry(reg: Registry, url: str, what: str) -> str:
    """A pagination link, refused unless it stays on this registry's origin."""
    if origin(url) != origin(reg.base_url) or not urlsplit(url).path.startswith("/v2/"):
        raise RegistryError(
            f"{what}: the registry's next-page link leaves it ({printable(url, limit=120)})"
        )
    return url


def referrers(reg: Registry, repository: str, digest: Digest) -> bytes | None:
    """The referrers API's index for ``digest``, or None when the registry lacks the API.

    A registry with the API answers 200 for any digest (an empty index when nothing
    refers to it); distribution 2.8 answers a plain 404 (or 400/405 elsewhere). Auth
    failures still raise. The index is capped like a manifest; Link pagination is followed.
    """
    what = f"referrers of {reg.registry}/{repository}@{digest}"
    url: str | None = reg._url(f"{repository}/referrers/{digest}")
    merged: dict[str, Any] | None = None
    seen: set[str | None] = {url}
    while url:
        resp = reg._request(
            "GET",
            url,
            scopes=(f"repository:{repository}:pull",),
            what=what,
            headers={"Accept": mt.OCI_INDEX},
            stream=True,
        )
        with resp:
            if merged is None and resp.status_code in (400, 404, 405):
                code, message = read_errors(resp)
                cls = ERROR_CLASSES.get(code or "")
                if cls is None or code in ("MANIFEST_UNKNOWN", "BLOB_UNKNOWN"):
                    return None
                raise cls(f"{what}: {code}: {message}", status=resp.status_code, code=code)
            raise_for_status(resp, what, kind="referrers")
            data = reg._read_capped(resp, what)
        try:
            page = parse_body(data, what)
            entries = page.get("manifests") or []
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise TypeError("manifests is not a list of descriptors")
            for i, entry in enumerate(entries):
                check_type_fields(entry, f"{what}: manifests[{i}]")
        except (ValueError, AttributeError, TypeError, MalformedManifestError) as exc:
            raise RegistryError(f"{what}: the registry answered with a malformed index") from exc
        if merged is None:
            merged = page
        else:
            merged["manifests"] = [*(merged.get("manifests") or []), *entries]
        if len(merged.get("manifests") or []) > limits.max_listed_names():
            raise RegistryError(f"{what}: more referrers than {limits.max_listed_names()}")
        nxt = resp.links.get("next", {}).get("url")
        url = _same_registry(reg, urljoin(url, nxt), what) if nxt else None
        if url in seen:
            raise RegistryError(f"{what}: the registry's pagination goes round in a loop")
        seen.add(url)
    return json.dumps(merged).encode()


def _listed(data: bytes, key: str, what: str) -> list[str]:
    """The names of one listing page: a JSON object whose ``key`` is a list of strings."""
    try:
        items = parse_body(data, what).get(key) or []
    except MalformedManifestError as exc:
        raise RegistryError(f"{what}: the registry answered with broken JSON") from exc
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise RegistryError(f"{what}: the registry's {key!r} is not a list of names")
    return items
