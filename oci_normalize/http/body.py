"""Reading answer bodies under the trust rules: capped, deadlined, failures made ours.

:func:`preload` reads a body the caller did not stream, with a cap; :func:`close_ends` makes
closing a streamed answer end its deadline; :class:`StreamedBody` wraps a streamed blob so that a
deadline or a broken connection surfaces as the tool's own error; :func:`read_manifest_body` and
:func:`blob_body` are what the registry client uses for manifests and blobs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import requests

from oci_normalize.errors import ManifestTooLargeError, RegistryError, TransportError
from oci_normalize.http.deadline import Deadline
from oci_normalize.limits import BLOB_WITHOUT_LENGTH_S, min_blob_rate, parse_count

#: Turns a failed body read into the error to raise (see ``Transport.body_error``).
BodyFailure = Callable[[requests.Response, str, Exception], TransportError]


def read_capped(resp: requests.Response, cap: int, what: str) -> bytes:
    """A manifest-sized body, refused past ``cap`` by its Content-Length or as it streams."""
    length = parse_count(resp.headers.get("Content-Length") or "")
    if length is not None and length > cap:
        raise ManifestTooLargeError(f"{what}: manifest is {length} bytes, over the {cap} cap")
    buf = bytearray()
    for chunk in resp.iter_content(64 * 1024):
        buf += chunk
        if len(buf) > cap:
            raise ManifestTooLargeError(f"{what}: manifest is over the {cap} byte cap")
    return bytes(buf)


def read_manifest_body(resp: requests.Response, cap: int, what: str, failed: BodyFailure) -> bytes:
    """A streamed manifest-sized body, capped; a broken or too slow one is our error."""
    try:
        data = read_capped(resp, cap, what)
    except (requests.RequestException, OSError) as exc:
        raise failed(resp, what, exc) from exc
    deadline = getattr(resp, "deadline", None)
    if isinstance(deadline, Deadline) and deadline.expired:  # cut short, maybe silently
        raise failed(resp, what, TimeoutError())
    return data


def blob_body(resp: requests.Response, what: str, failed: BodyFailure) -> StreamedBody:
    """A streamed blob, given time for its size: beyond the response deadline, its announced
    length at :func:`~oci_normalize.limits.min_blob_rate` (a length that lies is caught by the
    size check of the copy)."""
    deadline = getattr(resp, "deadline", None)
    if isinstance(deadline, Deadline):
        length = parse_count(resp.headers.get("Content-Length", ""))
        deadline.extend(BLOB_WITHOUT_LENGTH_S if length is None else length / min_blob_rate())
    return StreamedBody(resp, what, failed)


class StreamedBody:
    """A streamed answer (a blob) whose read failures are ours: the deadline passed, or the
    connection broke. Shaped like the response it wraps for the few things callers use."""

    def __init__(self, resp: requests.Response, what: str, failed: BodyFailure) -> None:
        self._failed = failed
        self._resp = resp
        self._what = what
        self.headers = resp.headers
        self.status_code = resp.status_code

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from self._resp.iter_content(chunk_size)
        except (requests.RequestException, OSError) as exc:
            raise self._failed(self._resp, self._what, exc) from exc
        deadline = getattr(self._resp, "deadline", None)
        if isinstance(deadline, Deadline) and deadline.expired:  # cut short, maybe silently
            raise self._failed(self._resp, self._what, TimeoutError())

    def close(self) -> None:
        self._resp.close()

    def __enter__(self) -> StreamedBody:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def close_ends(resp: requests.Response, deadline: Deadline) -> None:
    """Closing ``resp`` disarms its deadline (the connection may serve another request next)."""
    close = resp.close

    def closing() -> None:
        deadline.disarm()
        close()

    resp.close = closing  # type: ignore[method-assign]


def preload(resp: requests.Response, cap: int, what: str) -> None:
    """Read a body the caller did not stream, at most ``cap`` bytes, as ``resp.content``.

    The caller closes ``resp`` (once fully read, that only hands the connection back)."""
    buf = bytearray()
    over = False
    for chunk in resp.iter_content(64 * 1024):
        buf += chunk
        if len(buf) > cap:
            over = True
            break
    resp._content = bytes(buf[:cap])  # noqa: SLF001 - requests' own slot for the body
    if over:
        resp.raw.close()  # the rest is never read: this connection cannot be reused
    resp._content_consumed = True  # type: ignore[attr-defined]  # noqa: SLF001
    if over and resp.status_code < 300:
        resp.close()
        raise RegistryError(f"{what}: the registry's answer is over the {cap} byte cap")
