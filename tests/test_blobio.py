"""Streaming layer digests: gunzip edge cases, bounded memory per step."""

from __future__ import annotations

import gzip
import os

import pytest

from oci_normalize import mediatypes as mt
from oci_normalize.convert.blobio import layer_facts
from oci_normalize.digest import Digest
from oci_normalize.errors import ContentError, DigestMismatchError, UnsupportedMediaTypeError

RAW = os.urandom(200_000) + b"\0" * 3_000_000


def _chunks(data: bytes, size: int = 65_536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize(
    ("blob", "media_type"),
    [
        (gzip.compress(RAW), mt.OCI_LAYER_GZIP),
        (gzip.compress(RAW[:10]) + gzip.compress(RAW[10:]), mt.OCI_LAYER_GZIP),  # two members
        (gzip.compress(RAW) + b"\0" * 4096, mt.OCI_LAYER_GZIP),  # zero padding
        (RAW, mt.OCI_LAYER_TAR),  # a plain tar is its own diff_id
    ],
)
def test_layer_facts(blob: bytes, media_type: str) -> None:
    for size in (1, 7, 65_536):
        chunks = _chunks(blob, size) if size > 1 else _chunks(blob[:64], 1) + [blob[64:]]
        facts = layer_facts(chunks, Digest.of(blob), "t")
        assert (facts.diff_id, facts.size, facts.media_type) == (
            Digest.of(RAW),
            len(blob),
            media_type,
        )


@pytest.mark.parametrize(
    ("blob", "error", "message"),
    [
        (gzip.compress(RAW)[:-30], ContentError, "truncated gzip"),
        (gzip.compress(RAW) + b"trailing junk", ContentError, "garbage after"),
        (b"\x1f\x8b\x08\x00" + b"\xff" * 100, ContentError, "corrupt gzip|truncated"),
        (b"\x28\xb5\x2f\xfd" + b"\0" * 10, UnsupportedMediaTypeError, "zstd"),
    ],
)
def test_bad_layers(blob: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        layer_facts(_chunks(blob), Digest.of(blob), "t")


def test_digest_mismatch_is_caught_while_streaming() -> None:
    blob = gzip.compress(RAW)
    with pytest.raises(DigestMismatchError):
        layer_facts(_chunks(blob), Digest.of(b"other"), "t")
