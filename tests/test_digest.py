from __future__ import annotations

import hashlib

import pytest

from oci_normalize.digest import Digest
from oci_normalize.errors import DigestMismatchError, InvalidDigestError


def test_of_and_parse_round_trip() -> None:
    d = Digest.of(b"hello")
    assert str(d) == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert Digest.parse(str(d)) == d
    assert d.matches(b"hello") and not d.matches(b"hello!")
    assert Digest.of(b"x", "sha512").hex == hashlib.sha512(b"x").hexdigest()


@pytest.mark.parametrize(
    "text",
    [
        "sha256",
        "sha256:",
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha256:" + "g" * 64,
        "SHA256:" + "a" * 64,
        "sha512:" + "a" * 64,
        "md5:" + "a" * 32,
        "sha256:../../" + "a" * 58,
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidDigestError):
        Digest.parse(text)


def test_verify_names_both_digests() -> None:
    d = Digest.of(b"a")
    d.verify(b"a")
    with pytest.raises(DigestMismatchError) as info:
        d.verify(b"b", "the thing")
    assert str(d) in str(info.value) and str(Digest.of(b"b")) in str(info.value)
    assert "the thing" in str(info.value)
