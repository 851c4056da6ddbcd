"""The writer (convert/push.py) against an in-memory store: order, bounds, blob memory."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from oci_normalize import mediatypes as mt
from oci_normalize.store.blobhomes import BlobHomes
from oci_normalize.convert.push import (
    INDEX_RACE_CODES,
    INDEX_RACE_WAITS_S,
    ManifestPut,
    TagGuard,
    WritePlan,
    execute,
)
from oci_normalize.digest import Digest
from oci_normalize.errors import DigestMismatchError, PushError, RegistryError
from oci_normalize.manifest import Fetched
from oci_normalize.models import Blob, NewBlob
from oci_normalize.store.base import BytesBlob, StreamBlob, opened


class MemoryStore:
    """A store keeping blobs per repository and recording every call in order."""

    def __init__(self, name: str, *, upload_delay: float = 0.0) -> None:
        self.registry = name
        self.requests = 0
        self.calls: list[str] = []
        self.blobs: dict[tuple[str, Digest], bytes] = {}
        self.tags: dict[tuple[str, str], Digest] = {}
        self.corrupt: set[Digest] = set()
        self._delay = upload_delay
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def _call(self, what: str) -> None:
        with self._lock:
            self.calls.append(what)
            self.requests += 1

    def get_manifest(
        self, repository: str, ref: str, *, expected: Digest | None = None, what: str = ""
    ) -> Fetched:
        raise NotImplementedError

    def head_manifest(self, repository: str, ref: str) -> Digest | None:
        self._call(f"HEAD {ref}")
        return self.tags.get((repository, ref))

    def put_manifest(self, repository: str, ref: str, data: bytes, media_type: str) -> Digest:
        self._call(f"PUT {ref}")
        self.tags[(repository, ref)] = Digest.of(data)
        return Digest.of(data)

    def put_manifest_confirmed(
        self, repository: str, ref: str, data: bytes, media_type: str
    ) -> tuple[Digest, bool]:
        return self.put_manifest(repository, ref, data, media_type), True

    def blob_exists(self, repository: str, digest: Digest) -> bool:
        self._call(f"HEAD blob {repository}")
        return (repository, digest) in self.blobs

    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        self._call(f"MOUNT {from_repository}->{repository}")
        if (from_repository, digest) not in self.blobs:
            return False
        self.blobs[(repository, digest)] = self.blobs[(from_repository, digest)]
        return True

    def open_blob(self, repository: str, digest: Digest) -> StreamBlob:
        self._call(f"GET blob {repository}")
        data = self.blobs[(repository, digest)]
        return BytesBlob(data[:-1] + b"!" if digest in self.corrupt else data)

    def upload_blob(self, repository: str, digest: Digest, size: int, chunks: Any) -> None:
        self._call(f"UPLOAD {repository}")
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            with opened(chunks) as body:
                data = b"".join(body)
            time.sleep(self._delay)
            self.blobs[(repository, digest)] = data
        finally:
            with self._lock:
                self.in_flight -= 1


def blob(store: MemoryStore, repo: str, data: bytes) -> Blob:
    digest = Digest.of(data)
    store.blobs[(repo, digest)] = data
    return Blob(digest=digest, size=len(data), media_type="application/vnd.oci.image.layer.v1.tar")


def put(ref: str, data: bytes) -> ManifestPut:
    return ManifestPut(ref, data, "application/vnd.oci.image.manifest.v1+json")


def test_writes_run_in_the_one_safe_order() -> None:
    src, dest = MemoryStore("src"), MemoryStore("dest")
    layer = blob(src, "a", b"layer")
    child, root = b'{"child":1}', b'{"root":1}'
    copy = b'{"referrer":1}'
    dest.tags[("b", "v1")] = Digest.of(b"old")
    writes = WritePlan(
        repository="b",
        new_blobs=(NewBlob(Digest.of(b"cfg"), "application/json", b"cfg"),),
        blobs=(layer,),
        source_repository="a",
        children=(put(str(Digest.of(child)), child),),
        referrers=(put(str(Digest.of(copy)), copy),),
        backup=put("v1-docker", b"old"),
        guard=TagGuard("v1", Digest.of(b"old")),
        tag=put("v1", root),
    )
    tags: list[str] = []
    execute(writes, dest=dest, source=src, on_tag=tags.append)
    assert dest.calls == [
        "HEAD blob b",  # the created config
        "UPLOAD b",
        "HEAD blob b",  # the layer
        "UPLOAD b",
        f"PUT {Digest.of(child)}",
        f"PUT {Digest.of(copy)}",
        "PUT v1-docker",
        "HEAD v1",  # the guard, after everything but the tag
        "PUT v1",
        "HEAD v1",  # the verify
    ]
    assert tags == ["v1-docker"]


def test_a_moved_tag_stops_before_the_tag() -> None:
    dest = MemoryStore("dest")
    dest.tags[("b", "v1")] = Digest.of(b"someone else")
    writes = WritePlan(repository="b", guard=TagGuard("v1", None), tag=put("v1", b"{}"))
    with pytest.raises(PushError, match="tag moved during conversion"):
        execute(writes, dest=dest)
    assert dest.calls == ["HEAD v1"]


def test_confirmed_put_needs_no_verify() -> None:
    dest = MemoryStore("dest")
    execute(WritePlan(repository="b", tag=put("v1", b"{}")), dest=dest, trust_echo=True)
    assert dest.calls == ["PUT v1"]


@pytest.mark.parametrize("concurrency", [1, 3])
def test_blob_streams_are_bounded(concurrency: int) -> None:
    src, dest = MemoryStore("src"), MemoryStore("dest", upload_delay=0.05)
    blobs = tuple(blob(src, "a", f"layer {i}".encode()) for i in range(8))
    writes = WritePlan(repository="b", blobs=blobs, source_repository="a")
    stats = execute(writes, dest=dest, source=src, blob_concurrency=concurrency)
    assert stats.blobs_uploaded == 8
    assert dest.max_in_flight == concurrency


def test_a_blob_goes_once_then_is_mounted_from_where_it_went() -> None:
    src, dest = MemoryStore("src"), MemoryStore("dest")
    layer = blob(src, "a", b"shared layer")
    homes = BlobHomes()
    first = execute(
        WritePlan(repository="one", blobs=(layer,), source_repository="a"),
        dest=dest,
        source=src,
        homes=homes,
    )
    again = execute(
        WritePlan(repository="one", blobs=(layer,), source_repository="a"),
        dest=dest,
        source=src,
        homes=homes,
    )
    other = execute(
        WritePlan(repository="two", blobs=(layer,), source_repository="a"),
        dest=dest,
        source=src,
        homes=homes,
    )
    assert (first.blobs_uploaded, other.blobs_mounted) == (1, 1)
    assert (again.blobs_uploaded, again.blobs_mounted) == (0, 0)  # already there
    assert dest.calls.count("UPLOAD one") == 1 and "UPLOAD two" not in dest.calls
    assert "MOUNT one->two" in dest.calls


def test_a_fresh_repository_needs_no_blob_head() -> None:
    src, dest = MemoryStore("src"), MemoryStore("dest")
    layer = blob(src, "a", b"layer")
    execute(
        WritePlan(repository="new", blobs=(layer,), source_repository="a", fresh=True),
        dest=dest,
        source=src,
    )
    assert dest.calls == ["UPLOAD new"]


def test_a_corrupt_source_blob_aborts_before_any_manifest() -> None:
    src, dest = MemoryStore("src"), MemoryStore("dest")
    layer = blob(src, "a", b"honest bytes")
    src.corrupt.add(layer.digest)
    writes = WritePlan(repository="b", blobs=(layer,), source_repository="a", tag=put("v1", b"{}"))
    with pytest.raises(DigestMismatchError):
        execute(writes, dest=dest, source=src)
    assert not [c for c in dest.calls if c.startswith("PUT")]


class RacingStore(MemoryStore):
    """Refuses the first ``refusals`` index PUTs with ``code``, as distribution 2.8 does when a
    child it names is still being linked by a concurrent PUT."""

    def __init__(self, code: str, refusals: int) -> None:
        super().__init__("dest")
        self.code, self.refusals = code, refusals

    def put_manifest(self, repository: str, ref: str, data: bytes, media_type: str) -> Digest:
        if mt.is_index(media_type) and self.refusals > 0:
            self.refusals -= 1
            self._call(f"PUT {ref} refused")
            raise RegistryError(f"push {ref}: {self.code}", status=400, code=self.code)
        return super().put_manifest(repository, ref, data, media_type)


def _index(ref: str) -> ManifestPut:
    return ManifestPut(ref, b'{"manifests":[]}', mt.OCI_INDEX)


@pytest.mark.parametrize("code", sorted(INDEX_RACE_CODES))
def test_an_index_refused_by_the_registry_race_is_sent_again(code: str) -> None:
    dest = RacingStore(code, refusals=1)
    execute(WritePlan(repository="b", tag=_index("v1")), dest=dest)
    assert dest.calls == ["PUT v1 refused", "PUT v1", "HEAD v1"]


def test_the_race_retry_is_bounded_and_only_for_indexes() -> None:
    dest = RacingStore("DIGEST_INVALID", refusals=99)
    with pytest.raises(RegistryError, match="DIGEST_INVALID"):
        execute(WritePlan(repository="b", tag=_index("v1")), dest=dest)
    assert dest.calls == ["PUT v1 refused"] * (len(INDEX_RACE_WAITS_S) + 1)
    other = RacingStore("DENIED", refusals=1)
    with pytest.raises(RegistryError, match="DENIED"):
        execute(WritePlan(repository="b", tag=_index("v1")), dest=other)
    assert other.calls == ["PUT v1 refused"]
