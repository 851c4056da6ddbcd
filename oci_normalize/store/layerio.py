"""Layer bytes as a stream: gunzip in bounded steps, and spooling a layer to a temp file.

Neutral pieces shared by the stores (a ``docker save`` archive spools its plain tars through
:func:`spool_layer`) and by ``convert`` (:mod:`oci_normalize.convert.blobio` measures layers with
:class:`Gunzip`). Nothing here holds a layer in memory: input arrives in chunks, decompression
output is bounded per step (:data:`~oci_normalize.limits.CHUNK`), so a layer of zeros that
inflates a thousandfold costs no more memory than a random one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from oci_normalize.digest import Digest
from oci_normalize.errors import ContentError, UnsupportedMediaTypeError
from oci_normalize.limits import CHUNK

GZIP_MAGIC: Final = b"\x1f\x8b"
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
#: zlib level for layers we compress (docker-archive's plain tars): Go's and gzip's default.
GZIP_LEVEL: Final = 6
_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS


class Gunzip:
    """Incremental gunzip of (possibly multi-member) gzip data, bounded output per step."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._d = zlib.decompressobj(_GZIP_WBITS)
        self._fed = False
        self._padding = False  # zero bytes after the last member, as tar tools write them

    def feed(self, data: bytes) -> Iterator[bytes]:
        self._fed = self._fed or bool(data)
        pending = data
        while pending:
            if self._padding:
                if pending.strip(b"\0"):
                    raise ContentError(f"{self._what}: garbage after the gzip stream")
                return
            try:
                out = self._d.decompress(pending, CHUNK)
            except zlib.error as exc:
                raise ContentError(f"{self._what}: corrupt gzip data ({exc})") from exc
            if out:
                yield out
            pending = self._d.unconsumed_tail
            if self._d.eof and self._d.unused_data:
                pending = self._next_member(self._d.unused_data)

    def _next_member(self, rest: bytes) -> bytes:
        if not rest.strip(b"\0"):
            self._padding = True
            return b""
        if not rest.startswith(GZIP_MAGIC[: len(rest)]):
            raise ContentError(f"{self._what}: garbage after the gzip stream")
        self._d = zlib.decompressobj(_GZIP_WBITS)
        return rest

    def finish(self) -> Iterator[bytes]:
        try:
            out = self._d.flush()
        except zlib.error as exc:
            raise ContentError(f"{self._what}: corrupt gzip data ({exc})") from exc
        if out:
            yield out
        if not self._fed or not (self._d.eof or self._padding):
            raise ContentError(f"{self._what}: truncated gzip stream (unexpected end of data)")


def sniffable(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The same bytes, the first chunk at least as long as the longest magic number."""
    head = b""
    it = iter(chunks)
    for chunk in it:
        head += chunk
        if len(head) >= len(ZSTD_MAGIC):
            break
    if head:
        yield head
    yield from it


@dataclass(frozen=True)
class Spooled:
    """A layer written to a temporary file: where, its blob digest and size, its diff_id."""

    path: Path
    digest: Digest
    size: int
    diff_id: Digest


def spool_layer(chunks: Iterable[bytes], directory: Path, what: str) -> Spooled:
    """Write a layer to a temp file under ``directory`` as gzip, compressing a plain tar.

    gzip input is kept byte for byte (and gunzipped only to compute its diff_id).
    """
    fd, name = tempfile.mkstemp(prefix="layer-", dir=directory)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, size, diff_id = _spool(chunks, out, what)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Spooled(path, digest, size, diff_id)


def _spool(chunks: Iterable[bytes], out: IO[bytes], what: str) -> tuple[Digest, int, Digest]:
    blob_hash = hashlib.sha256()
    tar_hash = hashlib.sha256()
    size = 0
    gunzip: Gunzip | None = None
    compressor: zlib._Compress | None = None
    started = False
    chunks = sniffable(chunks)

    def emit(data: bytes) -> None:
        nonlocal size
        if data:
            blob_hash.update(data)
            size += len(data)
            out.write(data)

    for chunk in chunks:
        if not chunk:
            continue
        if not started:
            started = True
            if chunk.startswith(ZSTD_MAGIC):
                raise UnsupportedMediaTypeError(f"{what}: zstd-compressed layer not supported")
            if chunk.startswith(GZIP_MAGIC):
                gunzip = Gunzip(what)
            else:
                compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
        if gunzip is not None:
            emit(chunk)
            for raw in gunzip.feed(chunk):
                tar_hash.update(raw)
        else:
            assert compressor is not None
            tar_hash.update(chunk)
            emit(compressor.compress(chunk))
    if not started:
        raise ContentError(f"{what}: layer is empty")
    if gunzip is not None:
        for raw in gunzip.finish():
            tar_hash.update(raw)
    else:
        assert compressor is not None
        emit(compressor.flush())
    return Digest("sha256", blob_hash.hexdigest()), size, Digest("sha256", tar_hash.hexdigest())
