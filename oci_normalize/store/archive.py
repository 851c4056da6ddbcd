"""``docker save`` tarballs (``docker-archive:PATH[:REF]``) as a read-only image source.

The archive's ``manifest.json`` lists, per image, a config file and layer files (plain tars as
Docker and skopeo write them, or gzip). :class:`ArchiveStore` turns the chosen image into an OCI
image in a private temporary directory:

* every layer is streamed out of the tar once: hashed uncompressed (its diff_id, checked against
  the config's ``rootfs.diff_ids``) and, when plain, gzip-compressed into a temp file, so its
  digest and size are known before anything is uploaded;
* the config is kept byte for byte (it only changes media type);
* an OCI manifest is built over them.

Nothing is written to the destination before all of this succeeded; a bad archive fails with one
error. The store then answers like a registry holding that one image.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from oci_normalize import mediatypes as mt
from oci_normalize.convert.blobio import CHUNK, spool_layer
from oci_normalize.digest import Digest
from oci_normalize.errors import (
    ContentError,
    DigestMismatchError,
    MalformedManifestError,
    ManifestTooLargeError,
    NotFoundError,
    OciNormalizeError,
    ReferenceError_,
)
from oci_normalize.manifest import BodyOpener, Fetched, serialize
from oci_normalize.reference import ArchiveRef, Reference
from oci_normalize.store.base import BlobStream, BytesBlob, FileBlob

MANIFEST_FILE: Final = "manifest.json"
MAX_MANIFEST_JSON: Final = 4 * 1024 * 1024
MAX_CONFIG_BYTES: Final = 16 * 1024 * 1024


@dataclass(frozen=True)
class ArchiveImage:
    """One entry of the archive's ``manifest.json``."""

    index: int
    config: str
    repo_tags: tuple[str, ...]
    layers: tuple[str, ...]


@dataclass(frozen=True)
class _Built:
    manifest: bytes
    digest: Digest
    config: bytes
    config_digest: Digest
    layers: dict[Digest, Path]


def _member(tar: tarfile.TarFile, name: str, what: str) -> IO[bytes]:
    for candidate in (name, f"./{name}", name.removeprefix("./")):
        try:
            member = tar.getmember(candidate)
        except KeyError:
            continue
        fh = tar.extractfile(member)  # follows links inside the archive
        if fh is None:
            raise MalformedManifestError(f"{what}: {name} is not a regular file in the archive")
        return fh
    raise NotFoundError(f"{what}: the archive has no {name}")


def _read_capped(tar: tarfile.TarFile, name: str, cap: int, what: str) -> bytes:
    with _member(tar, name, what) as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise ManifestTooLargeError(f"{what}: {name} is over {cap} bytes")
    return data


def read_images(tar: tarfile.TarFile, what: str) -> list[ArchiveImage]:
    raw = _read_capped(tar, MANIFEST_FILE, MAX_MANIFEST_JSON, what)
    try:
        entries = json.loads(raw)
    except ValueError as exc:
        raise MalformedManifestError(f"{what}: manifest.json is not valid JSON") from exc
    if not isinstance(entries, list):
        raise MalformedManifestError(f"{what}: manifest.json is not a list")
    out = []
    for i, entry in enumerate(entries):
        try:
            config, layers = entry["Config"], entry["Layers"]
            tags = entry.get("RepoTags") or []
            if not isinstance(config, str) or not all(isinstance(x, str) for x in layers + tags):
                raise TypeError("not strings")
        except (KeyError, TypeError, AttributeError) as exc:
            raise MalformedManifestError(f"{what}: manifest.json entry {i} is malformed") from exc
        out.append(ArchiveImage(i, config, tuple(tags), tuple(layers)))
    return out


def choose(images: list[ArchiveImage], image: str | None, what: str) -> ArchiveImage:
    """The image named by REF: ``@N``, a RepoTag (Docker Hub short forms match), or the only."""
    if image is None:
        if len(images) != 1:
            tags = [t for i in images for t in i.repo_tags]
            raise NotFoundError(
                f"{what}: holds {len(images)} images; name one as docker-archive:PATH:NAME:TAG "
                f"or :@N (tags: {', '.join(tags) or 'none'})"
            )
        return images[0]
    if image.startswith("@"):
        n = int(image[1:])
        if n >= len(images):
            raise NotFoundError(f"{what}: no image @{n} (the archive holds {len(images)})")
        return images[n]
    wanted = Reference.parse(image)
    for candidate in images:
        for tag in candidate.repo_tags:
            try:
                if tag == image or Reference.parse(tag) == wanted:
                    return candidate
            except ReferenceError_:
                continue
    raise NotFoundError(f"{what}: no image tagged {image!r}")


def diff_ids(config: bytes, what: str) -> list[str]:
    try:
        body = json.loads(config)
        ids = body["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedManifestError(f"{what}: config has no rootfs.diff_ids") from exc
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise MalformedManifestError(f"{what}: config rootfs.diff_ids is not a list of digests")
    return ids


def inspect(ref: ArchiveRef) -> tuple[ArchiveImage, bytes]:
    """The chosen image's entry and config bytes; cheap (no layer is read)."""
    what = str(ref)
    with _open(ref) as tar:
        image = choose(read_images(tar, what), ref.image, what)
        return image, _read_capped(tar, image.config, MAX_CONFIG_BYTES, what)


def _open(ref: ArchiveRef) -> tarfile.TarFile:
    try:
        return tarfile.open(ref.path, mode="r:*")
    except FileNotFoundError as exc:
        raise NotFoundError(f"{ref}: no such file") from exc
    except (tarfile.TarError, OSError) as exc:
        raise ContentError(f"{ref}: not a readable tar archive ({exc})") from exc


def _chunks(fh: IO[bytes]) -> Iterator[bytes]:
    while chunk := fh.read(CHUNK):
        yield chunk


class ArchiveStore:
    """A read-only store holding the one image ``ref`` names, converted on first use."""

    def __init__(self, ref: ArchiveRef, *, workdir: str | Path | None = None) -> None:
        self.ref = ref
        self.registry = ref.registry
        self.requests = 0
        self._workdir = workdir
        self._tmp: Path | None = None
        self._built: _Built | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp, self._built = None, None

    def __enter__(self) -> ArchiveStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load(self) -> _Built:
        with self._lock:
            if self._built is None:
                self._tmp = Path(
                    tempfile.mkdtemp(prefix="oci-normalize-archive-", dir=self._workdir)
                )
                try:
                    self._built = self._build(self._tmp)
                except BaseException:
                    shutil.rmtree(self._tmp, ignore_errors=True)
                    self._tmp = None
                    raise
            return self._built

    def _build(self, tmp: Path) -> _Built:
        what = str(self.ref)
        with _open(self.ref) as tar:
            image = choose(read_images(tar, what), self.ref.image, what)
            config = _read_capped(tar, image.config, MAX_CONFIG_BYTES, what)
            wanted = diff_ids(config, what)
            if len(wanted) != len(image.layers):
                raise MalformedManifestError(
                    f"{what}: manifest.json lists {len(image.layers)} layers, "
                    f"the config {len(wanted)} diff_ids"
                )
            layers: dict[Digest, Path] = {}
            descs: list[dict[str, Any]] = []
            done: dict[str, tuple[dict[str, Any], str]] = {}
            for name, want in zip(image.layers, wanted, strict=True):
                if name in done:  # the same tar twice: one blob, one diff_id
                    if done[name][1] != want:
                        raise DigestMismatchError(f"{what}: layer {name} listed with two diff_ids")
                    descs.append(dict(done[name][0]))
                    continue
                layer_what = f"{what} layer {name}"
                with _member(tar, name, what) as fh:
                    spooled = spool_layer(_chunks(fh), tmp, layer_what)
                if str(spooled.diff_id) != want:
                    raise DigestMismatchError(
                        f"{layer_what}: uncompressed content is {spooled.diff_id}, "
                        f"but the config lists diff_id {want}"
                    )
                layers[spooled.digest] = spooled.path
                desc = {
                    "mediaType": mt.OCI_LAYER_GZIP,
                    "digest": str(spooled.digest),
                    "size": spooled.size,
                }
                done[name] = (desc, want)
                descs.append(dict(desc))
        config_digest = Digest.of(config)
        manifest = serialize(
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": {
                    "mediaType": mt.OCI_CONFIG,
                    "digest": str(config_digest),
                    "size": len(config),
                },
                "layers": descs,
            }
        )
        return _Built(manifest, Digest.of(manifest), config, config_digest, layers)

    # ---- the Store interface ----------------------------------------------------------------

    def get_manifest(
        self, repository: str, ref: str, *, expected: Digest | None = None, what: str = ""
    ) -> Fetched:
        built = self._load()
        self.requests += 1
        if ref not in ("", str(built.digest)) or expected not in (None, built.digest):
            raise NotFoundError(f"{what or self.registry}: the archive image is {built.digest}")
        return Fetched(data=built.manifest, media_type=mt.OCI_MANIFEST, digest=built.digest)

    def head_manifest(self, repository: str, ref: str) -> Digest | None:
        built = self._load()
        return built.digest if ref in ("", str(built.digest)) else None

    def blob_exists(self, repository: str, digest: Digest) -> bool:
        built = self._load()
        return digest == built.config_digest or digest in built.layers

    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        return False

    def open_blob(self, repository: str, digest: Digest) -> BlobStream:
        built = self._load()
        self.requests += 1
        if digest == built.config_digest:
            return BytesBlob(built.config)
        path = built.layers.get(digest)
        if path is None:
            raise NotFoundError(f"{self.registry}: no blob {digest}")
        return FileBlob(path)

    def put_manifest(self, repository: str, ref: str, data: bytes, media_type: str) -> Digest:
        raise OciNormalizeError(f"{self.registry}: docker-archive is a source only")

    def put_manifest_confirmed(
        self, repository: str, ref: str, data: bytes, media_type: str
    ) -> tuple[Digest, bool]:
        raise OciNormalizeError(f"{self.registry}: docker-archive is a source only")

    def upload_blob(
        self, repository: str, digest: Digest, size: int, chunks: Iterable[bytes] | BodyOpener
    ) -> None:
        raise OciNormalizeError(f"{self.registry}: docker-archive is a source only")
