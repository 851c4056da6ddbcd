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

The tarball is read only through :mod:`.tarmembers` (regular file, capped member list, names
without ``..``, links contained, truncation and corruption as one error).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import (
    DigestMismatchError,
    InvalidReferenceError,
    MalformedManifestError,
    NotFoundError,
    OciNormalizeError,
)
from oci_normalize.manifest import MAX_MANIFEST_BYTES, BodyOpener, VerifiedManifest, serialize
from oci_normalize.reference import ArchiveRef, Reference
from oci_normalize.store.base import BlobStream, bytes_blob, file_blob
from oci_normalize.store.layerio import spool_layer
from oci_normalize.store.tarmembers import Members, chunks, member_name, open_tar, show
from oci_normalize.text import printable

MANIFEST_FILE: Final = "manifest.json"
#: docker-archive's manifest.json is capped like any manifest.
MAX_MANIFEST_JSON: Final = MAX_MANIFEST_BYTES
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


def _json(raw: bytes, what: str, name: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise MalformedManifestError(f"{what}: {name} is not valid JSON") from exc


def read_images(members: Members, what: str) -> list[ArchiveImage]:
    entries = _json(members.read(MANIFEST_FILE, MAX_MANIFEST_JSON), what, MANIFEST_FILE)
    if not isinstance(entries, list):
        raise MalformedManifestError(f"{what}: manifest.json is not a list")
    return [_image(i, entry, what) for i, entry in enumerate(entries)]


def _image(i: int, entry: object, what: str) -> ArchiveImage:
    """One manifest.json entry; a fault names its field. ``null`` lists read as empty (buildkit
    writes ``"Layers": null`` for ``FROM scratch``; docker and skopeo load it)."""
    where = f"{what}: manifest.json entry {i}"
    if not isinstance(entry, dict):
        raise MalformedManifestError(f"{where} is not an object")
    config = entry.get("Config")
    if not isinstance(config, str) or not config:
        raise MalformedManifestError(f"{where}: Config is {_shape(config)}, not a file name")
    fields: dict[str, tuple[str, ...]] = {}
    for key in ("Layers", "RepoTags"):
        value = entry.get(key)
        if value is None:
            value = []
        if not isinstance(value, list):
            raise MalformedManifestError(f"{where}: {key} is {_shape(value)}, not a list")
        for n, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise MalformedManifestError(f"{where}: {key}[{n}] is {_shape(item)}")
        fields[key] = tuple(value)
    layers = tuple(member_name(layer, where) for layer in fields["Layers"])
    return ArchiveImage(i, member_name(config, where), fields["RepoTags"], layers)


def _shape(value: object) -> str:
    if value is None:
        return "null or missing"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    return f"a JSON {type(value).__name__.replace('dict', 'object').replace('list', 'array')}"


def choose(images: list[ArchiveImage], image: str | None, what: str) -> ArchiveImage:
    """The image named by REF: ``@N``, a RepoTag (Docker Hub short forms match), or the only."""
    if image is None:
        if len(images) != 1:
            tags = [t for i in images for t in i.repo_tags]
            raise NotFoundError(
                f"{what}: holds {len(images)} images; name one as docker-archive:PATH:NAME:TAG "
                f"or :@N (tags: {printable(', '.join(tags)) or 'none'})"
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
            except InvalidReferenceError:
                continue
    raise NotFoundError(f"{what}: no image tagged {image!r}")


def diff_ids(config: bytes, what: str) -> list[str]:
    try:
        body = json.loads(config)
        ids = body["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise MalformedManifestError(f"{what}: config has no rootfs.diff_ids") from exc
    if ids is None:  # FROM scratch, as buildkit writes it
        ids = []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise MalformedManifestError(f"{what}: config rootfs.diff_ids is not a list of digests")
    return ids


def inspect(ref: ArchiveRef) -> tuple[ArchiveImage, bytes]:
    """The chosen image's entry and config bytes; cheap (no layer is read)."""
    what = str(ref)
    with _open(ref) as members:
        image = choose(read_images(members, what), ref.image, what)
        for name in image.layers:  # each must be a regular member (links contained): no read
            members.resolve(name)
        return image, members.read(image.config, MAX_CONFIG_BYTES)


@contextmanager
def _open(ref: ArchiveRef) -> Iterator[Members]:
    with open_tar(ref.path, str(ref)) as members:
        yield members


class ArchiveStore:
    """A read-only store holding the one image ``ref`` names, converted on first use."""

    def __init__(self, ref: ArchiveRef, *, workdir: str | Path | None = None) -> None:
        self.ref = ref
        self.name = ref.store_name
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
                try:
                    self._tmp = Path(
                        tempfile.mkdtemp(prefix="oci-normalize-archive-", dir=self._workdir)
                    )
                except OSError as exc:
                    raise OciNormalizeError(
                        f"{self.ref}: cannot make a temporary directory ({exc.strerror or exc})"
                    ) from exc
                try:
                    self._built = self._build(self._tmp)
                except OSError as exc:  # the temporary copy: disk full, no permission
                    shutil.rmtree(self._tmp, ignore_errors=True)
                    self._tmp = None
                    raise OciNormalizeError(
                        f"{self.ref}: cannot write the converted layers to "
                        f"{self._workdir or tempfile.gettempdir()} ({exc.strerror or exc})"
                    ) from exc
                except BaseException:
                    shutil.rmtree(self._tmp, ignore_errors=True)
                    self._tmp = None
                    raise
            return self._built

    def _build(self, tmp: Path) -> _Built:
        what = str(self.ref)
        with _open(self.ref) as tar:
            image = choose(read_images(tar, what), self.ref.image, what)
            config = tar.read(image.config, MAX_CONFIG_BYTES)
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
                        raise DigestMismatchError(
                            f"{what}: layer {show(name)} listed with two diff_ids"
                        )
                    descs.append(dict(done[name][0]))
                    continue
                layer_what = f"{what} layer {show(name)}"
                with tar.open(name) as fh:
                    spooled = spool_layer(chunks(fh, what), tmp, layer_what)
                if str(spooled.diff_id) != want:
                    raise DigestMismatchError(
                        f"{layer_what}: uncompressed content is {spooled.diff_id}, "
                        f"but the config lists diff_id {show(want)}"
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
    ) -> VerifiedManifest:
        built = self._load()
        self.requests += 1
        if ref not in ("", str(built.digest)) or expected not in (None, built.digest):
            raise NotFoundError(f"{what or self.name}: the archive image is {built.digest}")
        return VerifiedManifest(
            data=built.manifest, media_type=mt.OCI_MANIFEST, digest=built.digest
        )

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
            return bytes_blob(built.config)
        path = built.layers.get(digest)
        if path is None:
            raise NotFoundError(f"{self.name}: no blob {digest}")
        return file_blob(path)

    def put_manifest(self, repository: str, ref: str, data: bytes, media_type: str) -> Digest:
        raise OciNormalizeError(f"{self.name}: docker-archive is a source only")

    def put_manifest_confirmed(
        self, repository: str, ref: str, data: bytes, media_type: str
    ) -> tuple[Digest, bool]:
        raise OciNormalizeError(f"{self.name}: docker-archive is a source only")

    def upload_blob(
        self, repository: str, digest: Digest, size: int, chunks: Iterable[bytes] | BodyOpener
    ) -> None:
        raise OciNormalizeError(f"{self.name}: docker-archive is a source only")
