"""A distribution-spec client for one registry host on one pooled ``requests.Session``.

Every request goes through :meth:`Registry.request` (body read with a cap) or
:meth:`Registry.open` (body streamed), which hand it to a
:class:`~oci_normalize.http.transport.Transport`: Authorization header, one 401 challenge,
redirects, retries of transient failures (:mod:`oci_normalize.http.retry`), request counting and
translation of transport failures. Error answers become exceptions in one place,
:func:`~oci_normalize.http.status.raise_for_status`; each names the request it answers.
Writes survive lost answers: a manifest PUT or blob upload whose answer never came is checked
with a HEAD before it is reported as failed, and a blob upload is retried as a whole session
with a freshly opened body.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any, Final, NoReturn
from urllib.parse import quote, urljoin

import requests
from requests import Response

from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import (
    DigestMismatchError,
    OciNormalizeError,
    RegistryError,
    TransportError,
)
from oci_normalize.http import env as httpenv
from oci_normalize.http.auth import ANONYMOUS, Authenticator, Credential
from oci_normalize.http.body import Reply, StreamedBody, blob_body, read_manifest_body
from oci_normalize.http.requestline import RequestLine
from oci_normalize.http.retry import Again, retrying
from oci_normalize.http.status import raise_for_status
from oci_normalize.http.transport import Transport
from oci_normalize.limits import MAX_ERROR_BODY
from oci_normalize.manifest import (
    BodyOpener,
    VerifiedManifest,
    effective_media_type,
    parse_header_digest,
    verify_manifest,
)
from oci_normalize.options import DEFAULT_CLIENT_OPTIONS, ClientOptions
from oci_normalize.reference import Reference
from oci_normalize.store import listing

USER_AGENT: Final = "oci-normalize/0.1"


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
        options: ClientOptions = DEFAULT_CLIENT_OPTIONS,
        credential: Credential = ANONYMOUS,
        session: requests.Session | None = None,
    ) -> None:
        self.name = reference.registry
        # Loopback registries speak plain HTTP unless a TLS flag (--ca-file, --insecure) says
        # the user expects TLS there.
        wants_tls = bool(options.ca_file) or options.insecure
        plain = options.plain_http or (reference.is_loopback and not wants_tls)
        scheme = "http" if plain else "https"
        self.base_url = f"{scheme}://{reference.api_host}/v2/"
        self.options = options
        self._session = session or httpenv.new_session()
        self._session.headers["User-Agent"] = USER_AGENT
        verify: bool | str = options.ca_file or True
        if options.insecure:
            verify = False
        timeout = (options.connect_timeout, options.read_timeout)
        self.auth = Authenticator(
            self._session,
            credential,
            timeout=timeout,
            verify=verify,
            allow_plain_http=options.plain_http,
            clock=options.clock,
        )
        self.transport = Transport(
            registry=self.name,
            base_url=self.base_url,
            session=self._session,
            auth=self.auth,
            timeout=timeout,
            verify=verify,
            retry=options.retry,
            clock=options.clock,
        )

    @property
    def requests(self) -> int:
        """Requests sent so far, retries included (token requests are counted by ``auth``)."""
        return self.transport.requests

    @property
    def retries(self) -> int:
        return self.transport.retries

    # ---- requests ---------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (``app/tags/list``) under :attr:`base_url`."""
        # Paths here are built from checked names (no dot segments): joining is concatenation.
        if self.base_url.endswith("/") and not path.startswith("/"):
            return self.base_url + path
        return urljoin(self.base_url, path)

    def _absolute(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else self.url(path_or_url)

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: tuple[str, ...],
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        data: Any = None,
        max_body: int = MAX_ERROR_BODY,
        retry_auth: bool = True,
        replayable: bool = True,
    ) -> Reply:
        """Send one request (a path under :attr:`base_url` or a URL on the registry) and read
        its answer's body, at most ``max_body`` bytes. Judge the answer with
        :func:`~oci_normalize.http.status.raise_for_status`."""
        return self.transport.request(
            method,
            self._absolute(path_or_url),
            scopes=scopes,
            headers=headers,
            params=params,
            data=data,
            max_body=max_body,
            retry_auth=retry_auth,
            replayable=replayable,
        )

    def open(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: tuple[str, ...],
        headers: dict[str, str] | None = None,
    ) -> Response:
        """:meth:`request` for a body the caller streams; the caller closes the answer."""
        return self.transport.open(
            method, self._absolute(path_or_url), scopes=scopes, headers=headers
        )

    def read_manifest_body(self, resp: Response) -> bytes:
        """A streamed manifest-sized body, capped at ``options.max_manifest_bytes``."""
        return read_manifest_body(resp, self.options.max_manifest_bytes, self.transport.body_error)

    # ---- manifests --------------------------------------------------------------------------

    def get_manifest(
        self, repository: str, ref: str, *, expected: Digest | None = None, what: str = ""
    ) -> VerifiedManifest:
        """GET a manifest, capped in size and verified against its digest.

        ``what`` names the manifest in messages about its content (default: the reference);
        errors of the request itself name the request.
        """
        what = what or f"{self.name}/{repository}@{ref}"
        resp = self.open(
            "GET",
            f"{repository}/manifests/{quote(ref, safe=':')}",
            scopes=(pull_scope(repository),),
            headers={"Accept": mt.MANIFEST_ACCEPT},
        )
        with resp:
            raise_for_status(resp)
            data = self.read_manifest_body(resp)
        content_type = resp.headers.get("Content-Type", "")
        header = resp.headers.get("Docker-Content-Digest")
        media_type = effective_media_type(data, content_type)
        digest, content = verify_manifest(data, media_type, expected, header, what)
        if content is not data:  # a signed schema1 body: only its payload is used
            media_type = effective_media_type(content, content_type)
        signed = data if content is not data else None
        return VerifiedManifest(
            data=content, media_type=media_type, digest=digest, size=len(data), signed=signed
        )

    def head_manifest(self, repository: str, ref: str) -> Digest | None:
        """The digest a tag or digest resolves to, or None when unknown."""
        reply = self.request(
            "HEAD",
            f"{repository}/manifests/{quote(ref, safe=':')}",
            scopes=(pull_scope(repository),),
            headers={"Accept": mt.MANIFEST_ACCEPT},
        )
        if reply.status_code == 404:
            return None
        raise_for_status(reply)
        header = reply.headers.get("Docker-Content-Digest")
        if header:
            return parse_header_digest(header, RequestLine.answered(reply).context)
        # Some registries omit the header on HEAD: fall back to a GET.
        return self.get_manifest(repository, ref).digest

    def put_manifest(self, repository: str, ref: str, data: bytes, media_type: str) -> Digest:
        """PUT a manifest by digest or tag; a failure whose PUT may have landed is re-checked."""
        return self.put_manifest_confirmed(repository, ref, data, media_type)[0]

    def put_manifest_confirmed(
        self, repository: str, ref: str, data: bytes, media_type: str
    ) -> tuple[Digest, bool]:
        """:meth:`put_manifest`, also telling whether the registry confirmed storing exactly
        these bytes under ``ref``: its answer echoed our digest in ``Docker-Content-Digest``
        (optional in the OCI spec, hence the flag), or a re-check after a lost answer did."""
        path = f"{repository}/manifests/{quote(ref, safe=':')}"
        line = RequestLine.of("PUT", self.url(path))
        # What the registry will call it: a signed schema1 body is named by its JWS payload.
        digest, _ = verify_manifest(data, mt.base(media_type), None, None, line.context)
        try:
            reply = self.request(
                "PUT",
                path,
                scopes=(push_scope(repository),),
                headers={"Content-Type": media_type},
                data=data,
            )
            raise_for_status(reply)
        except (TransportError, RegistryError) as exc:
            if not _may_have_landed(exc) or not self._manifest_landed(repository, ref, digest):
                raise
            return digest, True
        returned = reply.headers.get("Docker-Content-Digest")
        if returned and parse_header_digest(returned, line.context) != digest:
            raise DigestMismatchError(
                f"{line.context}: registry stored {returned}, we sent {digest}"
            )
        return digest, bool(returned)

    def _manifest_landed(self, repository: str, ref: str, digest: Digest) -> bool:
        """After a lost answer: is ``digest`` stored, and does ``ref`` (a tag) point at it?"""
        with contextlib.suppress(OciNormalizeError):
            if self.head_manifest(repository, str(digest)) != digest:
                return False
            return ref == str(digest) or self.head_manifest(repository, ref) == digest
        return False

    # ---- blobs ------------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: Digest) -> bool:
        reply = self.request(
            "HEAD", f"{repository}/blobs/{digest}", scopes=(pull_scope(repository),)
        )
        if reply.status_code == 404:
            return False
        raise_for_status(reply)
        return True

    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        """Try a cross-repository mount; True when the blob is now in ``repository``."""
        reply = self.request(
            "POST",
            f"{repository}/blobs/uploads/",
            scopes=(push_scope(repository), pull_scope(from_repository)),
            params={"mount": str(digest), "from": from_repository},
        )
        if reply.status_code == 201:
            return True
        raise_for_status(reply)
        # 202: the registry opened an upload session instead; leave it unused (it expires).
        return False

    def open_blob(self, repository: str, digest: Digest) -> StreamedBody:
        """A streaming GET of a blob; the caller closes it and checks the digest."""
        resp = self.open("GET", f"{repository}/blobs/{digest}", scopes=(pull_scope(repository),))
        try:
            raise_for_status(resp)
        except BaseException:
            resp.close()
            raise
        return blob_body(resp, self.transport.body_error)

    def upload_blob(
        self,
        repository: str,
        digest: Digest,
        size: int,
        chunks: Iterable[bytes] | BodyOpener,
    ) -> None:
        """Upload a blob as one streamed PUT after a POST that opens the session.

        ``chunks`` is either an iterable (sent once: a stream cannot be replayed) or a
        :data:`BodyOpener`, which makes the upload retryable as a whole: each try opens a fresh
        body and a fresh session, and a try that failed after sending everything is checked
        with a HEAD first, since its PUT may have landed.
        """
        if not callable(chunks):
            self._upload_once(repository, digest, size, chunks)
            return
        opener = chunks

        def attempt() -> None | Again:
            try:
                with opener() as body:
                    self._upload_once(repository, digest, size, body)
                return None
            except (TransportError, RegistryError) as exc:
                if not _may_have_landed(exc):
                    raise
                if self._blob_landed(repository, digest):
                    return None
                return Again(give_up=partial(_reraise, exc))

        retrying(
            self.options.retry, attempt, backoff=self.transport.backoff, clock=self.options.clock
        )

    def _blob_landed(self, repository: str, digest: Digest) -> bool:
        with contextlib.suppress(OciNormalizeError):
            return self.blob_exists(repository, digest)
        return False

    def _upload_once(
        self, repository: str, digest: Digest, size: int, chunks: Iterable[bytes | memoryview]
    ) -> None:
        self._send_blob(self._open_session(repository), repository, digest, size, chunks)

    def _open_session(self, repository: str) -> str:
        """POST for an upload session; the URL to send the blob to."""
        scopes = (push_scope(repository),)
        reply = self.request("POST", f"{repository}/blobs/uploads/", scopes=scopes)
        raise_for_status(reply)
        location = reply.headers.get("Location")
        if not location:
            raise RequestLine.answered(reply).error(
                RegistryError, "registry gave no upload location"
            )
        url = urljoin(self.base_url, location)
        if not url.lower().startswith(("http://", "https://")):
            raise RequestLine.answered(reply).error(
                RegistryError, "registry gave a non-HTTP upload location"
            )
        return url

    def _send_blob(
        self,
        url: str,
        repository: str,
        digest: Digest,
        size: int,
        chunks: Iterable[bytes | memoryview],
    ) -> None:
        """The blob as one PUT with its length and ``?digest=`` to the session at ``url``."""
        sep = "&" if "?" in url else "?"
        body = _SizedStream(chunks, size)
        reply = self.request(
            "PUT",
            f"{url}{sep}digest={quote(str(digest), safe='')}",
            scopes=(push_scope(repository),),
            retry_auth=False,
            replayable=False,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            data=body,
        )
        raise_for_status(reply)

    # ---- listings (names are returned as sent: parse them before use) --------------------

    def list_tags(self, repository: str, *, page_size: int = 1000) -> list[str]:
        return listing.paginate(
            self, f"{repository}/tags/list", "tags", (pull_scope(repository),), page_size
        )

    def catalog(self, *, page_size: int = 1000) -> list[str]:
        return listing.paginate(
            self, "_catalog", "repositories", ("registry:catalog:*",), page_size
        )

    def iter_catalog(self, *, page_size: int = 1000) -> Iterator[list[str]]:
        """:meth:`catalog`, a page at a time, each asked for when the previous is used."""
        return listing.iter_pages(
            self, "_catalog", "repositories", ("registry:catalog:*",), page_size
        )

    def referrers(self, repository: str, digest: Digest) -> bytes | None:
        """The referrers API's index for ``digest``, or None (see :func:`.listing.referrers`)."""
        return listing.referrers(self, repository, digest)


# ---- helpers ----------------------------------------------------------------------------------


class _SizedStream:
    """An iterable body with a known length, so requests sends Content-Length, not chunks."""

    def __init__(self, chunks: Iterable[bytes | memoryview], size: int) -> None:
        self._chunks = chunks
        self._size = size

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes | memoryview]:
        return iter(self._chunks)


def _reraise(exc: OciNormalizeError, _tries: int) -> NoReturn:
    raise exc


def _may_have_landed(exc: OciNormalizeError) -> bool:
    """A failure after which the write may still have happened (lost answer, 5xx)."""
    if isinstance(exc, TransportError):
        return exc.retryable
    return isinstance(exc, RegistryError) and (exc.status or 0) >= 500
