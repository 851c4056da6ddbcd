"""One exception tree for the whole tool; only the CLI turns these into exit codes.

::

    OciNormalizeError
    ├── InvalidReferenceError      malformed image reference
    ├── InvalidDigestError         malformed digest string
    ├── ContentError               bytes that cannot be trusted or understood
    │   ├── DigestMismatchError    bytes do not hash to the digest they were fetched by
    │   ├── ManifestTooLargeError  manifest body over the size cap
    │   └── MalformedManifestError not JSON / not a manifest shape
    ├── UnsupportedMediaTypeError  Docker type with no OCI twin, schema1, unknown root type
    ├── RegistryError              the registry answered with an error (code, status)
    │   ├── NotFoundError          repository, tag or blob unknown
    │   ├── UnauthorizedError      401: no or wrong credentials
    │   ├── DeniedError            403 / DENIED: credentials lack access
    │   └── RateLimitedError       429 still answered after every retry
    ├── TransportError             connection, TLS or timeout failure (``retryable`` says which)
    │   └── TLSFailureError        certificate or handshake failure: never retried
    ├── CredentialError            a credential source is broken (bad config file, helper failed)
    ├── PushError                  pushed, but the result did not verify
    │   └── TagMovedError          the guard found the tag moved since it was read: not tagged
    ├── RefusedError               would break what points at the old digest (signatures,
    │                              a backup tag that points elsewhere); nothing was changed
    ├── JournalError               a batch journal that cannot be opened, written or read
    └── HookError                  a --sign-with command that failed, hung or cannot be parsed

Messages never contain credentials: callers pass only references, URLs without userinfo, and
registry error codes/messages.

:class:`RegistryError` and :class:`TransportError` also carry the request they answer, as
structured fields beside the one-line message: ``method``, ``url`` (credentials and query secrets
already masked by the HTTP layer) and, for an answer, ``status`` and ``code``.
"""

from __future__ import annotations


class OciNormalizeError(Exception):
    """Base of every error this package raises on purpose."""


class InvalidReferenceError(OciNormalizeError, ValueError):
    """A reference string that does not parse."""


class InvalidDigestError(OciNormalizeError, ValueError):
    """A digest string with an unknown algorithm or a bad hex part."""


class ContentError(OciNormalizeError):
    """Content that cannot be trusted or understood."""


class DigestMismatchError(ContentError):
    """Bytes that do not match the digest they were requested or announced by."""


class ManifestTooLargeError(ContentError):
    """A manifest body larger than the cap we accept."""


class MalformedManifestError(ContentError):
    """A manifest body that is not JSON or not shaped like a manifest or index."""


class UnsupportedMediaTypeError(OciNormalizeError):
    """A media type we refuse to convert (no OCI twin, schema1, unknown manifest type)."""


class RegistryError(OciNormalizeError):
    """An error answer from a registry; ``code`` is the distribution-spec error code if any.

    ``method`` and ``url`` name the request answered (``url`` without credentials or query
    secrets); each is None when the error is not about one request.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.method = method
        self.url = url


class NotFoundError(RegistryError):
    """Repository, manifest or blob unknown to the registry."""


class UnauthorizedError(RegistryError):
    """The registry wants (other) credentials."""


class DeniedError(RegistryError):
    """The credentials are valid but lack the access asked for."""


class RateLimitedError(RegistryError):
    """The registry kept answering 429 Too Many Requests until the retry budget ran out."""


class TransportError(OciNormalizeError):
    """Connection refused or reset, TLS failure, timeout.

    ``method`` and ``url`` name the request that failed (``url`` without credentials or query
    secrets), when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.method = method
        self.url = url


class TLSFailureError(TransportError):
    """The TLS handshake or the certificate check failed; retrying will not help."""

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        super().__init__(message, retryable=False, method=method, url=url)


class CredentialError(OciNormalizeError):
    """A credential source that exists but cannot be used (malformed file, failing helper)."""


class PushError(OciNormalizeError):
    """A push that did not end where it should have (verification failed, tag moved)."""


class TagMovedError(PushError):
    """The guard re-read the tag just before moving it and found another writer's digest."""


class RefusedError(OciNormalizeError):
    """A change refused before anything moved, because it would break something.

    ``details`` are JSON-ready dicts naming what would break (for ``--json`` output).
    """

    def __init__(self, message: str, *, details: tuple[dict[str, object], ...] = ()):
        super().__init__(message)
        self.details = details


class JournalError(OciNormalizeError):
    """A batch journal that cannot be opened, written or read."""


class HookError(OciNormalizeError):
    """A ``--sign-with`` command that cannot be parsed, could not start, exited non-zero or ran
    past its timeout. Raised for one manifest: its tag is not moved (``batch`` and ``convert``
    count the reference failed, exit 3). The message names the manifest, the new digest, the
    exit status (or the timeout) and the command's capped stderr, every secret masked."""
