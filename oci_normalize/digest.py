"""Digests as values: parsed and checked at the edge, computed from bytes only."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

from oci_normalize.errors import DigestMismatchError, InvalidDigestError
from oci_normalize.text import printable

#: Algorithm → hex length. The OCI spec registers exactly these two.
ALGORITHMS: Final[dict[str, int]] = {"sha256": 64, "sha512": 128}
_HEX: Final = re.compile(r"[a-f0-9]+")
#: Longest piece of a bad digest string echoed in a message.
_SHOWN: Final = 160


@dataclass(frozen=True, order=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        algorithm, sep, hexpart = text.partition(":")
        want = ALGORITHMS.get(algorithm)
        if want is not None and len(hexpart) == want and _HEX.fullmatch(hexpart):
            return cls(algorithm, hexpart)
        shown = printable(text, limit=_SHOWN)
        if not sep:
            raise InvalidDigestError(f"invalid digest {shown!r}: expected ALGORITHM:HEX")
        if want is None:
            raise InvalidDigestError(
                f"invalid digest {shown!r}: unsupported algorithm "
                f"{printable(algorithm, limit=_SHOWN)!r}"
            )
        raise InvalidDigestError(
            f"invalid digest {shown!r}: {algorithm} needs {want} lower-case hex characters"
        )

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        if algorithm not in ALGORITHMS:
            raise InvalidDigestError(f"unsupported digest algorithm {algorithm!r}")
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        """A fresh hash object of this digest's algorithm, for streaming checks."""
        return hashlib.new(self.algorithm)

    def matches(self, data: bytes) -> bool:
        return hashlib.new(self.algorithm, data).hexdigest() == self.hex

    def verify(self, data: bytes, what: str = "content") -> None:
        if not self.matches(data):
            actual = Digest.of(data, self.algorithm)
            raise DigestMismatchError(f"{what}: expected {self}, got {actual}")

    @property
    def short(self) -> str:
        return f"{self.algorithm}:{self.hex[:12]}"

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"
