"""What a manifest's bytes say about themselves, wherever they were read from.

The effective media type (the body's ``mediaType``, else the Content-Type or the parent
descriptor), the 4 MiB cap, verification against the digest asked for or announced, and the
signed-schema1 rule that a manifest is addressed by its JWS payload. Shared by the registry
client and the local stores (:mod:`.layout`, :mod:`.archive`).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final

import requests

from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import (
    InvalidDigestError,
    MalformedManifestError,
    ManifestTooLargeError,
    RegistryError,
)

MAX_MANIFEST_BYTES: Final = 4 * 1024 * 1024


@dataclass(frozen=True)
class Fetched:
    data: bytes
    media_type: str  # effective type: body mediaType, else Content-Type
    digest: Digest


#: Opens a fresh body for one upload try: a context manager yielding the blob's chunks.
BodyOpener = Callable[[], AbstractContextManager[Iterable[bytes]]]


def effective_media_type(data: bytes, content_type: str, fallback: str = "") -> str:
    """The body's ``mediaType`` when present, else the Content-Type, else ``fallback``."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("mediaType"), str) and body["mediaType"]:
        return mt.base(body["mediaType"])
    if isinstance(body, dict) and body.get("schemaVersion") == 1:
        ctype = mt.base(content_type)
        return ctype if mt.is_schema1(ctype) else mt.DOCKER_SCHEMA1_SIGNED
    ctype = mt.base(content_type)
    if mt.is_manifest(ctype):
        return ctype
    return fallback or ctype


def read_capped(resp: requests.Response, cap: int, what: str) -> bytes:
    length = resp.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > cap:
        raise ManifestTooLargeError(f"{what}: manifest is {length} bytes, over the {cap} cap")
    buf = bytearray()
    for chunk in resp.iter_content(64 * 1024):
        buf += chunk
        if len(buf) > cap:
            raise ManifestTooLargeError(f"{what}: manifest is over the {cap} byte cap")
    return bytes(buf)


def parse_header_digest(value: str, what: str) -> Digest:
    try:
        return Digest.parse(value.strip())
    except InvalidDigestError as exc:
        raise RegistryError(f"{what}: registry sent a bad Docker-Content-Digest") from exc


def verify_manifest(
    data: bytes, media_type: str, expected: Digest | None, header: str | None, what: str
) -> Digest:
    # A signed schema1 manifest is identified by its JWS payload, without the signatures.
    content = jws_payload(data) if mt.base(media_type) == mt.DOCKER_SCHEMA1_SIGNED else data
    if expected is not None:
        expected.verify(content, what)
        return expected if expected.algorithm == "sha256" else Digest.of(content)
    if header:
        announced = parse_header_digest(header, what)
        announced.verify(content, what)
    return Digest.of(content)


def jws_payload(data: bytes) -> bytes:
    """The signed payload of a Docker schema1 "pretty JWS" manifest (what its digest covers).

    Each signature's protected header names ``formatLength`` (bytes of the body before the
    signatures) and ``formatTail`` (base64url of the closing bytes that replace them).
    Unsigned or unparseable bodies are returned unchanged.
    """
    try:
        body = json.loads(data)
        protected = body["signatures"][0]["protected"]
        header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
        length = int(header["formatLength"])
        tail_b64 = str(header["formatTail"])
        tail = base64.urlsafe_b64decode(tail_b64 + "=" * (-len(tail_b64) % 4))
    except (ValueError, KeyError, IndexError, TypeError):
        return data
    if not 0 < length <= len(data):
        return data
    return data[:length] + tail


def parse_body(data: bytes, what: str) -> dict[str, Any]:
    """Decode a manifest body; reject broken JSON, duplicate keys and non-objects."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise MalformedManifestError(f"{what}: duplicate key {key!r} in manifest JSON")
            out[key] = value
        return out

    try:
        body = json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedManifestError(f"{what}: manifest is not valid JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise MalformedManifestError(f"{what}: manifest JSON is not an object")
    return body


def serialize(obj: dict[str, Any]) -> bytes:
    """The one serialiser for rewritten manifests: compact, key order kept, UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def descriptors(
    body: dict[str, Any], media_type: str, what: str
) -> list[tuple[str, dict[str, Any]]]:
    """(where, descriptor) pairs of a manifest or index body, shape-checked."""
    out: list[tuple[str, dict[str, Any]]] = []
    if mt.is_index(media_type):
        entries = body.get("manifests")
        if not isinstance(entries, list):
            raise MalformedManifestError(f"{what}: index has no 'manifests' list")
        out.extend((f"manifests[{i}]", e) for i, e in enumerate(entries))
    elif mt.is_image_manifest(media_type):
        config, layers = body.get("config"), body.get("layers")
        if layers is None:  # buildkit writes "layers": null for FROM scratch; peers read []
            layers = []
        if not isinstance(config, dict) or not isinstance(layers, list):
            raise MalformedManifestError(f"{what}: manifest needs a 'config' object and 'layers'")
        out.append(("config", config))
        out.extend((f"layers[{i}]", layer) for i, layer in enumerate(layers))
    for where, desc in out:
        if not isinstance(desc, dict):
            raise MalformedManifestError(f"{what}: {where} is not a descriptor object")
        if not isinstance(desc.get("mediaType"), str) or not isinstance(desc.get("digest"), str):
            raise MalformedManifestError(f"{what}: {where} lacks mediaType or digest")
        try:
            Digest.parse(desc["digest"])
        except InvalidDigestError as exc:
            raise MalformedManifestError(f"{what}: {where}: {exc}") from exc
        size = desc.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise MalformedManifestError(f"{what}: {where} has no valid size")
    return out
