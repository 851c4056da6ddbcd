"""Local files the tool did not make, read and written without leaving where they belong.

Two helpers for everything local:

* :func:`open_regular` opens a file the user named (a docker-archive, ``--from-file``, a journal)
  only if it is a regular file: ``/dev/zero``, a FIFO with no writer or a directory fail at once
  with one error instead of hanging or reading forever. It never blocks in ``open``.
* :class:`Contained` is a directory whose insides are hostile (an OCI image layout). Every path
  below it is a tuple of plain names, walked one directory at a time with ``O_NOFOLLOW`` from a
  descriptor of the root, so a symlinked ``blobs/sha256``, ``index.json`` or blob file is refused
  instead of followed, and a write can only land in the directory it was meant for: a file is
  created with ``O_EXCL|O_NOFOLLOW`` next to its target and renamed over it by descriptor.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, Final

from oci_normalize.errors import ContentError, ManifestTooLargeError, NotFoundError
from oci_normalize.text import printable

#: Flags of every read-only open: never block (a FIFO), never leak the descriptor to a child.
_READ: Final = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
_DIR: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_MODE: Final = 0o644
DIR_MODE: Final = 0o755


def kind_of(mode: int) -> str:
    """What a non-regular file is, for messages."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _refuse(what: str, mode: int) -> ContentError:
    return ContentError(f"{what}: is {kind_of(mode)}, not a regular file")


def _os_error(what: str, exc: OSError) -> ContentError | NotFoundError:
    if exc.errno == errno.ENOENT:
        return NotFoundError(f"{what}: no such file")
    if exc.errno == errno.ELOOP:
        return ContentError(f"{what}: is a symbolic link; refusing to follow it")
    if exc.errno == errno.ENOTDIR:
        return ContentError(f"{what}: a directory on its path is not a directory")
    return ContentError(f"{what}: cannot open ({printable(exc.strerror or str(exc))})")


def open_regular(
    path: str | Path,
    what: str,
    *,
    dir_fd: int | None = None,
    follow: bool = True,
    fifo_ok: bool = False,
) -> BinaryIO:
    """``path`` opened for reading if it is a regular file (or, with ``fifo_ok``, a pipe).

    The type is checked before the open (no device is ever opened) and again on the descriptor
    (nothing swapped in between). With ``follow=False`` a symlink is refused, not followed.
    A pipe is opened without blocking: one nobody writes to reads as empty.
    """
    try:
        before = os.stat(path, dir_fd=dir_fd, follow_symlinks=follow)
    except OSError as exc:
        raise _os_error(what, exc) from exc
    allowed = stat.S_ISREG(before.st_mode) or (fifo_ok and stat.S_ISFIFO(before.st_mode))
    if not allowed:
        raise _refuse(what, before.st_mode)
    try:
        fd = os.open(path, _READ | (0 if follow else os.O_NOFOLLOW), dir_fd=dir_fd)
    except OSError as exc:
        raise _os_error(what, exc) from exc
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or (fifo_ok and stat.S_ISFIFO(mode))):
            raise _refuse(what, mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_capped(fh: BinaryIO, cap: int, what: str) -> bytes:
    """At most ``cap`` bytes of ``fh``; more is an error, found after reading ``cap + 1``."""
    data = fh.read(cap + 1)
    if len(data) > cap:
        raise ManifestTooLargeError(f"{what}: over the {cap} byte cap")
    return data


def _check_name(name: str, what: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ContentError(f"{what}: {printable(name)!r} is not a plain file name")


class Contained:
    """A directory whose entries are untrusted: reads and writes never leave it.

    ``parts`` arguments are tuples of plain names (``("blobs", "sha256", hex)``); every
    directory on the way and the file itself must be what they claim, not symlinks.
    """

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name  # for messages

    def _what(self, parts: tuple[str, ...]) -> str:
        return f"{self.name}/{'/'.join(printable(p) for p in parts)}"

    @contextmanager
    def directory(self, parts: tuple[str, ...], *, create: bool = False) -> Iterator[int]:
        """A descriptor of the directory ``parts`` below the root (made when ``create``)."""
        for part in parts:
            _check_name(part, self.name)
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise _os_error(self.name, exc) from exc
        try:
            for i, part in enumerate(parts):
                if create:
                    try:
                        os.mkdir(part, DIR_MODE, dir_fd=fd)
                    except FileExistsError:
                        pass
                    except OSError as exc:
                        raise _os_error(self._what(parts[: i + 1]), exc) from exc
                try:
                    child = os.open(part, _DIR, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        mode = os.lstat(part, dir_fd=fd).st_mode
                        raise ContentError(
                            f"{self._what(parts[: i + 1])}: is {kind_of(mode)}, not a directory"
                        ) from exc
                    raise _os_error(self._what(parts[: i + 1]), exc) from exc
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def open(self, parts: tuple[str, ...]) -> BinaryIO:
        """The regular file ``parts``, for reading; a symlink anywhere on the way is refused."""
        *dirs, name = parts
        _check_name(name, self.name)
        with self.directory(tuple(dirs)) as dfd:
            return open_regular(name, self._what(parts), dir_fd=dfd, follow=False)

    def read(self, parts: tuple[str, ...], cap: int) -> bytes:
        with self.open(parts) as fh:
            return read_capped(fh, cap, self._what(parts))

    def lexists(self, parts: tuple[str, ...]) -> bool:
        """Whether an entry named ``parts`` exists (of any type, symlinks not followed)."""
        *dirs, name = parts
        try:
            with self.directory(tuple(dirs)) as dfd:
                os.lstat(name, dir_fd=dfd)
        except (OSError, NotFoundError):
            return False
        return True

    def is_file(self, parts: tuple[str, ...]) -> bool:
        """Whether ``parts`` is a regular file reached through real directories only."""
        *dirs, name = parts
        try:
            with self.directory(tuple(dirs)) as dfd:
                return stat.S_ISREG(os.lstat(name, dir_fd=dfd).st_mode)
        except (OSError, NotFoundError):
            return False

    def write(
        self,
        parts: tuple[str, ...],
        chunks: Iterable[bytes | memoryview],
        *,
        check: Callable[[], None] = lambda: None,
        create_dirs: bool = False,
    ) -> None:
        """Write ``chunks`` to a new file beside ``parts`` and rename it into place.

        ``check`` runs after the last chunk and before the rename: raising there (a digest that
        does not match) leaves nothing behind. The directory is fsynced after the rename.
        """
        *dirs, name = parts
        _check_name(name, self.name)
        with self.directory(tuple(dirs), create=create_dirs) as dfd:
            tmp = f".tmp-{name[:32]}-{secrets.token_hex(8)}"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(tmp, flags, FILE_MODE, dir_fd=dfd)
            except OSError as exc:
                raise _os_error(self._what(parts), exc) from exc
            try:
                with os.fdopen(fd, "wb") as out:
                    for chunk in chunks:
                        out.write(chunk)
                    out.flush()
                    os.fchmod(out.fileno(), FILE_MODE)  # whatever the umask
                    os.fsync(out.fileno())
                check()
                os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                with suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=dfd)
                raise
            os.fsync(dfd)
