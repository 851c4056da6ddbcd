"""What names an image by digest, as a registry lists it, and the per-run memory of tag lists.

Three ways an artifact names an image by digest, all of which a media-type rewrite breaks:

* cosign's tag scheme: ``sha256-<hex>.sig`` / ``.att`` / ``.sbom`` in the image's repository;
* OCI referrers: a manifest whose ``subject`` is the image, found through
  ``GET /v2/<repo>/referrers/<digest>`` or, on registries without that API, through the
  fallback tag ``sha256-<hex>`` (an index listing the referrers);
* buildkit attestation manifests inside an index (found in the tree, not listed here).

Listing them is a store operation: :class:`Referrers` reads a repository's tag list once per
run, asks each registry once whether it has the referrers API, and lists what names a digest.
Deciding what happens to each one is the planner's (:mod:`oci_normalize.convert.planner`).

Request budget: one ``tags/list`` per repository and one referrers-API probe per registry; on a
registry without the API (distribution 2.8) the fallback tag is looked up in the cached tag
list, so a digest with nothing attached costs no further request.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final, NamedTuple, Protocol

from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import MalformedManifestError, NotFoundError
from oci_normalize.manifest import VerifiedManifest, parse_body
from oci_normalize.once import OncePerKey
from oci_normalize.results import (
    COSIGN_ATTESTATION,
    COSIGN_SBOM,
    COSIGN_SIGNATURE,
    OCI_REFERRER,
    ReferrerKind,
)

#: Repositories whose tag list a run remembers (the ones used last; a forgotten one is listed
#: again if asked for): a sweep of any number of repositories stays bounded.
MAX_REMEMBERED_REPOSITORIES: Final = 1024
#: OCI distribution-spec: fallback tags are ``<alg>-<hex>`` truncated to the tag length limit.
MAX_TAG_LENGTH: Final = 128

#: Artifact types whose content is a signature over the subject digest: they cannot be moved
#: to a new digest, only re-created by whoever holds the key. Matched on the base type.
SIGNATURE_ARTIFACT_TYPES: Final = frozenset(
    {
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        "application/vnd.dev.cosign.simplesigning.v1+json",
        "application/vnd.cncf.notary.signature",
        "application/vnd.dsse.envelope.v1+json",
    }
)
#: Prefixes of signed artifact types that carry a version (sigstore bundles embed a signature).
SIGNATURE_ARTIFACT_PREFIXES: Final = ("application/vnd.dev.sigstore.bundle",)

_COSIGN_KINDS: Final[dict[str, ReferrerKind]] = {
    ".sig": COSIGN_SIGNATURE,
    ".att": COSIGN_ATTESTATION,
    ".sbom": COSIGN_SBOM,
}
#: A tag that exists only to attach something to a digest: cosign's ``sha256-<hex>.sig|.att|
#: .sbom`` and the referrers fallback ``sha256-<hex>`` (any registered algorithm's hex length).
_ATTACHMENT_TAG: Final = re.compile(
    r"(?:sha256-[0-9a-f]{64}|sha512-[0-9a-f]{128}|sha384-[0-9a-f]{96})(?:\.sig|\.att|\.sbom)?"
)


@dataclass(frozen=True)
class Referrer:
    """Something that names ``subject`` (a digest) and breaks when that digest changes.

    ``name`` is a tag (cosign kinds) or the referrer manifest's digest; ``signed`` means it
    cannot follow the image to a new digest without being re-signed.
    """

    subject: Digest
    kind: ReferrerKind
    name: str
    signed: bool
    artifact_type: str | None = None
    digest: Digest | None = None
    media_type: str | None = None
    size: int | None = None


def fallback_tag(digest: Digest) -> str:
    """The referrers fallback tag of ``digest``: ``sha256-<hex>`` (also cosign's tag stem)."""
    return f"{digest.algorithm}-{digest.hex}"[:MAX_TAG_LENGTH]


def cosign_tags(digest: Digest) -> dict[str, ReferrerKind]:
    """cosign tag name → kind for ``digest``: ``sha256-<hex>.sig`` etc."""
    stem = f"{digest.algorithm}-{digest.hex}"
    return {f"{stem}{suffix}": kind for suffix, kind in _COSIGN_KINDS.items()}


def cosign_tag(digest: Digest, kind: ReferrerKind) -> str:
    """The cosign tag of ``kind`` for ``digest``."""
    return next(t for t, k in cosign_tags(digest).items() if k == kind)


def is_attachment_tag(tag: str) -> bool:
    """True for tags that only attach something to a digest (cosign, referrers fallback): they
    follow their subject and are never references of their own."""
    return _ATTACHMENT_TAG.fullmatch(tag) is not None


def is_signature(artifact_type: str | None) -> bool:
    """True for artifact types that sign the subject digest (cosign, notation, sigstore)."""
    if not artifact_type:
        return False
    base = mt.base(artifact_type)
    return base in SIGNATURE_ARTIFACT_TYPES or base.startswith(SIGNATURE_ARTIFACT_PREFIXES)


def cosign_referrers(digest: Digest, tags: frozenset[str] | set[str]) -> list[Referrer]:
    """The cosign-scheme tags of ``digest`` present in ``tags``.

    ``.sig`` is a signature; ``.att`` holds DSSE envelopes signed over an in-toto statement that
    names the digest, so it is treated as signed too; ``.sbom`` is an unsigned attachment.
    """
    return [
        Referrer(subject=digest, kind=kind, name=tag, signed=kind != COSIGN_SBOM)
        for tag, kind in cosign_tags(digest).items()
        if tag in tags
    ]


def referrers_from_index(subject: Digest, data: bytes, what: str) -> list[Referrer]:
    """The referrers listed by a referrers-API answer or a fallback-tag index."""
    body = parse_body(data, what)
    entries = body.get("manifests")
    if not isinstance(entries, list):
        raise MalformedManifestError(f"{what}: referrers index has no 'manifests' list")
    out: list[Referrer] = []
    seen: set[Digest] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
            raise MalformedManifestError(f"{what}: manifests[{i}] is not a descriptor")
        digest = Digest.parse(entry["digest"])
        if digest in seen:
            continue
        seen.add(digest)
        artifact_type = entry.get("artifactType")
        artifact_type = artifact_type if isinstance(artifact_type, str) else None
        size = entry.get("size")
        out.append(
            Referrer(
                subject=subject,
                kind=OCI_REFERRER,
                name=str(digest),
                signed=is_signature(artifact_type),
                artifact_type=artifact_type,
                digest=digest,
                media_type=str(entry.get("mediaType") or mt.OCI_MANIFEST),
                size=size if isinstance(size, int) else None,
            )
        )
    return out


def artifact_type_of(data: bytes, what: str) -> str | None:
    """A referrer manifest's artifact type as a referrers index lists it (spec: its
    ``artifactType``, else its config's mediaType)."""
    body = parse_body(data, what)
    artifact_type = body.get("artifactType")
    config = body.get("config")
    if not isinstance(artifact_type, str) and isinstance(config, dict):
        artifact_type = config.get("mediaType")
    return artifact_type if isinstance(artifact_type, str) else None


class ListingStore(Protocol):
    """What listing referrers needs of a store (a registry client satisfies it)."""

    name: str

    def list_tags(self, repository: str) -> list[str]: ...

    def referrers(self, repository: str, digest: Digest) -> bytes | None: ...

    def get_manifest(
        self, repository: str, ref: str, *, expected: Digest | None = None, what: str = ""
    ) -> VerifiedManifest: ...


def _with(tags: frozenset[str] | None, tag: str) -> frozenset[str]:
    """``tags`` with ``tag`` (not copied when it is there: a claimed tag is noted again)."""
    if tags is not None and tag in tags:
        return tags
    return (tags or frozenset()) | {tag}


class Referrers:
    """Per-run memory of tag lists (per repository) and referrers-API support (per registry),
    and the listing of what names a digest.

    Tags this tool writes are added to the remembered list, so a batch sees its own writes.
    Only the :data:`MAX_REMEMBERED_REPOSITORIES` lists used last are kept; a batch works through
    a repository's tags together, so a forgotten list is one that is done with.
    A repository that does not exist lists no tags (its tag list is remembered as empty, and
    :meth:`exists` tells it apart, also after this run wrote tags there); the same bound
    applies to that memory, and a repository it forgot is taken to exist, which is the safe
    side (its writes are guarded and its blobs checked, as anywhere else).
    """

    def __init__(self) -> None:
        self._tags: OncePerKey[tuple[str, str], frozenset[str] | None] = OncePerKey(
            limit=MAX_REMEMBERED_REPOSITORIES
        )
        self._api: OncePerKey[str, bool] = OncePerKey()
        self._lock = threading.Lock()
        # No such repository when first listed: in first-listed order, the oldest forgotten
        # beyond the bound (a forgotten one counts as existing: guards and HEADs come back).
        self._absent: dict[tuple[str, str], None] = {}

    def tags(self, store: ListingStore, repository: str) -> frozenset[str]:
        return self.listed(store, repository) or frozenset()

    def exists(self, store: ListingStore, repository: str) -> bool:
        """Whether ``repository`` existed when its tags were first listed in this run."""
        self.listed(store, repository)
        with self._lock:
            return (store.name, repository) not in self._absent

    def claim_new_tag(self, registry: str, repository: str, tag: str) -> bool:
        """Note ``tag`` as written by this run before it is: True for the first caller that
        found it absent from the remembered list, False for any other (two references that
        map to one destination tag, say from two source registries) or when the repository
        was never listed. Atomic: of two callers at once exactly one gets True."""
        first: list[bool] = []

        def add(tags: frozenset[str] | None) -> frozenset[str]:
            first.append(tags is None or tag not in tags)
            return _with(tags, tag)

        self._tags.update((registry, repository), add)
        return first == [True]

    def listed(self, store: ListingStore, repository: str) -> frozenset[str] | None:
        """The repository's tags, listed once per run; None: no such repository (until this
        run writes a tag there: then the tags it wrote)."""

        def read() -> frozenset[str] | None:
            try:
                return frozenset(store.list_tags(repository))
            except NotFoundError:
                with self._lock:
                    self._absent[(store.name, repository)] = None
                    if len(self._absent) > MAX_REMEMBERED_REPOSITORIES:
                        del self._absent[next(iter(self._absent))]
                return None

        return self._tags.get((store.name, repository), read)

    def prime(self, registry: str, repository: str, tags: Iterable[str]) -> None:
        """Remember a tag list read elsewhere (batch enumerates every repository anyway)."""
        self._tags.put((registry, repository), frozenset(tags))

    def note_tag(self, registry: str, repository: str, tag: str) -> None:
        self._tags.update((registry, repository), lambda tags: _with(tags, tag))

    def has_api(self, registry: str) -> bool:
        return bool(self._api.peek(registry))

    def _tags_beside(self, store: ListingStore, repository: str, subject: Digest) -> _Asked | None:
        """The repository's tag list, read on a thread of its own while this one asks for
        ``subject``'s referrers, when both are requests still to send (this run has not
        listed the repository, and the registry's referrers API is unknown or there): one
        round trip instead of two before a conversion knows what names its image. Either
        failure is raised, the tag list's first (as when they ran one after the other).
        None: nothing was asked (the caller asks as usual)."""
        if self._tags.known((store.name, repository)) or self._api.peek(store.name) is False:
            return None
        failed: list[BaseException] = []

        def list_tags() -> None:
            try:
                self.listed(store, repository)
            except BaseException as exc:  # handed to the caller, which raises it
                failed.append(exc)

        lister = threading.Thread(target=list_tags, name="list-tags", daemon=True)
        lister.start()
        try:
            index = self.index(store, repository, subject)
        except BaseException:
            lister.join()
            if failed:
                raise failed[0] from None
            raise
        lister.join()
        if failed:
            raise failed[0]
        return _Asked(index)

    def index(self, store: ListingStore, repository: str, digest: Digest) -> bytes | None:
        """The referrers API's answer, or None when this registry lacks the API.

        The first call per registry is the probe (other threads wait for its verdict); after
        that, registries without the API cost nothing and those with it are asked in parallel.
        """
        first: list[bytes | None] = []

        def probe() -> bool:
            first.append(store.referrers(repository, digest))
            return first[0] is not None

        if not self._api.get(store.name, probe):
            return None
        return first[0] if first else store.referrers(repository, digest)

    def of(
        self, store: ListingStore, repository: str, subjects: Iterable[Digest]
    ) -> list[Referrer]:
        """cosign tags and OCI referrers (API or fallback tag) of each subject in ``repository``;
        a referrer listed without an artifact type is typed from its manifest (one GET), so an
        unlisted type cannot let a signature pass as unsigned."""
        wanted = list(dict.fromkeys(subjects))
        first = self._tags_beside(store, repository, wanted[0]) if wanted else None
        tags = self.tags(store, repository)
        found: list[Referrer] = []
        for n, subject in enumerate(wanted):
            found.extend(cosign_referrers(subject, tags))
            what = f"{store.name}/{repository} referrers of {subject.short}"
            if n == 0 and first is not None:
                index = first.answer  # asked beside the tag list
            else:
                index = self.index(store, repository, subject)
            if index is None and fallback_tag(subject) in tags:
                index = store.get_manifest(repository, fallback_tag(subject), what=what).data
            if index is not None:
                for ref in referrers_from_index(subject, index, what):
                    found.append(ref if ref.artifact_type else _typed(store, repository, ref))
        return found


class _Asked(NamedTuple):
    answer: bytes | None  # the first subject's referrers index, as :meth:`Referrers.index`


def _typed(store: ListingStore, repository: str, ref: Referrer) -> Referrer:
    assert ref.digest is not None
    what = f"{store.name}/{repository}@{ref.digest}"
    got = store.get_manifest(repository, str(ref.digest), expected=ref.digest, what=what)
    artifact_type = artifact_type_of(got.data, what)
    return replace(ref, artifact_type=artifact_type, signed=is_signature(artifact_type))
