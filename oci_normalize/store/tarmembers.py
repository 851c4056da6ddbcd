"""Reading a tarball nobody vouches for: members by name, links contained, errors as one.

Shared by the tarball stores (:mod:`.archive`). A tar is read only through :class:`Members`:

* the file must be a regular file (:func:`~.localfs.open_regular`): never a device or a FIFO;
* its header list is read once, at most :data:`MAX_MEMBERS` entries, and a member whose data
  would run past the end of an uncompressed file is reported as truncation up front;
* names are looked up only after :func:`member_name` made them relative, normalized and free of
  ``..``; a symlink or hardlink member is followed only to another member of the same archive
  (``docker save`` links a layer two images share), at most :data:`MAX_LINK_HOPS` hops;
* devices, FIFOs and directories are refused where a file is expected;
* whatever the tar or its gzip/xz/bz2 wrapper raises on a truncated or corrupt stream becomes
  one :class:`~oci_normalize.errors.ContentError` (:func:`tar_errors`).

Nothing is ever extracted to disk by name.
"""

from __future__ import annotations

import lzma
import os
import posixpath
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final

from oci_normalize.errors import (
    ContentError,
    MalformedManifestError,
    ManifestTooLargeError,
    NotFoundError,
)
from oci_normalize.limits import CHUNK
from oci_normalize.store.localfs import open_regular
from oci_normalize.text import printable

#: Members read from one archive's header list; ``docker save`` writes a few per layer.
MAX_MEMBERS: Final = 100_000
#: Links followed from one name before giving up (a loop, or a chain nobody writes).
MAX_LINK_HOPS: Final = 8
MAX_NAME_CHARS: Final = 4096
#: What reading a broken tar (or its gzip/xz/bz2 wrapper) raises besides OSError.
TAR_ERRORS: Final = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, UnicodeError)


def member_name(name: str, what: str) -> str:
    """``name`` as a member path: relative, normalized, never above the archive's root."""
    if not name or len(name) > MAX_NAME_CHARS or "\0" in name or name.startswith("/"):
        raise MalformedManifestError(f"{what}: {printable(name)!r} is not a path in the archive")
    if ".." in name.split("/"):
        raise MalformedManifestError(f"{what}: {printable(name)!r} reaches outside the archive")
    clean = posixpath.normpath(name)
    if clean in (".", "") or clean.startswith("../"):
        raise MalformedManifestError(f"{what}: {printable(name)!r} is not a file in the archive")
    return clean


class Members:
    """The archive's member list, read once (capped), with contained link resolution."""

    def __init__(self, tar: tarfile.TarFile, what: str, *, size: int) -> None:
        self.tar = tar
        self.what = what
        self._by_name: dict[str, tarfile.TarInfo] = {}
        count = 0
        with tar_errors(what):
            while (info := tar.next()) is not None:
                count += 1
                if count > MAX_MEMBERS:
                    raise ContentError(f"{what}: more than {MAX_MEMBERS} members; not an image")
                cut = size and info.offset_data + info.size > size
                if info.isreg() and not info.issparse() and cut:
                    raise ContentError(f"{what}: truncated tar archive ({show(info.name)} is cut)")
                try:
                    name = member_name(info.name, what)
                except MalformedManifestError:
                    continue  # never reachable: every name we look up is checked the same way
                self._by_name[name] = info  # a later entry wins, as when a tar is extracted

    def resolve(self, name: str) -> tarfile.TarInfo:
        """The regular member ``name`` is, following links inside the archive only."""
        current = member_name(name, self.what)
        for _ in range(MAX_LINK_HOPS + 1):
            info = self._by_name.get(current)
            if info is None:
                raise NotFoundError(f"{self.what}: the archive has no {show(current)}")
            if info.isreg():
                return info
            if info.issym():
                target = posixpath.join(posixpath.dirname(current), info.linkname)
            elif info.islnk():
                target = info.linkname
            else:
                raise MalformedManifestError(
                    f"{self.what}: {show(current)} is {_kind(info)}, not a regular file"
                )
            target = posixpath.normpath(target)
            if target.startswith("/") or ".." in target.split("/"):
                raise MalformedManifestError(
                    f"{self.what}: {show(current)} links to {show(info.linkname)}, "
                    "outside the archive"
                )
            current = member_name(target, self.what)
        raise MalformedManifestError(
            f"{self.what}: {show(name)}: more than {MAX_LINK_HOPS} links (a loop?)"
        )

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """The bytes of member ``name`` (a regular file, after contained links)."""
        info = self.resolve(name)
        with tar_errors(self.what):
            fh = self.tar.extractfile(info)
        if fh is None:  # pragma: no cover - resolve returns regular members only
            raise MalformedManifestError(f"{self.what}: {show(name)} is not a regular file")
        with fh:
            yield fh

    def read(self, name: str, cap: int) -> bytes:
        with self.open(name) as fh, tar_errors(self.what):
            data = fh.read(cap + 1)
        if len(data) > cap:
            raise ManifestTooLargeError(f"{self.what}: {show(name)} is over {cap} bytes")
        return data


def show(name: str) -> str:
    return printable(name, limit=200)


def _kind(info: tarfile.TarInfo) -> str:
    if info.isdir():
        return "a directory"
    if info.ischr() or info.isblk():
        return "a device"
    if info.isfifo():
        return "a FIFO"
    return "not a regular file"


@contextmanager
def tar_errors(what: str) -> Iterator[None]:
    """A tar (or its compression) that ends early or does not decode: one ContentError."""
    try:
        yield
    except TAR_ERRORS as exc:
        raise ContentError(
            f"{what}: truncated or corrupt tar archive ({printable(str(exc), limit=200)})"
        ) from exc
    except OSError as exc:  # gzip's BadGzipFile, bz2's "Invalid data stream", EIO
        raise ContentError(
            f"{what}: cannot read the archive ({printable(str(exc), limit=200)})"
        ) from exc


@contextmanager
def open_tar(path: str | Path, what: str) -> Iterator[Members]:
    """The members of the tarball at ``path`` (plain or gzip/xz/bz2-compressed)."""
    with open_regular(path, what) as fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            tar = tarfile.open(fileobj=fh, mode="r:*")  # noqa: SIM115 - closed just below
        except (*TAR_ERRORS, OSError) as exc:
            reason = "an empty file" if size == 0 else str(exc).splitlines()[0].rstrip(":")
            raise ContentError(
                f"{what}: not a readable tar archive ({printable(reason, limit=200)})"
            ) from exc
        with tar:
            # A compressed archive's offsets are in the uncompressed stream: no size check.
            compressed = tar.fileobj is not fh
            yield Members(tar, what, size=0 if compressed else size)


def chunks(fh: IO[bytes], what: str) -> Iterator[bytes]:
    """A member's bytes in chunks; a tar that ends early is a ContentError, not a ReadError."""
    while True:
        with tar_errors(what):
            chunk = fh.read(CHUNK)
        if not chunk:
            return
        yield chunk
