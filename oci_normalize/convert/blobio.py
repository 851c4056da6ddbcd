"""Streaming layer facts: digests of compressed and uncompressed bytes, gunzipped on the fly.

The gunzip itself and layer spooling live in :mod:`oci_normalize.store.layerio`, where the
stores reach them too; nothing here holds a layer in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import ContentError, DigestMismatchError, UnsupportedMediaTypeError
from oci_normalize.models import LayerFacts
from oci_normalize.store.layerio import GZIP_MAGIC, ZSTD_MAGIC, Gunzip, sniffable


def layer_facts(chunks: Iterable[bytes], expected: Digest, what: str) -> LayerFacts:
    """Stream a layer blob: check its digest, measure it, and compute its diff_id.

    gzip blobs are gunzipped on the way; anything else is taken as a plain tar (its diff_id is
    then its own digest). zstd needs a library this tool does not depend on: refused.
    """
    blob_hash = expected.hasher()
    tar_hash = hashlib.sha256()
    size = 0
    gunzip: Gunzip | None = None
    kind = ""
    for chunk in sniffable(chunks):
        if not chunk:
            continue
        if not kind:
            if chunk.startswith(ZSTD_MAGIC):
                raise UnsupportedMediaTypeError(f"{what}: zstd-compressed layer not supported")
            kind = mt.OCI_LAYER_GZIP if chunk.startswith(GZIP_MAGIC) else mt.OCI_LAYER_TAR
            gunzip = Gunzip(what) if kind == mt.OCI_LAYER_GZIP else None
        blob_hash.update(chunk)
        size += len(chunk)
        if gunzip is None:
            tar_hash.update(chunk)
        else:
            for out in gunzip.feed(chunk):
                tar_hash.update(out)
    if gunzip is not None:
        for out in gunzip.finish():
            tar_hash.update(out)
    if blob_hash.hexdigest() != expected.hex:
        got = Digest(expected.algorithm, blob_hash.hexdigest())
        raise DigestMismatchError(f"{what}: layer blob hashes to {got}, not {expected}")
    if not kind:
        raise ContentError(f"{what}: layer blob is empty")
    return LayerFacts(Digest("sha256", tar_hash.hexdigest()), size, kind)
