"""The writer (convert/push.py) against an in-memory store: order, bounds, blob memory."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import pytest

from oci_normalize import mediatypes as mt
from oci_normalize.convert.push import (
    INDEX_RACE_CODES,
    INDEX_RACE_WAITS_S,
    BlobPool,
    ManifestPut,
    TagGuard,
    WritePlan,
    execute,
)
from oci_normalize.digest import Digest
from oci_normalize.errors import DigestMismatchError, PushError, RegistryError
from oci_normalize.limits import CHUNK
from oci_normalize.models import Blob, NewBlob
from oci_normalize.store.base import StreamBlob
from oci_normalize.store.blobhomes import BlobHomes
from tests.support.memstore import MemoryStore, RacingStore


def blob(store: MemoryStore, repo: str, data: bytes) -> Blob:
    digest = store.add_blob(repo, data)
    return Blob(digest=digest, size=len(data), media_type="application/vnd.oci.image.layer.v1.tar")


def put(ref: str, data: bytes) -> ManifestPut:
    return ManifestPut(ref, data, "application/vnd.oci.image.manifest.v1+json")


def test_writes_run_in_the_one_safe_order() -> None:
    src, dest = MemoryStore("src"), MemoryStore("dest", echo_digest=False)  # verified by a HEAD
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
    config = str(Digest.of(b"cfg"))
    assert dest.log == [
        ("blob-head", "b", config),  # the created config
        ("blob-upload", "b", config),
        ("blob-head", "b", str(layer.digest)),
        ("blob-upload", "b", str(layer.digest)),
        ("PUT", "b", str(Digest.of(child))),
        ("PUT", "b", str(Digest.of(copy))),
        ("PUT", "b", "v1-docker"),
        ("HEAD", "b", "v1"),  # the guard, after everything but the tag
        ("PUT", "b", "v1"),
        ("HEAD", "b", "v1"),  # the verify
    ]
    assert tags == ["v1-docker"]


def test_a_moved_tag_stops_before_the_tag() -> None:
    dest = MemoryStore("dest")
    dest.tags[("b", "v1")] = Digest.of(b"someone else")
    writes = WritePlan(repository="b", guard=TagGuard("v1", None), tag=put("v1", b"{}"))
    with pytest.raises(PushError, match="tag moved during conversion"):
        execute(writes, dest=dest)
    assert dest.log == [("HEAD", "b", "v1")]


def test_confirmed_put_needs_no_verify() -> None:
    dest = MemoryStore("dest")
    execute(WritePlan(repository="b", tag=put("v1", b"{}")), dest=dest)
    assert dest.log == [("PUT", "b", "v1")]


def meet_in_groups_of(dest: MemoryStore, size: int) -> None:
    """Each upload to ``dest`` waits until ``size`` of them have begun: a writer that runs
    fewer at once fails (the barrier breaks after 10 s) instead of passing by luck of timing."""
    barrier = threading.Barrier(size, timeout=10)
    dest.before("blob-upload", barrier.wait, times=None)


@pytest.mark.parametrize("concurrency", [1, 3])
def test_blob_streams_are_bounded(concurrency: int) -> None:
    src, dest = MemoryStore("src"), MemoryStore("dest", upload_delay=0.05)
    meet_in_groups_of(dest, concurrency)
    count = 3 * concurrency
    blobs = tuple(blob(src, "a", f"layer {i}".encode()) for i in range(count))
    writes = WritePlan(repository="b", blobs=blobs, source_repository="a")
    stats = execute(writes, dest=dest, source=src, blob_concurrency=concurrency)
    assert stats.blobs_uploaded == count
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
    d = str(layer.digest)
    assert dest.log.count(("blob-upload", "one", d)) == 1
    assert ("blob-upload", "two", d) not in dest.log
    assert ("blob-mount", "two", d, "one") in dest.log


def test_a_fresh_repository_needs_no_blob_head() -> None:
    src, dest = MemoryStore("src"), MemoryStore("dest")
    layer = blob(src, "a", b"layer")
    execute(
        WritePlan(repository="new", blobs=(layer,), source_repository="a", fresh=True),
        dest=dest,
        source=src,
    )
    assert dest.log == [("blob-upload", "new", str(layer.digest))]


def test_a_corrupt_source_blob_aborts_before_any_manifest() -> None:
    src, dest = MemoryStore("src"), MemoryStore("dest")
    layer = blob(src, "a", b"honest bytes")
    src.lie(layer.digest, b"honest byteS")
    writes = WritePlan(repository="b", blobs=(layer,), source_repository="a", tag=put("v1", b"{}"))
    with pytest.raises(DigestMismatchError):
        execute(writes, dest=dest, source=src)
    assert not [op for op in dest.log if op[0] == "PUT"]


def test_a_source_blob_longer_than_its_descriptor_aborts_the_upload() -> None:
    src, dest = MemoryStore("src"), MemoryStore("dest")
    layer = blob(src, "a", b"honest bytes")
    src.lie(layer.digest, b"honest bytes and then some more")
    writes = WritePlan(repository="b", blobs=(layer,), source_repository="a", tag=put("v1", b"{}"))
    with pytest.raises(DigestMismatchError, match="does not match its digest/size"):
        execute(writes, dest=dest, source=src)
    assert ("b", layer.digest) not in dest.blobs
    assert not [op for op in dest.log if op[0] == "PUT"]


class _AskedStore(MemoryStore):
    """Records the chunk sizes each blob read asks for."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.asked: list[int] = []

    def open_blob(self, repository: str, digest: Digest) -> StreamBlob:
        with super().open_blob(repository, digest) as whole:
            data = b"".join(whole.iter_content(1 << 30))
        asked = self.asked

        class Recording(StreamBlob):
            def iter_content(self, chunk_size: int) -> Iterator[bytes]:
                asked.append(chunk_size)
                return super().iter_content(chunk_size)

        return Recording(io.BytesIO(data))


def test_a_blob_read_asks_for_no_more_than_the_blob_size() -> None:
    src, dest = _AskedStore("src"), MemoryStore("dest")
    small = blob(src, "a", b"x" * 1000)
    big = blob(src, "a", b"y" * (CHUNK + 1))
    execute(
        WritePlan(repository="b", blobs=(small, big), source_repository="a"), dest=dest, source=src
    )
    assert sorted(src.asked) == [1000, CHUNK]
    assert dest.blobs[("b", big.digest)] == b"y" * (CHUNK + 1)


def _index(ref: str) -> ManifestPut:
    return ManifestPut(ref, b'{"manifests":[]}', mt.OCI_INDEX)


@pytest.mark.parametrize("code", sorted(INDEX_RACE_CODES))
def test_an_index_refused_by_the_registry_race_is_sent_again(code: str) -> None:
    dest = RacingStore(code, refusals=1)
    execute(WritePlan(repository="b", tag=_index("v1")), dest=dest)
    # sent again once, and its answer echoed our digest: nothing to read back
    assert dest.log == [("PUT", "b", "v1", "failed"), ("PUT", "b", "v1")]


def test_the_race_retry_is_bounded_and_only_for_indexes() -> None:
    dest = RacingStore("DIGEST_INVALID", refusals=99)
    with pytest.raises(RegistryError, match="DIGEST_INVALID"):
        execute(WritePlan(repository="b", tag=_index("v1")), dest=dest)
    assert dest.log == [("PUT", "b", "v1", "failed")] * (len(INDEX_RACE_WAITS_S) + 1)
    other = RacingStore("DENIED", refusals=1)
    with pytest.raises(RegistryError, match="DENIED"):
        execute(WritePlan(repository="b", tag=_index("v1")), dest=other)
    assert other.log == [("PUT", "b", "v1", "failed")]


# ---- the shared blob pool ---------------------------------------------------------------------


def test_an_image_finishes_while_every_thread_of_the_pool_is_busy() -> None:
    """The caller streams its own blobs: a pool another caller keeps busy cannot hold it up
    (a pool filled by the batch's own workers would deadlock if the caller only waited)."""
    pool = BlobPool(1)
    release, held = threading.Event(), threading.Event()

    def hold(_: Blob) -> None:
        held.set()
        assert release.wait(10)

    src = MemoryStore("src")
    busy = [blob(src, "a", b"busy 1"), blob(src, "a", b"busy 2")]
    other = threading.Thread(target=pool.each, args=(busy, hold), kwargs={"concurrency": 2})
    other.start()
    try:
        assert held.wait(5)
        dest = MemoryStore("dest")
        blobs = tuple(blob(src, "a", f"layer {i}".encode()) for i in range(6))
        writes = WritePlan(repository="b", blobs=blobs, source_repository="a")
        done: list[int] = []
        worker = threading.Thread(
            target=lambda: done.append(
                execute(writes, dest=dest, source=src, blob_concurrency=4, pool=pool).blobs_uploaded
            )
        )
        worker.start()
        worker.join(10)
        assert done == [6], "the image waited on a pool it could not get"
    finally:
        release.set()
        other.join(10)


def test_the_pool_keeps_its_threads_for_the_next_image() -> None:
    pool = BlobPool(3)
    src = MemoryStore("src")
    before = set(threading.enumerate())
    for image in range(5):
        dest = MemoryStore("dest", upload_delay=0.05)
        meet_in_groups_of(dest, 4)
        blobs = tuple(blob(src, "a", f"image {image} layer {i}".encode()) for i in range(8))
        writes = WritePlan(repository="b", blobs=blobs, source_repository="a")
        execute(writes, dest=dest, source=src, blob_concurrency=4, pool=pool)
        assert dest.max_in_flight == 4  # the caller and three helpers
    made = [t for t in threading.enumerate() if t not in before]
    assert len(made) == 3  # one set of helpers for all five images, not three per image


def test_a_failing_blob_starts_nothing_new_and_is_raised() -> None:
    pool = BlobPool(2)
    src, dest = MemoryStore("src"), MemoryStore("dest", upload_delay=0.02)
    blobs = tuple(blob(src, "a", f"layer {i}".encode()) for i in range(12))
    src.lie(blobs[0].digest, b"not the layer")
    writes = WritePlan(repository="b", blobs=blobs, source_repository="a")
    with pytest.raises(DigestMismatchError):
        execute(writes, dest=dest, source=src, blob_concurrency=3, pool=pool)
    uploads = [op for op in dest.log if op[0] == "blob-upload"]
    assert len(uploads) < len(blobs) - 1  # stopped early, not after every blob


@pytest.mark.parametrize("concurrency", [1, 3])
def test_streaming_is_told_once_every_blob_streams_or_is_done(concurrency: int) -> None:
    # What a conversion does meanwhile (loading its result models) waits until no blob is
    # still being set up: each missing blob's upload has begun, one already there counts done.
    src, dest = MemoryStore("src"), MemoryStore("dest")
    blobs = tuple(blob(src, "a", f"layer {i}".encode()) for i in range(3))
    dest.add_blob("b", b"layer 0")
    told: list[list[tuple[str, ...]]] = []
    writes = WritePlan(repository="b", blobs=blobs, source_repository="a", tag=put("v1", b"{}"))
    execute(
        writes,
        dest=dest,
        source=src,
        blob_concurrency=concurrency,
        streaming=lambda: told.append(list(dest.log)),
    )
    assert len(told) == 1
    uploads = {op[2] for op in told[0] if op[0] == "blob-upload"}
    assert uploads == {str(b.digest) for b in blobs[1:]}
    assert not [op for op in told[0] if op[0] == "PUT"]
    assert ("PUT", "b", "v1") in dest.log


def test_streaming_is_told_before_the_manifests_when_there_is_no_blob_to_copy() -> None:
    dest = MemoryStore("dest")
    told: list[list[tuple[str, ...]]] = []
    execute(
        WritePlan(repository="b", tag=put("v1", b"{}")),
        dest=dest,
        streaming=lambda: told.append(list(dest.log)),
    )
    assert told == [[]]
    assert dest.log == [("PUT", "b", "v1")]
