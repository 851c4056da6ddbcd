"""An in-memory :class:`~oci_normalize.store.base.Store` that logs every operation in order.

It keeps what a registry keeps (manifests by digest, tags, blobs, per repository) and answers
the planner's listing questions too (``list_tags``, ``catalog``, ``referrers``), so the writer,
the tree walk and the planner run in process, without a server. Every call is appended to
:attr:`MemoryStore.log` as a tuple, for tests that assert the order of writes::

    ("GET", repo, ref)            ("blob-head", repo, digest)
    ("HEAD", repo, ref)           ("blob-get", repo, digest)
    ("PUT", repo, ref)            ("blob-upload", repo, digest)
    ("tags", repo)                ("blob-mount", repo, digest, from_repo)
    ("catalog",)                  ("referrers", repo, digest)

An operation that raised ends in ``"failed"``; a mount that found nothing to mount (the
registry's 202) ends in ``"missed"``. Digests are logged as strings.

Seeding (:meth:`MemoryStore.add_blob`, :meth:`MemoryStore.add_manifest`) is not logged or
counted. Tests change the store's behaviour per operation with :meth:`MemoryStore.fail` (raise
an error) and :meth:`MemoryStore.before` (run something first: another writer moving a tag),
and make it serve wrong bytes for a digest with :meth:`MemoryStore.lie`.

Like a registry that sends no ``Docker-Content-Digest``, :meth:`MemoryStore.get_manifest`
checks what it serves only against the ``expected`` digest its caller passes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import NotFoundError, RegistryError
from oci_normalize.manifest import (
    BodyOpener,
    VerifiedManifest,
    effective_media_type,
    verify_manifest,
)
from oci_normalize.store.base import StreamBlob, bytes_blob, opened
from oci_normalize.store.client import Client

Op = tuple[str, ...]

FAILED: Final = "failed"
MISSED: Final = "missed"
#: The operations that change what the store holds (a mount only when it did not miss).
WRITE_OPS: Final = frozenset({"PUT", "blob-upload", "blob-mount"})


@dataclass
class _Rule:
    """What to do when an operation matches: raise ``error`` or run ``action`` first."""

    op: str
    repository: str | None
    ref: str | None
    error: BaseException | None
    action: Callable[[], object] | None
    times: int | None  # None: every time
    skip: int  # matching calls to let through first

    def matches(self, op: str, repository: str, ref: str) -> bool:
        return (
            self.op == op
            and self.repository in (None, repository)
            and self.ref in (None, ref)
            and self.times != 0
        )


class MemoryStore:
    """A registry in memory: manifests by digest and tags per repository, blobs, a log."""

    def __init__(
        self,
        name: str = "memory",
        *,
        referrers_api: bool = False,
        echo_digest: bool = True,
        upload_delay: float = 0.0,
    ) -> None:
        self.name = name
        #: Without the API (distribution 2.8), :meth:`referrers` answers None.
        self.referrers_api = referrers_api
        #: Whether a PUT's answer confirms the digest (``put_manifest_confirmed``'s flag).
        self.echo_digest = echo_digest
        self.log: list[Op] = []
        self.manifests: dict[tuple[str, Digest], tuple[bytes, str]] = {}
        self.tags: dict[tuple[str, str], Digest] = {}
        self.blobs: dict[tuple[str, Digest], bytes] = {}
        self.lies: dict[Digest, bytes] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self._requests = 0
        self._delay = upload_delay
        self._rules: list[_Rule] = []
        self._lock = threading.RLock()

    # ---- seeding and test controls (neither logged nor counted) ---------------------------

    def add_blob(self, repository: str, data: bytes) -> Digest:
        digest = Digest.of(data)
        with self._lock:
            self.blobs[(repository, digest)] = data
        return digest

    def add_manifest(
        self, repository: str, ref: str | None, data: bytes, media_type: str
    ) -> Digest:
        """Store a manifest (by digest; also under the tag ``ref`` unless None or a digest)."""
        digest, _ = verify_manifest(data, mt.base(media_type), None, None, "seed")
        with self._lock:
            self.manifests[(repository, digest)] = (data, media_type)
            if ref is not None and not _is_digest(ref):
                self.tags[(repository, ref)] = digest
        return digest

    def fail(
        self,
        op: str,
        error: BaseException,
        *,
        repository: str | None = None,
        ref: str | None = None,
        times: int | None = 1,
        skip: int = 0,
    ) -> None:
        """Raise ``error`` from the next ``times`` calls of ``op`` (after ``skip`` of them) on
        ``repository``/``ref`` (None: any). ``ref`` is a tag, a digest string, or for blob
        operations the blob's digest string."""
        with self._lock:
            self._rules.append(_Rule(op, repository, ref, error, None, times, skip))

    def before(
        self,
        op: str,
        action: Callable[[], object],
        *,
        repository: str | None = None,
        ref: str | None = None,
        times: int | None = 1,
        skip: int = 0,
    ) -> None:
        """Run ``action`` just before matching calls of ``op`` (another writer, say)."""
        with self._lock:
            self._rules.append(_Rule(op, repository, ref, None, action, times, skip))

    def lie(self, digest: Digest, data: bytes) -> None:
        """Serve ``data`` whenever the manifest or blob ``digest`` is read."""
        with self._lock:
            self.lies[digest] = data

    def writes(self) -> list[Op]:
        """The log's entries that changed the store, in order."""
        return [op for op in self.log if op[0] in WRITE_OPS and op[-1] not in (FAILED, MISSED)]

    @property
    def requests(self) -> int:
        """Operations performed (failed ones included), like a registry's request count."""
        return self._requests

    # ---- the Store protocol ------------------------------------------------------------------

    def get_manifest(
        self, repository: str, ref: str, *, expected: Digest | None = None, what: str = ""
    ) -> VerifiedManifest:
        with self._call("GET", repository, ref):
            what = what or f"{self.name}/{repository}@{ref}"
            with self._lock:
                digest = self._resolve(repository, ref)
                if digest is None:
                    raise NotFoundError(
                        f"{what}: manifest unknown", status=404, code="MANIFEST_UNKNOWN"
                    )
                data, media_type = self.manifests[(repository, digest)]
                data = self.lies.get(digest, data)
            media_type = effective_media_type(data, media_type)
            checked, content = verify_manifest(data, media_type, expected, None, what)
            if content is not data:  # a signed schema1 body: its payload is what is used
                media_type = effective_media_type(content, media_type)
            return VerifiedManifest(
                data=content,
                media_type=media_type,
                digest=checked,
                size=len(data),
                signed=data if content is not data else None,
            )

    def head_manifest(self, repository: str, ref: str) -> Digest | None:
        with self._call("HEAD", repository, ref), self._lock:
            return self._resolve(repository, ref)

    def put_manifest(self, repository: str, ref: str, data: bytes, media_type: str) -> Digest:
        return self.put_manifest_confirmed(repository, ref, data, media_type)[0]

    def put_manifest_confirmed(
        self, repository: str, ref: str, data: bytes, media_type: str
    ) -> tuple[Digest, bool]:
        with self._call("PUT", repository, ref):
            what = f"push {self.name}/{repository}:{ref}"
            digest, _ = verify_manifest(data, mt.base(media_type), None, None, what)
            if _is_digest(ref) and ref != str(digest):
                raise RegistryError(f"{what}: DIGEST_INVALID", status=400, code="DIGEST_INVALID")
            self.add_manifest(repository, ref, data, media_type)
            return digest, self.echo_digest

    def blob_exists(self, repository: str, digest: Digest) -> bool:
        with self._call("blob-head", repository, str(digest)), self._lock:
            return (repository, digest) in self.blobs

    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        op = ("blob-mount", repository, str(digest), from_repository)
        with self._call(*op) as at, self._lock:
            data = self.blobs.get((from_repository, digest))
            if data is None:
                self.log[at] = (*op, MISSED)
                return False
            self.blobs[(repository, digest)] = data
            return True

    def open_blob(self, repository: str, digest: Digest) -> StreamBlob:
        with self._call("blob-get", repository, str(digest)), self._lock:
            data = self.blobs.get((repository, digest))
            if data is None:
                raise NotFoundError(
                    f"{self.name}/{repository}@{digest}: blob unknown",
                    status=404,
                    code="BLOB_UNKNOWN",
                )
            return bytes_blob(self.lies.get(digest, data))

    def upload_blob(
        self, repository: str, digest: Digest, size: int, chunks: Iterable[bytes] | BodyOpener
    ) -> None:
        with self._call("blob-upload", repository, str(digest)):
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                with opened(chunks) as body:
                    data = b"".join(bytes(chunk) for chunk in body)  # views of one buffer
                time.sleep(self._delay)
                if Digest.of(data) != digest or len(data) != size:
                    raise RegistryError(
                        f"upload {digest.short} to {self.name}/{repository}: DIGEST_INVALID",
                        status=400,
                        code="DIGEST_INVALID",
                    )
                with self._lock:
                    self.blobs[(repository, digest)] = data
            finally:
                with self._lock:
                    self.in_flight -= 1

    # ---- what the planner also reads from a registry ---------------------------------------

    def list_tags(self, repository: str, *, page_size: int = 1000) -> list[str]:
        with self._call("tags", repository), self._lock:
            if repository not in self._repositories():
                raise NotFoundError(
                    f"list tags of {self.name}/{repository}: NAME_UNKNOWN",
                    status=404,
                    code="NAME_UNKNOWN",
                )
            return sorted(tag for repo, tag in self.tags if repo == repository)

    def catalog(self, *, page_size: int = 1000) -> list[str]:
        with self._call("catalog"), self._lock:
            return sorted(self._repositories())

    def iter_catalog(self, *, page_size: int = 1000) -> Iterator[list[str]]:
        names = self.catalog(page_size=page_size)
        for i in range(0, len(names), page_size):
            yield names[i : i + page_size]

    def referrers(self, repository: str, digest: Digest) -> bytes | None:
        """The referrers API's index for ``digest``; None when the store has no such API."""
        with self._call("referrers", repository, str(digest)):
            if not self.referrers_api:
                return None
            with self._lock:
                found = [
                    _referrer_descriptor(data, media_type, mine)
                    for (repo, mine), (data, media_type) in sorted(self.manifests.items())
                    if repo == repository and _subject(data) == str(digest)
                ]
            index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": found}
            return json.dumps(index).encode()

    # ---- internals ---------------------------------------------------------------------------

    @contextmanager
    def _call(self, op: str, *args: str) -> Iterator[int]:
        """Count and log one call (its log position is yielded); apply the first matching
        rule (raise, or act first); mark the entry failed when the call raises."""
        repository = args[0] if args else ""
        ref = args[1] if len(args) > 1 else ""
        with self._lock:
            self._requests += 1
            rule = next((r for r in self._rules if r.matches(op, repository, ref)), None)
            if rule is not None and rule.skip > 0:
                rule.skip -= 1
                rule = None
            if rule is not None and rule.times is not None:
                rule.times -= 1
            if rule is not None and rule.error is not None:
                self.log.append((op, *args, FAILED))
                raise rule.error
        if rule is not None and rule.action is not None:
            rule.action()  # outside the lock: it may seed or call the store
        with self._lock:
            at = len(self.log)
            self.log.append((op, *args))
        try:
            yield at
        except BaseException:
            with self._lock:
                self.log[at] = (op, *args, FAILED)
            raise

    def _resolve(self, repository: str, ref: str) -> Digest | None:
        if _is_digest(ref):
            digest = Digest.parse(ref)
            return digest if (repository, digest) in self.manifests else None
        return self.tags.get((repository, ref))

    def _repositories(self) -> set[str]:
        return (
            {repo for repo, _ in self.manifests}
            | {repo for repo, _ in self.tags}
            | {repo for repo, _ in self.blobs}
        )


def _is_digest(ref: str) -> bool:
    return ":" in ref  # a tag never holds a colon


def _subject(data: bytes) -> str | None:
    try:
        subject = json.loads(data).get("subject")
    except (ValueError, AttributeError):
        return None
    return subject.get("digest") if isinstance(subject, dict) else None


def _referrer_descriptor(data: bytes, media_type: str, digest: Digest) -> dict[str, Any]:
    """A referrers-API entry: the manifest's descriptor, artifactType and annotations."""
    body = json.loads(data)
    desc: dict[str, Any] = {"mediaType": media_type, "digest": str(digest), "size": len(data)}
    config = body.get("config") or {}
    artifact_type = body.get("artifactType") or config.get("mediaType")
    if artifact_type:
        desc["artifactType"] = artifact_type
    if body.get("annotations"):
        desc["annotations"] = body["annotations"]
    return desc


class RacingStore(MemoryStore):
    """Refuses the first ``refusals`` index PUTs with ``code``, as distribution 2.8 does when a
    child it names is still being linked by a concurrent PUT."""

    def __init__(self, code: str, refusals: int) -> None:
        super().__init__("dest")
        self.code, self.refusals = code, refusals

    def put_manifest_confirmed(
        self, repository: str, ref: str, data: bytes, media_type: str
    ) -> tuple[Digest, bool]:
        if mt.is_index(media_type) and self.refusals > 0:
            self.refusals -= 1
            refusal = RegistryError(f"push {ref}: {self.code}", status=400, code=self.code)
            self.fail("PUT", refusal, repository=repository, ref=ref)
        return super().put_manifest_confirmed(repository, ref, data, media_type)


def mounted(*stores: MemoryStore) -> Client:
    """A client whose registries are ``stores`` (each under its own name): the planner, the
    writer and the batch runner then run in process."""
    client = Client()
    for store in stores:
        client.mount(store.name, store)
    return client
