"""``oci-archive:PATH[:REF]``, a tarred OCI image layout, as a :class:`~.base.Store`.

Reading never unpacks the tar: one pass over its headers records where each member's bytes
are, and blobs are then read in place (positional reads on one descriptor, so threads share it).
Only the members a layout has are ever used, found by names built here (``oci-layout``,
``index.json``, ``blobs/ALG/HEX`` from validated digests); each must be a regular file. Links,
devices, sparse files, absolute names and ``..`` are never followed or read.

Writing goes to a private layout in a temporary directory (:class:`~.layout.Layout`, hashed and
checked as it lands); :meth:`OciArchiveStore.commit` then streams the old members and the new
blobs into a new tar beside PATH and renames it over PATH, so a failed conversion leaves the
archive as it was. Compressed archives are refused with a hint (podman, skopeo, buildkit and
nerdctl write plain tar).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from oci_normalize.digest import Digest
from oci_normalize.errors import (
    ContentError,
    InvalidDigestError,
    MalformedManifestError,
    ManifestTooLargeError,
    NotFoundError,
)
from oci_normalize.manifest import (
    MAX_MANIFEST_BYTES,
    BodyOpener,
    VerifiedManifest,
    effective_media_type,
)
from oci_normalize.reference import OciArchiveRef
from oci_normalize.store.base import BlobStream, file_blob
from oci_normalize.store.layout import INDEX_FILE, LAYOUT_FILE, MAX_INDEX_BYTES, Layout

#: Members recorded at most (a layout holds a few per image; this stops a header bomb).
MAX_MEMBERS: Final = 200_000
_COMPRESSED_MAGIC: Final = (b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"BZh", b"\xfd7zXZ")


@dataclass(frozen=True)
class Member:
    """Where one member's bytes are in the tar, or why it cannot be used."""

    offset: int
    size: int
    problem: str | None = None  # "a symbolic link", "a directory", …


def _kind(info: tarfile.TarInfo) -> str | None:
    if info.issym():
        return "a symbolic link"
    if info.islnk():
        return "a hard link"
    if info.issparse():
        return "a sparse file"
    if not info.isreg():
        return "not a regular file"
    return None


def _wanted(name: str) -> str | None:
    """The layout name a member stands for, or None for members a layout never uses."""
    name = name.removeprefix("./")
    if name in (LAYOUT_FILE, INDEX_FILE):
        return name
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        try:
            Digest.parse(f"{parts[1]}:{parts[2]}")
        except InvalidDigestError:
            return None
        return name
    return None


def scan(fd: int, what: str) -> dict[str, Member]:
    """Layout members of the plain tar open on ``fd``: name → offset, size (last one wins)."""
    head = os.pread(fd, 6, 0)
    if head.startswith(_COMPRESSED_MAGIC):
        raise ContentError(f"{what}: the archive is compressed; decompress it to a plain tar first")
    members: dict[str, Member] = {}
    try:
        with os.fdopen(os.dup(fd), "rb") as fh, tarfile.open(fileobj=fh, mode="r:") as tar:
            count = 0
            while (info := tar.next()) is not None:
                count += 1
                if count > MAX_MEMBERS:
                    raise ContentError(f"{what}: more than {MAX_MEMBERS} members")
                name = _wanted(info.name)
                if name is not None:
                    members[name] = Member(info.offset_data, info.size, _kind(info))
                tar.members.clear()  # type: ignore[attr-defined]  # keep memory flat
    except (tarfile.TarError, OSError) as exc:
        raise ContentError(f"{what}: not a readable tar archive ({exc})") from exc
    return members


class MemberBlob:
    """One member's bytes, read by position (no shared file offset), shaped like a response."""

    def __init__(self, fd: int, member: Member) -> None:
        self._fd, self._member = fd, member
        self._done = 0

    def read(self, size: int = -1) -> bytes:
        left = self._member.size - self._done
        want = left if size < 0 else min(size, left)
        if want <= 0:
            return b""
        data = os.pread(self._fd, want, self._member.offset + self._done)
        if not data:
            raise ContentError("archive member ends early (truncated tar)")
        self._done += len(data)
        return data

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        while chunk := self.read(chunk_size):
            yield chunk

    def close(self) -> None:
        return None

    def __enter__(self) -> MemberBlob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OciArchiveStore:
    """The archive at ``ref.path``; created on :meth:`commit` when missing."""

    def __init__(self, ref: OciArchiveRef, *, max_manifest_bytes: int = MAX_MANIFEST_BYTES) -> None:
        self.ref = ref
        self.path = Path(ref.path)
        self.name = ref.store_name  # identity: the absolute path
        self.name = f"oci-archive:{ref.shown or ref.path}"  # for messages: as the user wrote it
        self.requests = 0
        self._max_manifest = max_manifest_bytes
        self._lock = threading.RLock()
        self._fd: int | None = None
        self._members: dict[str, Member] = {}
        self._tmp: Path | None = None
        self._layout: Layout | None = None
        self._dirty = False

    # ---- opening and closing ------------------------------------------------------------------

    def _load(self) -> Layout:
        with self._lock:
            if self._layout is not None:
                return self._layout
            tmp = Path(tempfile.mkdtemp(prefix="oci-normalize-ociarchive-"))
            try:
                if self.path.exists():
                    self._open_existing(tmp)
                self._tmp, self._layout = tmp, Layout(tmp, max_manifest_bytes=self._max_manifest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                self._close_fd()
                raise
            return self._layout

    def _open_existing(self, tmp: Path) -> None:
        if not self.path.is_file():
            raise ContentError(f"{self.name}: not a regular file")
        self._fd = os.open(self.path, os.O_RDONLY)
        self._members = scan(self._fd, self.name)
        for name in (LAYOUT_FILE, INDEX_FILE):
            if name not in self._members:
                raise NotFoundError(f"{self.name}: not an OCI archive (no {name} in the tar)")
            (tmp / name).write_bytes(self._read_member(name, MAX_INDEX_BYTES))

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        with self._lock:
            self._close_fd()
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp, self._layout, self._members, self._dirty = None, None, {}, False

    def __enter__(self) -> OciArchiveStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- members --------------------------------------------------------------------------------

    def _member(self, name: str) -> Member | None:
        member = self._members.get(name)
        if member is not None and member.problem is not None:
            raise MalformedManifestError(
                f"{self.name}: member {name} is {member.problem}; refusing to use it"
            )
        return member

    def _read_member(self, name: str, cap: int) -> bytes:
        member = self._member(name)
        if member is None or self._fd is None:
            raise NotFoundError(f"{self.name}: no {name} in the archive")
        if member.size > cap:
            raise ManifestTooLargeError(f"{self.name}: {name} is over {cap} bytes")
        data = MemberBlob(self._fd, member).read()
        if len(data) != member.size:
            raise ContentError(f"{self.name}: {name} is truncated")
        return data

    @staticmethod
    def _blob_name(digest: Digest) -> str:
        return f"blobs/{digest.algorithm}/{digest.hex}"

    def _in_archive(self, digest: Digest) -> bool:
        return self._member(self._blob_name(digest)) is not None

    # ---- the Store interface --------------------------------------------------------------------

    def sole_tag(self) -> str | None:
        entry = self._load().resolve("")
        annotations = entry.get("annotations")
        name = annotations.get("org.opencontainers.image.ref.name") if annotations else None
        return name if isinstance(name, str) else None

    def get_manifest(
        self, repository: str, ref: str, *, expected: Digest | None = None, what: str = ""
    ) -> VerifiedManifest:
        layout = self._load()
        what = what or str(self.ref)
        declared = ""
        digest = _as_digest(ref)
        if digest is None:
            entry = layout.resolve(ref)
            digest, declared = Digest.parse(entry["digest"]), str(entry.get("mediaType", ""))
        if expected is not None and expected != digest:
            raise NotFoundError(f"{what}: resolves to {digest}, expected {expected}")
        self.requests += 1
        if layout.blob_path(digest).is_file():
            with layout.blob_path(digest).open("rb") as fh:
                data = fh.read(self._max_manifest + 1)
            if len(data) > self._max_manifest:
                raise ManifestTooLargeError(f"{what}: manifest is over {self._max_manifest} bytes")
        else:
            data = self._read_member(self._blob_name(digest), self._max_manifest)
        digest.verify(data, what)
        return VerifiedManifest(
            data=data, media_type=effective_media_type(data, declared), digest=digest
        )

    def head_manifest(self, repository: str, ref: str) -> Digest | None:
        layout = self._load()
        self.requests += 1
        digest = _as_digest(ref)
        if digest is not None:
            return digest if self.blob_exists(repository, digest) else None
        if not (layout.path / INDEX_FILE).exists():
            return None
        try:
            return Digest.parse(layout.resolve(ref)["digest"])
        except NotFoundError:
            return None

    def blob_exists(self, repository: str, digest: Digest) -> bool:
        layout = self._load()
        return layout.blob_path(digest).is_file() or self._in_archive(digest)

    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        return False

    def open_blob(self, repository: str, digest: Digest) -> BlobStream:
        layout = self._load()
        self.requests += 1
        if layout.blob_path(digest).is_file():
            return file_blob(layout.blob_path(digest))
        member = self._member(self._blob_name(digest))
        if member is None or self._fd is None:
            raise NotFoundError(f"{self.name}: blob {digest} is missing from the archive")
        return MemberBlob(self._fd, member)

    def upload_blob(
        self, repository: str, digest: Digest, size: int, chunks: Iterable[bytes] | BodyOpener
    ) -> None:
        layout = self._load()
        with self._lock:
            self._dirty = True
        layout.upload_blob(repository, digest, size, chunks)

    def put_manifest(self, repository: str, ref: str, data: bytes, media_type: str) -> Digest:
        layout = self._load()
        with self._lock:
            self._dirty = True
        return layout.put_manifest(repository, ref, data, media_type)

    def put_manifest_confirmed(
        self, repository: str, ref: str, data: bytes, media_type: str
    ) -> tuple[Digest, bool]:
        """:meth:`put_manifest`; never confirmed: the writer's verify reads it back."""
        return self.put_manifest(repository, ref, data, media_type), False

    # ---- writing the archive --------------------------------------------------------------------

    def commit(self) -> bool:
        """Write the archive (old members plus what was written) over PATH; False if unchanged."""
        with self._lock:
            layout = self._load()
            if not self._dirty:
                return False
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}-", dir=self.path.parent)
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out:
                    self._write_tar(out, layout)
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(tmp, 0o644)
                os.replace(tmp, self.path)
            finally:
                tmp.unlink(missing_ok=True)
            self._dirty = False
            return True

    def _write_tar(self, out: IO[bytes], layout: Layout) -> None:
        names: dict[str, Path | Member] = {}
        for name, member in self._members.items():
            if name.startswith("blobs/") and member.problem is None:
                names[name] = member
        blobs = layout.path / "blobs"
        for path in sorted(blobs.glob("*/*")) if blobs.is_dir() else ():
            if path.is_file() and not path.name.startswith("."):
                names[f"blobs/{path.parent.name}/{path.name}"] = path
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in (LAYOUT_FILE, INDEX_FILE):
                _add(tar, name, (layout.path / name).read_bytes())
            for name in sorted(names):
                source = names[name]
                if isinstance(source, Path):
                    with source.open("rb") as fh:
                        _add_stream(tar, name, source.stat().st_size, fh)
                else:
                    assert self._fd is not None
                    _add_stream(tar, name, source.size, MemberBlob(self._fd, source))


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    _add_stream(tar, name, len(data), io.BytesIO(data))


def _add_stream(tar: tarfile.TarFile, name: str, size: int, fh: IO[bytes] | MemberBlob) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    tar.addfile(info, fh)  # a MemberBlob reads like a file


def _as_digest(ref: str) -> Digest | None:
    try:
        return Digest.parse(ref)
    except InvalidDigestError:
        return None
