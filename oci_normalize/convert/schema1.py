"""Docker schema1 → OCI, the pure part: bytes and layer facts in, config and manifest bytes out.

A schema1 manifest has no config blob. Building one follows what Docker (``MakeConfigFromV1Config``)
and containers/image (``ToSchema2Config``) do, so the result matches ``skopeo copy --format oci``
in ``rootfs.diff_ids``, layer order and history:

* the config is built from the newest ``v1Compatibility`` entry (``history[0]``) as
  containers/image does when it writes OCI: only the fields of an OCI image config, in its
  order, empty and ``null`` values left out (``"Env": null`` would break the OCI schema), times
  in RFC 3339 as Go writes them; plus ``rootfs`` and ``history``;
* ``history`` has one entry per ``v1Compatibility``, oldest first: ``created``, ``created_by``
  (``container_config.Cmd`` joined by spaces, left out when that is empty, as for the base
  layer of a ``docker import``), ``author``, ``comment``, ``empty_layer`` for throwaway entries;
* ``fsLayers`` are listed newest first: they are reversed, and the layer of every throwaway entry
  (normally the shared empty gzip blob :data:`EMPTY_GZIP_LAYER`) is dropped;
* consecutive entries with the same ``id`` are one layer (Docker's ``fixManifestLayers``).

The uncompressed digests (``diff_ids``) and sizes of the kept layers need the layer bytes: the
caller streams them (see :mod:`.blobio`) and passes :class:`~.models.LayerFacts`.

Signed manifests (``…v1+prettyjws``) are addressed by the digest of their JWS payload (see
:func:`oci_normalize.manifest.signed_payload`); only that payload is converted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import (
    InvalidDigestError,
    MalformedManifestError,
    UnsupportedMediaTypeError,
)
from oci_normalize.manifest import json_value, serialize
from oci_normalize.models import Blob, LayerFacts, NewBlob

#: gzip of an empty tar (1024 zero bytes): the blob of every throwaway schema1 entry.
EMPTY_GZIP_LAYER: Final = Digest.parse(
    "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
)
_V1_ID: Final = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True)
class Entry:
    """One (fsLayer, v1Compatibility) pair, as listed (newest first)."""

    blob: Digest
    compat: dict[str, Any]

    @property
    def throwaway(self) -> bool:
        return self.compat.get("throwaway") is True


@dataclass(frozen=True)
class Converted:
    """A schema1 manifest rebuilt as OCI: manifest bytes, the new config blob, warnings."""

    manifest: bytes
    config: NewBlob
    blobs: tuple[Blob, ...]  # config first, then layers (oldest first), as in a manifest
    warnings: tuple[str, ...] = ()


def entries(body: dict[str, Any], what: str) -> list[Entry]:
    """The manifest's layers and history, newest first, validated and de-duplicated by id."""
    layers, history = body.get("fsLayers"), body.get("history")
    if not isinstance(layers, list) or not isinstance(history, list) or not layers:
        raise MalformedManifestError(f"{what}: schema1 manifest needs 'fsLayers' and 'history'")
    if len(layers) != len(history):
        raise MalformedManifestError(
            f"{what}: schema1 manifest lists {len(layers)} fsLayers but {len(history)} history"
        )
    out: list[Entry] = []
    for i, (layer, item) in enumerate(zip(layers, history, strict=True)):
        try:
            blob = Digest.parse(layer["blobSum"])
            compat = json_value(item["v1Compatibility"])
        except (KeyError, TypeError, ValueError, InvalidDigestError) as exc:
            raise MalformedManifestError(f"{what}: fsLayers/history[{i}] is malformed") from exc
        if not isinstance(compat, dict) or not _V1_ID.fullmatch(str(compat.get("id", ""))):
            raise MalformedManifestError(f"{what}: history[{i}] has no valid v1 'id'")
        out.append(Entry(blob, compat))
    if out[-1].compat.get("parent"):
        raise MalformedManifestError(f"{what}: the base layer of a schema1 image has a parent")
    seen: set[str] = set()
    kept: list[Entry] = []
    for entry in out:  # newest first: the first of a run of equal ids wins, as in Docker
        ident = entry.compat["id"]
        if kept and kept[-1].compat["id"] == ident:
            continue
        if ident in seen:
            raise MalformedManifestError(f"{what}: v1 id {ident} appears twice, apart")
        seen.add(ident)
        kept.append(entry)
    for newer, older in zip(kept, kept[1:], strict=False):
        if newer.compat.get("parent") != older.compat["id"]:
            raise MalformedManifestError(
                f"{what}: v1 id {newer.compat['id']} names parent "
                f"{newer.compat.get('parent')!r}, expected {older.compat['id']}"
            )
    return kept


def layer_blobs(body: dict[str, Any], what: str) -> list[Digest]:
    """The blobs that become layers, oldest first (throwaway entries dropped)."""
    return [e.blob for e in reversed(entries(body, what)) if not e.throwaway]


def history_entry(compat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(compat.get("created"), str) and compat["created"]:
        out["created"] = go_time(compat["created"])
    container_config = compat.get("container_config")
    cmd = container_config.get("Cmd") if isinstance(container_config, dict) else None
    created_by = " ".join(str(c) for c in cmd) if isinstance(cmd, list) else ""
    if created_by:
        out["created_by"] = created_by
    for key in ("author", "comment"):
        if isinstance(compat.get(key), str) and compat[key]:
            out[key] = compat[key]
    if compat.get("throwaway") is True:
        out["empty_layer"] = True
    return out


def convert(
    data: bytes,
    layers: Mapping[Digest, LayerFacts],
    what: str,
) -> Converted:
    """Build the OCI config and manifest of the schema1 manifest ``data``.

    ``layers`` must hold the facts of every kept layer blob. Both are written by the one
    serialiser of :mod:`oci_normalize.manifest`.
    """
    try:
        body = json_value(data)
    except ValueError as exc:
        raise MalformedManifestError(f"{what}: schema1 manifest is not valid JSON") from exc
    if not isinstance(body, dict) or body.get("schemaVersion") != 1:
        raise MalformedManifestError(f"{what}: not a schema1 manifest")
    listed = entries(body, what)
    warnings: list[str] = []
    kept: list[tuple[Digest, LayerFacts]] = []
    for entry in reversed(listed):
        if entry.throwaway:
            if entry.blob != EMPTY_GZIP_LAYER:
                warnings.append(
                    f"{what}: throwaway history entry {entry.compat['id'][:12]} carries layer "
                    f"{entry.blob.short}, not the empty layer; dropped as Docker does"
                )
            continue
        facts = layers.get(entry.blob)
        if facts is None:
            raise UnsupportedMediaTypeError(
                f"{what}: schema1 layer {entry.blob.short} has no known diff_id; converting "
                "schema1 needs every layer streamed first (api.convert does that)"
            )
        kept.append((entry.blob, facts))

    newest = listed[0].compat
    config = oci_config(newest, body.get("architecture"), what, warnings)
    config["rootfs"] = {"type": "layers", "diff_ids": [str(f.diff_id) for _, f in kept]}
    config["history"] = [history_entry(e.compat) for e in reversed(listed)]
    config_bytes = serialize(config)
    new_config = NewBlob(Digest.of(config_bytes), mt.OCI_CONFIG, config_bytes)

    config_desc = {
        "mediaType": mt.OCI_CONFIG,
        "digest": str(new_config.digest),
        "size": len(config_bytes),
    }
    layer_descs = [
        {"mediaType": f.media_type, "digest": str(blob), "size": f.size} for blob, f in kept
    ]
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": config_desc,
        "layers": layer_descs,
    }
    blobs = (
        Blob(new_config.digest, len(config_bytes), mt.OCI_CONFIG),
        *(Blob(blob, f.size, f.media_type) for blob, f in kept),
    )
    return Converted(serialize(manifest), new_config, blobs, tuple(warnings))


#: The OCI image config's fields, in the order containers/image writes them, with their JSON type.
_TOP_STRINGS: Final = ("author",)
_PLATFORM: Final[tuple[tuple[str, type], ...]] = (
    ("os.version", str),
    ("os.features", list),
    ("variant", str),
)
_RUN_CONFIG: Final[tuple[tuple[str, type], ...]] = (
    ("User", str),
    ("ExposedPorts", dict),
    ("Env", list),
    ("Entrypoint", list),
    ("Cmd", list),
    ("Volumes", dict),
    ("WorkingDir", str),
    ("Labels", dict),
    ("StopSignal", str),
    ("ArgsEscaped", bool),
)
_GO_TIME: Final = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")


def go_time(text: str) -> str:
    """An RFC 3339 time as Go re-writes it: fraction without trailing zeros, ``Z`` for UTC."""
    m = _GO_TIME.fullmatch(text)
    if m is None:
        return text
    fraction = (m.group(2) or "").rstrip("0")
    zone = "Z" if m.group(3) in ("Z", "+00:00", "-00:00") else m.group(3)
    return m.group(1) + (f".{fraction}" if fraction else "") + zone


def oci_config(
    compat: Mapping[str, Any], architecture: object, what: str, warnings: list[str]
) -> dict[str, Any]:
    """The OCI config fields of a v1Compatibility entry; empty, null or mistyped ones left out."""
    out: dict[str, Any] = {}
    if isinstance(compat.get("created"), str) and compat["created"]:
        out["created"] = go_time(compat["created"])
    for key in _TOP_STRINGS:
        if isinstance(compat.get(key), str) and compat[key]:
            out[key] = compat[key]
    arch = compat.get("architecture") or architecture
    out["architecture"] = arch if isinstance(arch, str) else ""
    if isinstance(compat.get("os"), str) and compat["os"]:
        out["os"] = compat["os"]
    else:
        out["os"] = "linux"
        warnings.append(f"{what}: v1Compatibility names no os; assumed linux")
    for key, kind in _PLATFORM:
        if isinstance(compat.get(key), kind) and compat[key]:
            out[key] = compat[key]
    run = compat.get("config")
    run = run if isinstance(run, dict) else {}
    run_config: dict[str, Any] = {}
    for key, kind in _RUN_CONFIG:
        value = run.get(key)
        if value is None or value in ("", [], {}, False):
            continue
        if not isinstance(value, kind):
            warnings.append(f"{what}: config.{key} is not a JSON {kind.__name__}; left out")
            continue
        run_config[key] = value
    out["config"] = run_config
    return out
