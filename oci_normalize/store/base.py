"""What the fetcher and the pusher need from wherever images live: the :class:`Store` protocol.

:class:`~.registry.Registry` satisfies it as it is; :class:`~.layout.Layout` (an OCI
image layout directory) and :class:`~.archive.ArchiveStore` (a ``docker save`` tarball, read-only)
use the same method names, so ``tree``, ``push`` and ``api`` never ask which one they hold. A
store that has no repositories ignores the ``repository`` argument.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from oci_normalize.digest import Digest
from oci_normalize.manifest import BodyOpener, VerifiedManifest


class BlobStream(Protocol):
    """A blob being read: ``requests.Response`` is one, :class:`StreamBlob` another."""

    def iter_content(self, chunk_size: int) -> Iterator[Any]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: Any) -> Any: ...


@runtime_checkable
class ReadsInto(Protocol):
    """A blob stream that can fill one buffer again and again (a registry's answer)."""

    def iter_into(self, buffer: bytearray) -> Iterator[memoryview]: ...


def chunks_into(stream: BlobStream, buffer: bytearray) -> Iterator[bytes | memoryview]:
    """The stream's chunks, at most ``len(buffer)`` bytes each: read into ``buffer`` where the
    stream can (each chunk is then valid until the next one is asked for), else as it gives
    them."""
    if isinstance(stream, ReadsInto):
        return stream.iter_into(buffer)
    return stream.iter_content(len(buffer))


class Store(Protocol):
    name: str  # for messages; equal names mean the same store

    @property
    def requests(self) -> int:
        """Operations performed, for the --json ``requests`` count."""

    def get_manifest(
        self, repository: str, ref: str, *, expected: Digest | None = None, what: str = ""
    ) -> VerifiedManifest: ...

    def head_manifest(self, repository: str, ref: str) -> Digest | None: ...

    def put_manifest(self, repository: str, ref: str, data: bytes, media_type: str) -> Digest: ...

    def put_manifest_confirmed(
        self, repository: str, ref: str, data: bytes, media_type: str
    ) -> tuple[Digest, bool]:
        """:meth:`put_manifest`, and whether the store confirmed holding exactly these bytes
        under ``ref`` (a registry echoing our digest); unconfirmed writes get a verify read."""

    def blob_exists(self, repository: str, digest: Digest) -> bool: ...

    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool: ...

    def open_blob(self, repository: str, digest: Digest) -> BlobStream: ...

    def upload_blob(
        self, repository: str, digest: Digest, size: int, chunks: Iterable[bytes] | BodyOpener
    ) -> None:
        """Store a blob given as chunks (or opened by a :data:`BodyOpener`, per try). A chunk
        may be a view of a buffer that the next chunk refills: each is used (sent, written,
        hashed or copied) before the next one is asked for."""


class RegistryStore(Store, Protocol):
    """A store with repositories that lists what it holds (a registry, or a stand-in for one in
    tests): what the batch enumeration and the referrer listing ask besides :class:`Store`."""

    def list_tags(self, repository: str, *, page_size: int = ...) -> list[str]: ...

    def iter_catalog(self, *, page_size: int = ...) -> Iterator[list[str]]: ...

    def referrers(self, repository: str, digest: Digest) -> bytes | None: ...


def opened(
    chunks: Iterable[bytes] | BodyOpener,
) -> AbstractContextManager[Iterable[bytes | memoryview]]:
    """The chunks of an upload body given either way (a store that never retries opens once)."""
    if callable(chunks):
        return chunks()
    return nullcontext(chunks)


class StreamBlob:
    """A binary file object read in chunks, shaped like a streaming ``requests.Response``."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        while chunk := self._fh.read(chunk_size):
            yield chunk

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> StreamBlob:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def file_blob(path: Path) -> StreamBlob:
    """A local file, streamed."""
    return StreamBlob(path.open("rb"))


def bytes_blob(data: bytes) -> StreamBlob:
    """Bytes in memory (a config blob), streamed."""
    return StreamBlob(io.BytesIO(data))
