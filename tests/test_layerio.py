"""Spooling a layer to a temp file (store/layerio.py): gzip kept, plain tars compressed."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import pytest

from oci_normalize.digest import Digest
from oci_normalize.errors import ContentError
from oci_normalize.store.layerio import spool_layer

RAW = os.urandom(200_000) + b"\0" * 3_000_000


def _chunks(data: bytes, size: int = 65_536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("compressed", [True, False])
def test_spool_layer(tmp_path: Path, compressed: bool) -> None:
    source = gzip.compress(RAW, mtime=0) if compressed else RAW
    spooled = spool_layer(_chunks(source), tmp_path, "t")
    written = spooled.path.read_bytes()
    assert gzip.decompress(written) == RAW
    assert spooled.digest == Digest("sha256", hashlib.sha256(written).hexdigest())
    assert (spooled.size, spooled.diff_id) == (len(written), Digest.of(RAW))
    if compressed:
        assert written == source  # gzip input is kept byte for byte


def test_spool_failure_leaves_no_temp_file(tmp_path: Path) -> None:
    with pytest.raises(ContentError):
        spool_layer(_chunks(gzip.compress(RAW)[:-30]), tmp_path, "t")
    assert list(tmp_path.iterdir()) == []
