"""What a manifest's bytes say about themselves, wherever they were read from.

The effective media type (the body's ``mediaType``, else the Content-Type or the parent
descriptor), the 4 MiB cap, verification against the digest asked for or announced, and the
signed-schema1 rule that a manifest is addressed by its JWS payload. Shared by the registry
client and the local stores (:mod:`~.store.layout`, :mod:`~.store.archive`).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final

from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import (
    InvalidDigestError,
    MalformedManifestError,
    RegistryError,
)
from oci_normalize.limits import MAX_JSON_DEPTH
from oci_normalize.text import printable

MAX_MANIFEST_BYTES: Final = 4 * 1024 * 1024
#: Longest media type or artifact type accepted in a descriptor (RFC 6838 names are ≤ 255).
MAX_MEDIA_TYPE_CHARS: Final = 512


@dataclass(frozen=True)
class VerifiedManifest:
    """A manifest as verified: ``data`` are exactly the bytes its digest covers.

    For a signed schema1 manifest that is the JWS payload, and ``size`` (the length of the body
    as served, which a descriptor's ``size`` counts) is larger; otherwise ``size`` is
    ``len(data)``.
    """

    data: bytes
    media_type: str  # effective type: body mediaType, else Content-Type
    digest: Digest
    size: int | None = None
    #: For a signed schema1 manifest, the body as served: ``data`` plus nothing but its
    #: signature block (checked). Never parsed; kept only to put the original back as it was
    #: (a registry refuses a schema1 manifest without signatures).
    signed: bytes | None = None

    @property
    def body_size(self) -> int:
        return len(self.data) if self.size is None else self.size


#: Opens a fresh body for one upload try: a context manager yielding the blob's chunks.
BodyOpener = Callable[[], AbstractContextManager[Iterable[bytes | memoryview]]]


def effective_media_type(data: bytes, content_type: str, fallback: str = "") -> str:
    """The body's ``mediaType`` when present, else the Content-Type, else ``fallback``."""
    try:
        body = json.loads(data) if not too_deep(data) else None
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("mediaType"), str) and body["mediaType"]:
        # A type with control characters matches nothing we know; shown, it must not act.
        return printable(mt.base(body["mediaType"]), limit=MAX_MEDIA_TYPE_CHARS)
    if isinstance(body, dict) and body.get("schemaVersion") == 1:
        ctype = mt.base(content_type)
        return ctype if mt.is_schema1(ctype) else mt.DOCKER_SCHEMA1_SIGNED
    ctype = printable(mt.base(content_type), limit=MAX_MEDIA_TYPE_CHARS)
    if mt.is_manifest(ctype):
        return ctype
    return fallback or ctype


def parse_header_digest(value: str, what: str) -> Digest:
    try:
        return Digest.parse(value.strip())
    except InvalidDigestError as exc:
        raise RegistryError(f"{what}: registry sent a bad Docker-Content-Digest") from exc


def verify_manifest(
    data: bytes, media_type: str, expected: Digest | None, header: str | None, what: str
) -> tuple[Digest, bytes]:
    """Check a manifest body; return its digest and the bytes that digest covers.

    A body that really is a signed schema1 manifest (a schema1 type and a ``signatures``
    block) is identified by its JWS payload (:func:`signed_payload`), and that payload is what
    is returned, to be parsed and converted: nothing outside the verified bytes is ever used.
    Every other body is verified, and used, whole.
    """
    content = data
    if mt.is_schema1(mt.base(media_type)):
        content = jws_payload(data, what)
    if expected is not None:
        expected.verify(content, what)
        return (expected if expected.algorithm == "sha256" else Digest.of(content)), content
    if header:
        announced = parse_header_digest(header, what)
        announced.verify(content, what)
    return Digest.of(content), content


def jws_payload(data: bytes, what: str = "schema1 manifest") -> bytes:
    """The signed payload of a Docker schema1 "pretty JWS" manifest (what its digest covers).

    Bodies that are not signed schema1 manifests are returned unchanged; a malformed
    signature block raises (see :func:`signed_payload`).
    """
    payload = signed_payload(data, what)
    return data if payload is None else payload


def signed_payload(data: bytes, what: str) -> bytes | None:
    """The JWS payload of a signed schema1 body, None when the body has no ``signatures``.

    Each signature's protected header names ``formatLength`` (bytes of the body before the
    signatures) and ``formatTail`` (base64url of the closing bytes that replace them). They are
    unverified, so the body must prove them right: every signature agrees on both, and what
    follows ``formatLength`` is nothing but the ``"signatures"`` member and the closing brace.
    Then the payload is the only content in the body. Anything else is refused.
    """
    try:
        body = parse_body(data, what)
    except MalformedManifestError:
        return None  # not JSON: verified (and refused) as a whole body elsewhere
    if "signatures" not in body:
        return None
    bad = MalformedManifestError(f"{what}: malformed schema1 signature block")
    sigs = body["signatures"]
    if not isinstance(sigs, list) or not sigs:
        raise bad
    formats: set[tuple[int, bytes]] = set()
    for sig in sigs:
        try:
            protected = str(sig["protected"])
            header = json.loads(_b64(protected))
            length = header["formatLength"]
            tail = _b64(str(header["formatTail"]))
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise bad from exc
        if not isinstance(length, int) or isinstance(length, bool):
            raise bad
        formats.add((length, tail))
    if len(formats) != 1:
        raise bad
    ((length, tail),) = formats
    if not 0 < length < len(data):
        raise bad
    rest = data[length:].lstrip(b" \t\r\n")
    if not rest.startswith(b","):
        raise bad
    try:
        trailer = parse_body(b"{" + rest[1:], what)
    except MalformedManifestError as exc:
        raise bad from exc
    if set(trailer) != {"signatures"}:
        raise bad
    payload = data[:length] + tail
    try:
        if "signatures" in parse_body(payload, what):
            raise bad
    except MalformedManifestError as exc:
        raise bad from exc
    return payload


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def too_deep(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when JSON brackets nest deeper than ``limit`` (a scan, no parsing, no recursion).

    Brackets inside strings count too, which can only make the answer more cautious.
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    depth = 0
    for byte in data:
        if byte == 0x5B or byte == 0x7B:
            depth += 1
            if depth > limit:
                return True
        elif byte == 0x5D or byte == 0x7D:
            depth -= 1
    return False


class DuplicateKeyError(ValueError):
    """An object with one key twice (never leaves this package: callers translate it)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {printable(key, limit=40)!r}")
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A ``json.loads`` object hook that refuses an object holding one key twice: readers
    disagree on which value wins, so such a document means different things to different tools."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(key)
        out[key] = value
    return out


def _not_json_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:24]} is out of range")
    return value


def json_value(text: str | bytes) -> Any:
    """``json.loads`` as Go's encoding/json reads: no ``NaN``/``Infinity``, no number out of a
    double's range, nesting bounded; any of those is a ValueError (for JSON inside a manifest,
    such as schema1's ``v1Compatibility``, whose values end up in a config we write)."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if too_deep(raw):
        raise ValueError(f"JSON nests deeper than {MAX_JSON_DEPTH}")
    try:
        return json.loads(text, parse_constant=_not_json_constant, parse_float=_finite)
    except RecursionError as exc:
        raise ValueError("JSON nests too deep") from exc


def parse_body(data: bytes, what: str) -> dict[str, Any]:
    """Decode a manifest body; reject broken JSON, duplicate keys and non-objects.

    Also refused, as Go's encoding/json (registries, skopeo, containerd) refuses them, and as
    no JSON writer could write them back: ``NaN``/``Infinity`` and numbers out of a double's
    range. A lone UTF-16 surrogate escape is read (Go reads it too, as U+FFFD); see
    :func:`serialize` for how it is written.
    """
    if too_deep(data):
        raise MalformedManifestError(f"{what}: manifest JSON nests deeper than {MAX_JSON_DEPTH}")
    try:
        body = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=unique_keys,
            parse_constant=_not_json_constant,
            parse_float=_finite,
        )
    except DuplicateKeyError as exc:
        raise MalformedManifestError(f"{what}: duplicate key {exc.key!r} in manifest JSON") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedManifestError(f"{what}: manifest is not valid JSON ({exc})") from exc
    except (RecursionError, ValueError) as exc:  # e.g. a number too long to convert
        reason = printable(str(exc), limit=100)
        raise MalformedManifestError(f"{what}: manifest is not usable JSON ({reason})") from exc
    if not isinstance(body, dict):
        raise MalformedManifestError(f"{what}: manifest JSON is not an object")
    return body


def check_type_fields(desc: dict[str, Any], what: str) -> None:
    """A descriptor's ``mediaType`` and ``artifactType`` are short printable strings.

    They end up in messages, ``--json`` and reports; a control character in one could forge
    terminal output, and no real media type has one (RFC 6838)."""
    for key in ("mediaType", "artifactType"):
        value = desc.get(key)
        if value is None and key == "artifactType":
            continue
        if (
            not isinstance(value, str)
            or len(value) > MAX_MEDIA_TYPE_CHARS
            or printable(value, limit=MAX_MEDIA_TYPE_CHARS) != value
        ):
            raise MalformedManifestError(f"{what}: {key} is not a printable media type")


def serialize(obj: dict[str, Any]) -> bytes:
    """The one serialiser for rewritten manifests: compact, key order kept, UTF-8.

    A string holding a lone UTF-16 surrogate (read from a ``\\ud800`` escape) has no UTF-8
    form; such a document is written with every non-ASCII character escaped, still valid JSON
    that reads back the same.
    """
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")


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
        check_type_fields(desc, f"{what}: {where}")
        try:
            Digest.parse(desc["digest"])
        except InvalidDigestError as exc:
            raise MalformedManifestError(f"{what}: {where}: {exc}") from exc
        size = desc.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise MalformedManifestError(f"{what}: {where} has no valid size")
    return out
