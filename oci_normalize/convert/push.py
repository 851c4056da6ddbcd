"""The writer: one ordered list of writes, executed in the only safe order.

A conversion's writes are data (:class:`WritePlan`, made by :mod:`.planner` before anything
moves); :func:`execute` runs them as blobs → children → referrers → sign runs → backup → guard →
tag → verify. Blobs are made
present the cheapest way: already there (remembered, or a HEAD), a cross-repository mount
(from a repository of the destination registry that this run saw holding the blob, or from the
source repository on the same registry), or a streamed copy hashed on the way through and never
held in memory whole. Up to ``blob_concurrency`` blobs of one image stream at once, on the
caller's thread and on helpers from one pool shared by every image (:class:`BlobPool`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final, Literal

from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import DigestMismatchError, PushError, RegistryError, TagMovedError
from oci_normalize.limits import CHUNK, DEFAULT_BLOB_CONCURRENCY, MAX_BLOB_CONCURRENCY
from oci_normalize.models import Blob, NewBlob
from oci_normalize.results import TagRole
from oci_normalize.store.base import BlobStream, Store, chunks_into
from oci_normalize.store.blobhomes import BlobHomes

#: Answers distribution 2.8 sometimes gives an index PUT while a child it names is still being
#: linked by a concurrent PUT of the same child (seen with 4 batch workers, ~1 in 1,000 refs).
#: Our bytes are hashed locally, so these are the registry racing itself: the PUT is retried.
INDEX_RACE_CODES: Final = frozenset({"DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN"})
INDEX_RACE_WAITS_S: Final = (0.2, 1.0)


@dataclass
class PushStats:
    manifests: int = 0
    blobs_uploaded: int = 0
    blobs_mounted: int = 0
    signed: int = 0  # --sign-with runs that succeeded
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, what: str) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)


@dataclass(frozen=True)
class ManifestPut:
    """One manifest PUT under ``ref`` (a tag, or a digest string). A tag other than the one
    converted carries its ``role`` (backup, referrers fallback, cosign) and ``old``, the digest
    it held when read (None: new)."""

    ref: str
    data: bytes
    media_type: str
    role: TagRole | Literal[""] = ""
    old: Digest | None = None

    @property
    def digest(self) -> Digest:
        return Digest.of(self.data)


@dataclass(frozen=True)
class TagGuard:
    """Re-read ``tag`` just before it moves: it must still be at ``expected`` (None: absent)."""

    tag: str
    expected: Digest | None


@dataclass(frozen=True, kw_only=True)
class SignStep:
    """One ``--sign-with`` run: re-sign ``new_digest`` at ``registry/repository`` (``path`` is
    the manifest's place in the tree, ``old_digest`` the signed one it replaces)."""

    path: str
    registry: str
    repository: str
    tag: str | None
    old_digest: Digest
    new_digest: Digest


@dataclass(frozen=True, kw_only=True)
class WritePlan:
    """Everything one conversion writes into ``repository``, as data, in execution order."""

    repository: str
    new_blobs: tuple[NewBlob, ...] = ()  # blobs the plan created (a schema1 image's config)
    blobs: tuple[Blob, ...] = ()  # copied from ``source_repository`` of the source store
    source_repository: str = ""
    children: tuple[ManifestPut, ...] = ()  # by digest; the root too when something names it
    referrers: tuple[ManifestPut, ...] = ()  # copies by digest, then their tags
    hooks: tuple[SignStep, ...] = ()  # --sign-with, children before parents
    backup: ManifestPut | None = None
    guard: TagGuard | None = None
    tag: ManifestPut | None = None
    verify: bool = True  # HEAD the tag afterwards unless the registry confirmed the PUT
    fresh: bool = False  # the repository did not exist when read: no blob to look for there


def execute(
    writes: WritePlan,
    *,
    dest: Store,
    source: Store | None = None,
    homes: BlobHomes | None = None,
    blob_concurrency: int = DEFAULT_BLOB_CONCURRENCY,
    sign: Callable[[SignStep], None] | None = None,
    before_tag: Callable[[], None] | None = None,
    on_tag: Callable[[str], None] | None = None,
    stats: PushStats | None = None,
    pool: BlobPool | None = None,
    streaming: Callable[[], None] | None = None,
) -> PushStats:
    """Run ``writes`` against ``dest``; blobs come from ``source``.

    ``sign``: runs one ``--sign-with`` step (raises to stop before any tag moves).
    ``before_tag``: a seam called right before the guard (tests play another writer there).
    ``on_tag``: told of every tag written before the main one (referrer and backup tags).
    ``stats``: counted into as the writes land, so a caller still knows them after a failure.
    ``pool``: the threads that stream blobs with the caller (default: the process's one,
    :data:`BLOB_POOL`, shared by every image).
    ``streaming``: called once (on a blob thread: it must not block) when every blob to copy
    is streaming or done, so from there the writes mostly wait on the network; with no blob
    to copy, before the first manifest.
    """
    stats = stats if stats is not None else PushStats()
    repo = writes.repository
    homes = homes or BlobHomes()
    for blob in writes.new_blobs:
        _put_new_blob(blob, dest, repo, stats, homes)
    latch = _Streaming(streaming)
    if writes.blobs:
        assert source is not None, "blobs to copy need a source"
        pool = pool or BLOB_POOL
        _ensure_blobs(writes, source, dest, stats, homes, blob_concurrency, pool, latch)
    latch.done()
    for put in (*writes.children, *writes.referrers):
        _put_counted(dest, repo, put, stats, on_tag)
    if writes.hooks:
        assert sign is not None, "sign steps need a signer"
        for step in writes.hooks:  # children before parents; the first failure stops here
            sign(step)
            stats.count("signed")
    if writes.backup is not None:
        _put_counted(dest, repo, writes.backup, stats, on_tag)
    if before_tag is not None:
        before_tag()
    if writes.guard is not None:
        now = dest.head_manifest(repo, writes.guard.tag)
        if now != writes.guard.expected:
            raise TagMovedError(
                f"{dest.name}/{repo}:{writes.guard.tag}: tag moved during conversion (now "
                f"{now}, expected {writes.guard.expected}); nothing was tagged"
            )
    if writes.tag is None:
        return stats
    tag = writes.tag
    # A registry that echoed our digest (Docker-Content-Digest) stored exactly our bytes under
    # the tag: a HEAD after it could only race other writers. Without the echo, a HEAD checks.
    confirmed = _put(dest, repo, tag, confirm=True)
    stats.manifests += 1
    if writes.verify and not confirmed and tag.ref != str(tag.digest):
        landed = dest.head_manifest(repo, tag.ref)
        if landed != tag.digest:
            raise PushError(
                f"{dest.name}/{repo}:{tag.ref}: after push the tag resolves to {landed}, "
                f"not {tag.digest}"
            )
    return stats


def _put_counted(
    dest: Store,
    repo: str,
    put: ManifestPut,
    stats: PushStats,
    on_tag: Callable[[str], None] | None,
) -> None:
    _put(dest, repo, put, confirm=False)
    stats.manifests += 1
    if on_tag is not None and put.ref != str(put.digest):
        on_tag(put.ref)


def _ensure_blobs(
    writes: WritePlan,
    source: Store,
    dest: Store,
    stats: PushStats,
    homes: BlobHomes,
    concurrency: int,
    pool: BlobPool,
    latch: _Streaming,
) -> None:
    todo: list[Blob] = []
    seen = {blob.digest for blob in writes.new_blobs}
    for blob in writes.blobs:
        if blob.digest in seen:
            continue
        seen.add(blob.digest)
        if blob.urls and _non_distributable(blob):
            continue  # a foreign layer stays where its urls say
        todo.append(blob)

    latch.expect(len(todo))

    def one(blob: Blob) -> None:
        begun = latch.once()
        try:
            _ensure_blob(blob, source, writes, dest, stats, homes, begun)
        finally:
            begun()

    todo.sort(key=lambda b: -b.size)  # the big ones first: they set the wall time
    pool.each(todo, one, concurrency=min(concurrency, MAX_BLOB_CONCURRENCY))


class BlobPool:
    """The threads that stream blobs, shared by every image of a run (and of the process).

    :meth:`each` runs one image's blobs with at most ``concurrency`` at once: the calling
    thread works through them itself, and up to ``concurrency - 1`` helpers from the pool take
    from the same list. A helper the pool cannot start before the list runs out is cancelled,
    and the caller waits only for helpers that are running, each of which holds a blob it can
    finish on its own (a blob's only wait is :meth:`BlobHomes.claim`, held by a thread that
    is running). So an image never waits on a task queued behind other work: however many
    callers share the pool (a batch's workers), and however small it is, every image finishes,
    at worst at the caller's pace.

    The pool's threads are made on demand up to ``threads`` and kept for the next image,
    instead of a new pool (and new threads) per image.
    """

    def __init__(self, threads: int) -> None:
        self.threads = max(1, threads)
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def each(self, items: list[Blob], work: Callable[[Blob], None], *, concurrency: int) -> None:
        """``work(item)`` for every item, at most ``concurrency`` at once; the first failure
        is raised once the running ones stopped, and no item is started after it."""
        queue = deque(items)
        failures: list[BaseException] = []
        taking = threading.Lock()

        def drain() -> None:
            while True:
                with taking:
                    if failures or not queue:
                        return
                    item = queue.popleft()
                try:
                    work(item)
                except BaseException as exc:  # handed to the caller, which raises it
                    with taking:
                        failures.append(exc)
                    return

        helpers = [self._submit(drain) for _ in range(min(concurrency, len(items)) - 1)]
        try:
            drain()
        finally:
            with taking:
                queue.clear()  # interrupted or not: nothing new starts from here
            for future in helpers:
                if not future.cancel():  # running (or done): it finishes the blob it holds
                    future.result()
        if failures:
            raise failures[0]

    def _submit(self, fn: Callable[[], None]) -> Future[None]:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="blob")
            return self._executor.submit(fn)


#: The process's blob streams beyond each caller's own: enough for a batch's default workers
#: to stream their default number of blobs each, as a pool per image did.
SHARED_BLOB_THREADS: Final = DEFAULT_BLOB_CONCURRENCY * 8
BLOB_POOL: Final = BlobPool(SHARED_BLOB_THREADS)


class _Streaming:
    """Calls ``then`` once, when each of the blobs expected is streaming or done (or when
    :meth:`done` says there is nothing more to wait for)."""

    def __init__(self, then: Callable[[], None] | None) -> None:
        self._then = then
        self._lock = threading.Lock()
        self._left = 0

    def expect(self, count: int) -> None:
        with self._lock:
            self._left += count

    def once(self) -> Callable[[], None]:
        """A mark for one blob: its first call counts it, later calls do nothing."""
        marked = False

        def mark() -> None:
            nonlocal marked
            with self._lock:
                if marked:
                    return
                marked = True
                self._left -= 1
                if self._left > 0:
                    return
            self.done()

        return mark

    def done(self) -> None:
        with self._lock:
            then, self._then = self._then, None
        if then is not None:
            then()


def _ensure_blob(
    blob: Blob,
    source: Store,
    writes: WritePlan,
    dest: Store,
    stats: PushStats,
    homes: BlobHomes,
    begun: Callable[[], None] = lambda: None,
) -> None:
    name, repo, src_repo = dest.name, writes.repository, writes.source_repository
    with homes.claim(name, blob.digest):
        if homes.holds(name, repo, blob.digest):
            return
        home = homes.elsewhere(name, repo, blob.digest)
        if home is not None and dest.mount_blob(repo, blob.digest, home):
            stats.count("blobs_mounted")
        elif not writes.fresh and dest.blob_exists(repo, blob.digest):
            pass  # there already
        elif source.name == name and dest.mount_blob(repo, blob.digest, src_repo):
            stats.count("blobs_mounted")
        else:
            _copy_blob(blob, source, src_repo, dest, repo, begun)
            stats.count("blobs_uploaded")
        homes.note(name, repo, blob.digest)


def _put_new_blob(
    blob: NewBlob, dest: Store, repo: str, stats: PushStats, homes: BlobHomes
) -> None:
    if not dest.blob_exists(repo, blob.digest):
        dest.upload_blob(repo, blob.digest, len(blob.data), [blob.data])
        stats.blobs_uploaded += 1
    homes.note(dest.name, repo, blob.digest)


def _non_distributable(blob: Blob) -> bool:
    return mt.base(blob.media_type) in mt.FOREIGN | {mt.OCI_ND_LAYER_GZIP, mt.OCI_ND_LAYER_TAR}


def _copy_blob(
    blob: Blob,
    source: Store,
    src_repo: str,
    dest: Store,
    repo: str,
    begun: Callable[[], None] = lambda: None,
) -> None:
    @contextlib.contextmanager
    def open_body() -> Iterator[Iterator[bytes | memoryview]]:
        """One upload try: a fresh source stream, hashed on the way through."""
        resp = source.open_blob(src_repo, blob.digest)
        with resp:
            yield _verified_chunks(resp, blob, f"{source.name}/{src_repo}", begun)

    # A callable body lets the registry client restart the whole upload after a failure.
    dest.upload_blob(repo, blob.digest, blob.size, open_body)


def _verified_chunks(
    resp: BlobStream, blob: Blob, where: str, begun: Callable[[], None] = lambda: None
) -> Iterator[bytes | memoryview]:
    """The blob's bytes as they arrive, hashed on the way: one buffer of :data:`CHUNK` bytes
    refilled per read where the source can (each chunk is sent before the next read).
    ``begun`` is told when the upload first asks for the body (its request is sent)."""
    begun()
    hasher = blob.digest.hasher()
    count = 0
    # One buffer, no larger than the blob: a read sets aside a buffer of the size asked for,
    # and most layers of a fleet are far smaller than a chunk.
    for chunk in chunks_into(resp, bytearray(max(1, min(CHUNK, blob.size)))):
        hasher.update(chunk)
        count += len(chunk)
        if count > blob.size:  # longer than its descriptor: stop reading at once
            break
        yield chunk
    if hasher.hexdigest() != blob.digest.hex or count != blob.size:
        # Raising inside the body generator aborts the upload before it completes.
        raise DigestMismatchError(
            f"{where}@{blob.digest}: blob content does not match its digest/size ({count} bytes)"
        )


def _put(dest: Store, repo: str, put: ManifestPut, *, confirm: bool) -> bool:
    """PUT one manifest; True when the store confirmed these bytes (only asked with ``confirm``).

    An index that a registry refuses with one of :data:`INDEX_RACE_CODES` is sent again, a
    bounded number of times: a PUT of the same bytes is idempotent.
    """
    waits = INDEX_RACE_WAITS_S if mt.is_index(put.media_type) else ()
    for wait in (*waits, None):
        try:
            if confirm:
                return dest.put_manifest_confirmed(repo, put.ref, put.data, put.media_type)[1]
            dest.put_manifest(repo, put.ref, put.data, put.media_type)
            return False
        except RegistryError as exc:
            if wait is None or exc.code not in INDEX_RACE_CODES:
                raise
            time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
