"""A distribution-spec client for one registry host on one pooled ``requests.Session``.

Every request goes through :meth:`Registry._request`, which adds the Authorization header,
answers one 401 challenge, counts requests and turns transport failures into
:class:`~oci_normalize.errors.TransportError`. Error answers become exceptions in one place,
:func:`raise_for_status`, which reads at most :data:`MAX_ERROR_BODY` bytes of the body.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urljoin

import requests

from . import mediatypes as mt
from .auth import ANONYMOUS, Authenticator, Credential
from .digest import Digest
from .errors import (
    DeniedError,
    DigestMismatchError,
    InvalidDigestError,
    ManifestTooLargeError,
    NotFoundError,
    RegistryError,
    TransportError,
    UnauthorizedError,
)
from .reference import Reference

MAX_MANIFEST_BYTES: Final = 4 * 1024 * 1024
MAX_ERROR_BODY: Final = 64 * 1024
CONNECT_TIMEOUT_S: Final = 10.0
READ_TIMEOUT_S: Final = 60.0
CHUNK: Final = 1024 * 1024
USER_AGENT: Final = "oci-normalize/0.1"


@dataclass(frozen=True, kw_only=True)
class ClientOptions:
    plain_http: bool = False
    insecure: bool = False
    ca_file: str | None = None
    connect_timeout: float = CONNECT_TIMEOUT_S
    read_timeout: float = READ_TIMEOUT_S
    max_manifest_bytes: int = MAX_MANIFEST_BYTES


DEFAULT_OPTIONS: Final = ClientOptions()


@dataclass(frozen=True)
class Fetched:
    data: bytes
    media_type: str  # effective type: body mediaType, else Content-Type
    digest: Digest


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


class Registry:
    """Client for the registry serving ``reference.api_host``."""

    def __init__(
        self,
        reference: Reference,
        *,
        options: ClientOptions = DEFAULT_OPTIONS,
        credential: Credential = ANONYMOUS,
        session: requests.Session | None = None,
    ) -> None:
        self.registry = reference.registry
        scheme = "http" if (options.plain_http or reference.is_loopback) else "https"
        self.base_url = f"{scheme}://{reference.api_host}/v2/"
        self.options = options
        self._session = session or requests.Session()
        self._session.headers.setdefault("User-Agent", USER_AGENT)
        verify: bool | str = options.ca_file or True
        if options.insecure:
            verify = False
        self._verify = verify
        self._timeout = (options.connect_timeout, options.read_timeout)
        self.auth = Authenticator(self._session, credential, timeout=self._timeout, verify=verify)
        self._count_lock = threading.Lock()
        self.requests = 0

    # ---- plumbing ---------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return urljoin(self.base_url, path)

    def _request(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: tuple[str, ...],
        what: str,
        retry_auth: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        url = path_or_url if "://" in path_or_url else self._url(path_or_url)
        headers: dict[str, str] = dict(kwargs.pop("headers", None) or {})
        for attempt in (1, 2):
            auth_header = self.auth.header(scopes)
            if auth_header:
                headers["Authorization"] = auth_header
            try:
                resp = self._session.request(
                    method,
                    url,
                    headers=headers,
                    timeout=self._timeout,
                    verify=self._verify,
                    **kwargs,
                )
            except requests.exceptions.SSLError as exc:
                raise TransportError(f"{what}: TLS failure talking to {self.registry}") from exc
            except requests.exceptions.Timeout as exc:
                raise TransportError(f"{what}: {self.registry} timed out") from exc
            except requests.RequestException as exc:
                raise TransportError(
                    f"{what}: cannot reach {self.registry} ({type(exc).__name__})"
                ) from exc
            with self._count_lock:
                self.requests += 1
            if resp.status_code != 401 or attempt == 2 or not retry_auth:
                return resp
            self.auth.answer(resp, scopes, what)
            resp.close()
        raise AssertionError("unreachable")

    # ---- manifests --------------------------------------------------------------------------

    def get_manifest(
        self, repository: str, ref: str, *, expected: Digest | None = None, what: str = ""
    ) -> Fetched:
        """GET a manifest, capped in size and verified against its digest."""
        what = what or f"{self.registry}/{repository}@{ref}"
        resp = self._request(
            "GET",
            f"{repository}/manifests/{quote(ref, safe=':')}",
            scopes=(pull_scope(repository),),
            what=what,
            headers={"Accept": mt.MANIFEST_ACCEPT},
            stream=True,
        )
        with resp:
            raise_for_status(resp, what, kind="manifest")
            data = _read_capped(resp, self.options.max_manifest_bytes, what)
        content_type = resp.headers.get("Content-Type", "")
        header = resp.headers.get("Docker-Content-Digest")
        digest = _verify_manifest(data, content_type, expected, header, what)
        return Fetched(
            data=data, media_type=effective_media_type(data, content_type), digest=digest
        )

    def head_manifest(self, repository: str, ref: str) -> Digest | None:
        """The digest a tag or digest resolves to, or None when unknown."""
        what = f"{self.registry}/{repository}:{ref}"
        resp = self._request(
            "HEAD",
            f"{repository}/manifests/{quote(ref, safe=':')}",
            scopes=(pull_scope(repository),),
            what=what,
            headers={"Accept": mt.MANIFEST_ACCEPT},
        )
        if resp.status_code == 404:
            return None
        raise_for_status(resp, what, kind="manifest")
        header = resp.headers.get("Docker-Content-Digest")
        if header:
            return _parse_header_digest(header, what)
        # Some registries omit the header on HEAD: fall back to a GET.
        return self.get_manifest(repository, ref, what=what).digest

    def put_manifest(self, repository: str, ref: str, data: bytes, media_type: str) -> Digest:
        what = f"push {self.registry}/{repository}:{ref}"
        digest = Digest.of(data)
        resp = self._request(
            "PUT",
            f"{repository}/manifests/{quote(ref, safe=':')}",
            scopes=(push_scope(repository),),
            what=what,
            headers={"Content-Type": media_type},
            data=data,
        )
        raise_for_status(resp, what, kind="manifest")
        returned = resp.headers.get("Docker-Content-Digest")
        if returned and _parse_header_digest(returned, what) != digest:
            raise DigestMismatchError(f"{what}: registry stored {returned}, we sent {digest}")
        return digest

    # ---- blobs ------------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: Digest) -> bool:
        what = f"{self.registry}/{repository}@{digest}"
        resp = self._request(
            "HEAD", f"{repository}/blobs/{digest}", scopes=(pull_scope(repository),), what=what
        )
        if resp.status_code == 404:
            return False
        raise_for_status(resp, what, kind="blob")
        return True

    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        """Try a cross-repository mount; True when the blob is now in ``repository``."""
        what = f"mount {digest.short} into {self.registry}/{repository}"
        resp = self._request(
            "POST",
            f"{repository}/blobs/uploads/",
            scopes=(push_scope(repository), pull_scope(from_repository)),
            what=what,
            params={"mount": str(digest), "from": from_repository},
        )
        if resp.status_code == 201:
            return True
        raise_for_status(resp, what, kind="blob")
        # 202: the registry opened an upload session instead; leave it unused (it expires).
        return False

    def open_blob(self, repository: str, digest: Digest) -> requests.Response:
        """A streaming GET of a blob; the caller closes it and checks the digest."""
        what = f"{self.registry}/{repository}@{digest}"
        resp = self._request(
            "GET",
            f"{repository}/blobs/{digest}",
            scopes=(pull_scope(repository),),
            what=what,
            stream=True,
        )
        raise_for_status(resp, what, kind="blob")
        return resp

    def upload_blob(
        self, repository: str, digest: Digest, size: int, chunks: Iterable[bytes]
    ) -> None:
        """Upload a blob as one streamed PUT (POST for the session first, so auth is settled)."""
        what = f"upload {digest.short} to {self.registry}/{repository}"
        scopes = (push_scope(repository),)
        resp = self._request("POST", f"{repository}/blobs/uploads/", scopes=scopes, what=what)
        raise_for_status(resp, what, kind="blob")
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"{what}: registry gave no upload location")
        url = urljoin(self.base_url, location)
        sep = "&" if "?" in url else "?"
        body = _SizedStream(chunks, size)
        resp = self._request(
            "PUT",
            f"{url}{sep}digest={quote(str(digest), safe='')}",
            scopes=scopes,
            what=what,
            retry_auth=False,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            data=body,
        )
        raise_for_status(resp, what, kind="blob")

    # ---- listings ---------------------------------------------------------------------------

    def list_tags(self, repository: str, *, page_size: int = 1000) -> list[str]:
        what = f"list tags of {self.registry}/{repository}"
        return self._paginate(
            f"{repository}/tags/list", "tags", (pull_scope(repository),), what, page_size
        )

    def catalog(self, *, page_size: int = 1000) -> list[str]:
        what = f"catalog of {self.registry}"
        return self._paginate("_catalog", "repositories", ("registry:catalog:*",), what, page_size)

    def _paginate(
        self, path: str, key: str, scopes: tuple[str, ...], what: str, page_size: int
    ) -> list[str]:
        out: list[str] = []
        url: str | None = self._url(path)
        params: dict[str, Any] | None = {"n": page_size}
        while url:
            resp = self._request("GET", url, scopes=scopes, what=what, params=params)
            raise_for_status(resp, what, kind="repository")
            try:
                items = resp.json().get(key) or []
            except ValueError as exc:
                raise RegistryError(f"{what}: the registry answered with broken JSON") from exc
            out.extend(str(i) for i in items)
            nxt = resp.links.get("next", {}).get("url")
            url = urljoin(url, nxt) if nxt else None
            params = None
        return out


# ---- helpers ----------------------------------------------------------------------------------


class _SizedStream:
    """An iterable body with a known length, so requests sends Content-Length, not chunks."""

    def __init__(self, chunks: Iterable[bytes], size: int) -> None:
        self._chunks = chunks
        self._size = size

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)


def effective_media_type(data: bytes, content_type: str, fallback: str = "") -> str:
    """The body's ``mediaType`` when present, else the Content-Type, else ``fallback``."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("mediaType"), str) and body["mediaType"]:
        return mt.base(body["mediaType"])
    if isinstance(body, dict) and body.get("schemaVersion") == 1:
        ctype = mt.base(content_type)
        return ctype if mt.is_schema1(ctype) else mt.DOCKER_SCHEMA1_SIGNED
    ctype = mt.base(content_type)
    if mt.is_manifest(ctype):
        return ctype
    return fallback or ctype


def _read_capped(resp: requests.Response, cap: int, what: str) -> bytes:
    length = resp.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > cap:
        raise ManifestTooLargeError(f"{what}: manifest is {length} bytes, over the {cap} cap")
    buf = bytearray()
    for chunk in resp.iter_content(64 * 1024):
        buf += chunk
        if len(buf) > cap:
            raise ManifestTooLargeError(f"{what}: manifest is over the {cap} byte cap")
    return bytes(buf)


def _parse_header_digest(value: str, what: str) -> Digest:
    try:
        return Digest.parse(value.strip())
    except InvalidDigestError as exc:
        raise RegistryError(f"{what}: registry sent a bad Docker-Content-Digest") from exc


def _verify_manifest(
    data: bytes, media_type: str, expected: Digest | None, header: str | None, what: str
) -> Digest:
    # A signed schema1 manifest is identified by its JWS payload, without the signatures.
    content = jws_payload(data) if mt.base(media_type) == mt.DOCKER_SCHEMA1_SIGNED else data
    if expected is not None:
        expected.verify(content, what)
        return expected if expected.algorithm == "sha256" else Digest.of(content)
    if header:
        announced = _parse_header_digest(header, what)
        announced.verify(content, what)
    return Digest.of(content)


def jws_payload(data: bytes) -> bytes:
    """The signed payload of a Docker schema1 "pretty JWS" manifest (what its digest covers).

    Each signature's protected header names ``formatLength`` (bytes of the body before the
    signatures) and ``formatTail`` (base64url of the closing bytes that replace them).
    Unsigned or unparseable bodies are returned unchanged.
    """
    try:
        body = json.loads(data)
        protected = body["signatures"][0]["protected"]
        header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
        length = int(header["formatLength"])
        tail_b64 = str(header["formatTail"])
        tail = base64.urlsafe_b64decode(tail_b64 + "=" * (-len(tail_b64) % 4))
    except (ValueError, KeyError, IndexError, TypeError):
        return data
    if not 0 < length <= len(data):
        return data
    return data[:length] + tail


_CODES: Final = {
    "MANIFEST_UNKNOWN": NotFoundError,
    "NAME_UNKNOWN": NotFoundError,
    "BLOB_UNKNOWN": NotFoundError,
    "DENIED": DeniedError,
    "UNAUTHORIZED": UnauthorizedError,
}


def raise_for_status(resp: requests.Response, what: str, *, kind: str) -> None:
    """Turn a non-2xx answer into one exception carrying the registry's error code."""
    if resp.status_code < 300:
        return
    code, message = _read_errors(resp)
    status = resp.status_code
    if code:
        detail = f"{code}: {message}" if message else code
    else:
        detail = f"HTTP {status} {resp.reason or ''}".strip()
    text = f"{what}: {detail}"
    if status == 413:
        raise ManifestTooLargeError(f"{what}: the registry refused the size (HTTP 413)")
    cls = _CODES.get(code or "")
    if cls is NotFoundError or (cls is None and status == 404):
        noun = "repository" if code == "NAME_UNKNOWN" else kind
        raise NotFoundError(f"{what}: {noun} not found ({detail})", status=status, code=code)
    if cls is None:
        if status == 404:
            cls = NotFoundError
        elif status == 401:
            cls = UnauthorizedError
        elif status == 403:
            cls = DeniedError
        else:
            cls = RegistryError
    raise cls(text, status=status, code=code)


def _read_errors(resp: requests.Response) -> tuple[str | None, str]:
    raw = bytearray()
    try:
        for chunk in resp.iter_content(8192):
            raw += chunk
            if len(raw) >= MAX_ERROR_BODY:
                break
    except (requests.RequestException, OSError):
        pass  # an unreadable error body must not hide the error itself
    try:
        errors = json.loads(bytes(raw[:MAX_ERROR_BODY])).get("errors") or []
        first = errors[0]
        return str(first.get("code") or "") or None, str(first.get("message") or "")[:300]
    except (ValueError, AttributeError, IndexError, TypeError):
        return None, ""
