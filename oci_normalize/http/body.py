"""Reading answer bodies under the trust rules: capped, deadlined, failures made ours.

:func:`read_reply` reads a body the caller did not stream, with a cap, into a :class:`Reply`;
:func:`close_ends` makes closing a streamed answer end its deadline; :class:`StreamedBody` wraps
a streamed blob so that a deadline or a broken connection surfaces as the tool's own error;
:func:`read_manifest_body` and :func:`blob_body` are what the registry client uses for manifests
and blobs. Every message names the request (:class:`~oci_normalize.http.requestline.RequestLine`).
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterator, Mapping
from typing import Final

import requests

from oci_normalize.errors import ManifestTooLargeError, RegistryError, TransportError
from oci_normalize.http.deadline import Deadline
from oci_normalize.http.requestline import RequestLine
from oci_normalize.limits import BLOB_WITHOUT_LENGTH_S, min_blob_rate, parse_count

#: Turns a failed body read into the error to raise (see ``Transport.body_error``).
BodyFailure = Callable[[requests.Response, Exception], TransportError]
#: Bytes asked of the connection per read.
CHUNK_BYTES: Final = 64 * 1024


class Reply:
    """An answer whose body was read here, at most a cap, and whose connection is released.

    Shaped like the ``requests.Response`` it came from for what callers use (status, headers,
    links, the request); the body is :attr:`body`, never read again from the connection.
    """

    def __init__(self, response: requests.Response, body: bytes) -> None:
        self.response = response
        self.body = body
        self.status_code: int = response.status_code
        self.headers: Mapping[str, str] = response.headers
        self.reason: str = response.reason or ""

    @property
    def request(self) -> requests.PreparedRequest | None:
        return self.response.request

    @property
    def url(self) -> str | None:
        return self.response.url

    @property
    def links(self) -> dict[str, dict[str, str]]:
        return self.response.links

    def close(self) -> None:
        """Nothing to release: reading the body handed the connection back."""


def read_capped(resp: requests.Response, cap: int) -> bytes:
    """A manifest-sized body, refused past ``cap`` by its Content-Length or as it streams."""
    length = parse_count(resp.headers.get("Content-Length") or "")
    if length is not None and length > cap:
        line = RequestLine.answered(resp).context
        raise ManifestTooLargeError(f"{line}: manifest is {length} bytes, over the {cap} cap")
    buf = bytearray()
    for chunk in resp.iter_content(CHUNK_BYTES):
        buf += chunk
        if len(buf) > cap:
            line = RequestLine.answered(resp).context
            raise ManifestTooLargeError(f"{line}: manifest is over the {cap} byte cap")
    return bytes(buf)


def read_manifest_body(resp: requests.Response, cap: int, failed: BodyFailure) -> bytes:
    """A streamed manifest-sized body, capped; a broken or too slow one is our error."""
    try:
        data = read_capped(resp, cap)
    except (requests.RequestException, OSError) as exc:
        raise failed(resp, exc) from exc
    deadline = getattr(resp, "deadline", None)
    if isinstance(deadline, Deadline) and deadline.expired:  # cut short, maybe silently
        raise failed(resp, TimeoutError())
    return data


def blob_body(resp: requests.Response, failed: BodyFailure) -> StreamedBody:
    """A streamed blob, given time for its size: beyond the response deadline, its announced
    length at :func:`~oci_normalize.limits.min_blob_rate` (a length that lies is caught by the
    size check of the copy)."""
    deadline = getattr(resp, "deadline", None)
    if isinstance(deadline, Deadline):
        length = parse_count(resp.headers.get("Content-Length", ""))
        deadline.extend(BLOB_WITHOUT_LENGTH_S if length is None else length / min_blob_rate())
    return StreamedBody(resp, failed)


class StreamedBody:
    """A streamed answer (a blob) whose read failures are ours: the deadline passed, or the
    connection broke. Shaped like the response it wraps for the few things callers use."""

    def __init__(self, resp: requests.Response, failed: BodyFailure) -> None:
        self._failed = failed
        self._resp = resp
        self.headers = resp.headers
        self.status_code = resp.status_code

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from self._resp.iter_content(chunk_size)
        except (requests.RequestException, OSError) as exc:
            raise self._failed(self._resp, exc) from exc
        deadline = getattr(self._resp, "deadline", None)
        if isinstance(deadline, Deadline) and deadline.expired:  # cut short, maybe silently
            raise self._failed(self._resp, TimeoutError())

    def iter_into(self, buffer: bytearray) -> Iterator[memoryview]:
        """The body read into ``buffer`` again and again, no bytes object made per read: each
        view shows part of ``buffer``, valid until the next one is asked for.

        A body sent as is is read straight from the connection (http.client's ``readinto``,
        under urllib3's response); one with a Content-Encoding goes through
        :meth:`iter_content`, which decodes it. A body that ends before its Content-Length
        fails as a broken one does there. Read to its end, the deadline is disarmed and then
        the connection goes back to the pool, in that order (see :func:`close_ends`).
        """
        fp = getattr(self._resp.raw, "_fp", None)  # http.client's response, under urllib3's
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity") or not callable(getattr(fp, "readinto", None)):
            for chunk in self.iter_content(len(buffer)):
                yield memoryview(chunk)
            return
        assert fp is not None
        view = memoryview(buffer)
        length = parse_count(self.headers.get("Content-Length", ""))
        got = 0
        try:
            while n := fp.readinto(view):
                got += n
                yield view[:n]
        except (http.client.HTTPException, OSError, ValueError) as exc:
            raise self._failed(self._resp, exc) from exc
        deadline = getattr(self._resp, "deadline", None)
        if isinstance(deadline, Deadline) and deadline.expired:  # cut short, maybe silently
            raise self._failed(self._resp, TimeoutError())
        if length is not None and got < length:  # the connection ended early
            raise self._failed(self._resp, http.client.IncompleteRead(b"", length - got))
        if isinstance(deadline, Deadline):
            deadline.disarm()
        self._resp.raw.release_conn()

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


def read_reply(resp: requests.Response, cap: int) -> Reply:
    """Read a body the caller did not stream, at most ``cap`` bytes, into a :class:`Reply`.

    A success answer longer than ``cap`` is refused; an error answer is cut there (its
    message is all that is read of it). The caller closes ``resp``: once it was read to its
    end, that only hands the connection back; when it was cut, its connection is closed here.
    """
    buf = bytearray()
    over = False
    for chunk in resp.iter_content(CHUNK_BYTES):
        buf += chunk
        if len(buf) > cap:
            over = True
            break
    if over:
        resp.raw.close()  # the rest is never read: this connection cannot be reused
        if resp.status_code < 300:
            resp.close()
            raise RequestLine.answered(resp).error(
                RegistryError,
                f"the registry's answer is over the {cap} byte cap",
                status=resp.status_code,
            )
    # One copy of the body, not two (a slice of a bytearray is a copy of its own).
    return Reply(resp, bytes(memoryview(buf)[:cap]) if over else bytes(buf))
