"""An OCI image layout directory as a :class:`~oci_normalize.store.base.Store`.

Tags are ``org.opencontainers.image.ref.name`` annotations of ``index.json`` entries; the
``repository`` argument of every method is ignored. Writes are atomic and additive:

* a blob goes to a temporary file in its ``blobs/ALG/`` directory, is hashed on the way, and is
  renamed to its digest only when the digest and size match;
* ``index.json`` is rewritten to a temporary file and renamed over the old one;
* blobs are never deleted (``umoci gc`` or ``skopeo`` can collect what no tag reaches).

Blob paths come only from validated :class:`~oci_normalize.digest.Digest` values: a digest from
``index.json`` or a manifest that is not ``sha256:<64 hex>``/``sha512:<128 hex>`` is refused
before any path is built, so no entry can reach outside ``blobs/``. Every file is reached through
:class:`~.localfs.Contained`: a symlinked ``index.json``, ``oci-layout``, ``blobs/sha256`` or blob,
a FIFO or a device where a file should be is refused, never followed, and writes land only inside
the layout. A blob is verified against its digest before :meth:`Layout.open_blob` hands out its
first byte, so nothing but the content the digest names can leave the machine.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import (
    DigestMismatchError,
    InvalidDigestError,
    MalformedManifestError,
    ManifestTooLargeError,
    NotFoundError,
    OciNormalizeError,
)
from oci_normalize.limits import CHUNK
from oci_normalize.manifest import (
    MAX_MANIFEST_BYTES,
    BodyOpener,
    VerifiedManifest,
    descriptors,
    effective_media_type,
    parse_body,
    serialize,
)
from oci_normalize.store.base import StreamBlob, opened
from oci_normalize.store.localfs import Contained
from oci_normalize.text import printable

REF_NAME: Final = "org.opencontainers.image.ref.name"
LAYOUT_FILE: Final = "oci-layout"
INDEX_FILE: Final = "index.json"
LAYOUT_VERSION: Final = "1.0.0"
MAX_INDEX_BYTES: Final = 16 * 1024 * 1024
MAX_LAYOUT_FILE_BYTES: Final = 4096


class Layout:
    """The image layout at ``path``; created (empty) on the first write when missing."""

    def __init__(self, path: str | Path, *, max_manifest_bytes: int = MAX_MANIFEST_BYTES) -> None:
        self.path = Path(path).absolute()
        self.name = f"oci:{self.path}"
        self.requests = 0
        self._max_manifest = max_manifest_bytes
        self._lock = threading.Lock()
        self._dir = Contained(self.path, self.name)
        #: Blob files already hashed whole: (digest, dev, inode, size, mtime, ctime).
        self._verified: set[tuple[Digest, int, int, int, int, int]] = set()

    # ---- reading ----------------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> Path:
        """Where a blob lives; the digest is re-validated so no value can escape ``blobs/``."""
        try:
            checked = Digest.parse(str(digest))
        except InvalidDigestError as exc:
            raise InvalidDigestError(f"{self.name}: refusing blob path for {exc}") from exc
        return self.path / "blobs" / checked.algorithm / checked.hex

    def _blob(self, digest: Digest) -> tuple[str, str, str]:
        """The contained path of a blob (same checks as :meth:`blob_path`)."""
        checked = self.blob_path(digest)
        return ("blobs", checked.parent.name, checked.name)

    def index(self) -> dict[str, Any]:
        """``index.json``, shape-checked (every entry a descriptor with a valid digest)."""
        what = f"{self.name}/{INDEX_FILE}"
        self._check_layout_file()
        try:
            data = self._dir.read((INDEX_FILE,), MAX_INDEX_BYTES)
        except NotFoundError as exc:
            raise NotFoundError(f"{self.name}: not an OCI image layout (no index.json)") from exc
        except ManifestTooLargeError as exc:
            raise ManifestTooLargeError(f"{what}: over {MAX_INDEX_BYTES} bytes") from exc
        body = parse_body(data, what)
        descriptors(body, mt.OCI_INDEX, what)
        return body

    def _check_layout_file(self) -> None:
        try:
            marker = self._dir.read((LAYOUT_FILE,), MAX_LAYOUT_FILE_BYTES)
            version = json.loads(marker).get("imageLayoutVersion")
        except NotFoundError as exc:
            raise NotFoundError(f"{self.name}: not an OCI image layout (no oci-layout)") from exc
        except (ValueError, AttributeError, RecursionError) as exc:
            raise MalformedManifestError(f"{self.name}: oci-layout is not valid JSON") from exc
        if version != LAYOUT_VERSION:
            raise MalformedManifestError(f"{self.name}: unsupported imageLayoutVersion {version!r}")

    def resolve(self, ref: str) -> dict[str, Any]:
        """The index.json entry for a tag, or for "" the layout's only entry."""
        entries = self.index()["manifests"]
        if ref == "":
            if len(entries) != 1:
                names = sorted({str(_name(e)) for e in entries})
                raise NotFoundError(
                    f"{self.name}: holds {len(entries)} images "
                    f"({printable(', '.join(names)) or 'none'});"
                    " name one as oci:PATH:TAG"
                )
            return dict(entries[0])
        found = [e for e in entries if _name(e) == ref]
        if not found:
            names = sorted({n for e in entries if (n := _name(e))})
            raise NotFoundError(
                f"{self.name}: no image tagged {ref!r} in index.json "
                f"(tags: {printable(', '.join(names)) or 'none'})"
            )
        if len({e["digest"] for e in found}) > 1:
            raise MalformedManifestError(f"{self.name}: tag {ref!r} names several images")
        return dict(found[0])

    def sole_tag(self) -> str | None:
        """The tag of the layout's only image (None when it has no name)."""
        return _name(self.resolve(""))

    def get_manifest(
        self, repository: str, ref: str, *, expected: Digest | None = None, what: str = ""
    ) -> VerifiedManifest:
        what = what or f"{self.name}:{ref}"
        declared = ""
        if _is_digest(ref):
            digest = Digest.parse(ref)
        else:
            entry = self.resolve(ref)
            digest, declared = Digest.parse(entry["digest"]), entry["mediaType"]
        if expected is not None and expected != digest:
            raise DigestMismatchError(f"{what}: resolves to {digest}, expected {expected}")
        parts = self._blob(digest)
        self.requests += 1
        try:
            with self._dir.open(parts) as fh:
                data = fh.read(self._max_manifest + 1)
        except NotFoundError as exc:
            raise NotFoundError(
                f"{what}: manifest {digest} is named but its blob "
                f"blobs/{digest.algorithm}/{digest.hex} is missing"
            ) from exc
        if len(data) > self._max_manifest:
            raise ManifestTooLargeError(f"{what}: manifest is over the {self._max_manifest} cap")
        digest.verify(data, what)
        return VerifiedManifest(
            data=data, media_type=effective_media_type(data, declared), digest=digest
        )

    def head_manifest(self, repository: str, ref: str) -> Digest | None:
        self.requests += 1
        if _is_digest(ref):
            digest = Digest.parse(ref)
            return digest if self._dir.is_file(self._blob(digest)) else None
        if not self._dir.lexists((INDEX_FILE,)):
            return None
        try:
            return Digest.parse(self.resolve(ref)["digest"])
        except NotFoundError:
            return None

    def blob_exists(self, repository: str, digest: Digest) -> bool:
        self.requests += 1
        return self._dir.is_file(self._blob(digest))

    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        return False  # nothing to mount from: blobs arrive by upload_blob

    def open_blob(self, repository: str, digest: Digest) -> StreamBlob:
        """The blob, already hashed whole: no byte of other content is ever handed out."""
        self.requests += 1
        try:
            fh = self._dir.open(self._blob(digest))
        except NotFoundError as exc:
            raise NotFoundError(f"{self.name}: blob {digest} is missing") from exc
        try:
            self._verify_file(fh, digest)
        except BaseException:
            fh.close()
            raise
        return StreamBlob(fh)

    def _verify_file(self, fh: Any, digest: Digest) -> None:
        """Hash an open blob file against its digest (once per unchanged file), then rewind."""
        st = os.fstat(fh.fileno())
        key = (digest, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if key in self._verified:
            return
        hasher = digest.hasher()
        while chunk := fh.read(CHUNK):
            hasher.update(chunk)
        if hasher.hexdigest() != digest.hex:
            raise DigestMismatchError(
                f"{self.name}: blob file blobs/{digest.algorithm}/{digest.hex[:12]}… does "
                f"not hash to its name ({digest.algorithm}:{hasher.hexdigest()[:12]}…); "
                "nothing of it was sent"
            )
        fh.seek(0)
        self._verified.add(key)

    # ---- writing ----------------------------------------------------------------------------

    def upload_blob(
        self, repository: str, digest: Digest, size: int, chunks: Iterable[bytes] | BodyOpener
    ) -> None:
        """Write a blob atomically; nothing lands unless the digest and size match."""
        self._ensure_layout()
        self.requests += 1
        parts = self._blob(digest)
        hasher, count = digest.hasher(), 0

        def hashed(body: Iterable[bytes | memoryview]) -> Iterable[bytes | memoryview]:
            nonlocal count
            for chunk in body:
                hasher.update(chunk)
                count += len(chunk)
                yield chunk

        def check() -> None:
            if hasher.hexdigest() != digest.hex or count != size:
                raise DigestMismatchError(
                    f"{self.name}: blob {digest.short}: got {count} bytes hashing to "
                    f"{digest.algorithm}:{hasher.hexdigest()[:12]}, expected {size} bytes"
                )

        with opened(chunks) as body:
            self._dir.write(parts, hashed(body), check=check, create_dirs=True)

    def put_manifest_confirmed(
        self, repository: str, ref: str, data: bytes, media_type: str
    ) -> tuple[Digest, bool]:
        """:meth:`put_manifest`; not confirmed: the caller's verify re-reads index.json."""
        return self.put_manifest(repository, ref, data, media_type), False

    def put_manifest(self, repository: str, ref: str, data: bytes, media_type: str) -> Digest:
        """Write the manifest blob; by tag (or "" for the only image) also point index.json."""
        digest = Digest.of(data)
        if _is_digest(ref) and Digest.parse(ref) != digest:
            raise DigestMismatchError(f"{self.name}: manifest is {digest}, not {ref}")
        if not self._dir.is_file(self._blob(digest)):
            self.upload_blob(repository, digest, len(data), [data])
        if not _is_digest(ref):
            with self._lock:
                self._point(ref, digest, len(data), media_type)
        return digest

    def _point(self, ref: str, digest: Digest, size: int, media_type: str) -> None:
        index = self.index()
        entries: list[dict[str, Any]] = index["manifests"]
        if ref == "":
            positions = list(range(len(entries)))
            if len(positions) > 1:
                raise NotFoundError(f"{self.name}: several images; name one as oci:PATH:TAG")
        else:
            positions = [i for i, e in enumerate(entries) if _name(e) == ref]
        new = {"mediaType": mt.base(media_type), "digest": str(digest), "size": size}
        if positions:
            # Keep what the old entry said beyond its identity (platform, other annotations).
            old = entries[positions[0]]
            new = {**old, **new}
            entries = [e for i, e in enumerate(entries) if i not in positions[1:]]
            entries[positions[0]] = new
        else:
            if ref:
                new["annotations"] = {REF_NAME: ref}
            entries.append(new)
        index["manifests"] = entries
        self._dir.write((INDEX_FILE,), [serialize(index)])

    def _ensure_layout(self) -> None:
        with self._lock:
            if self._dir.lexists((LAYOUT_FILE,)):
                self._check_layout_file()
                return
            try:
                self.path.mkdir(parents=True, exist_ok=True)  # the path the user named
            except OSError as exc:
                raise OciNormalizeError(
                    f"{self.name}: cannot create the layout directory ({exc.strerror})"
                ) from exc
            if self._dir.lexists((INDEX_FILE,)):
                raise MalformedManifestError(f"{self.name}: index.json without oci-layout")
            with self._dir.directory(("blobs", "sha256"), create=True):
                pass
            empty = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
            self._dir.write((INDEX_FILE,), [serialize(empty)])
            marker = {"imageLayoutVersion": LAYOUT_VERSION}
            self._dir.write((LAYOUT_FILE,), [serialize(marker)])


def _name(entry: dict[str, Any]) -> str | None:
    annotations = entry.get("annotations")
    if isinstance(annotations, dict) and isinstance(annotations.get(REF_NAME), str):
        return str(annotations[REF_NAME])
    return None


def _is_digest(ref: str) -> bool:
    """A digest, not a name: ref.name annotations may hold colons (``localhost/app:v1``)."""
    try:
        Digest.parse(ref)
    except InvalidDigestError:
        return False
    return True
