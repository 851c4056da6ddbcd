"""Which references a batch works on: a registry's catalog and tag lists, or a list of lines.

Both sources go through the same filters: repository and tag globs (shell-style, ``fnmatch``;
``*`` also matches ``/``) and an optional shard. A shard ``I/N`` keeps the references whose
stable hash (SHA-256 of ``repository:tag``, registry host left out so that two spellings of one
host agree) is ``I`` modulo ``N``: N workers given ``0/N`` … ``N-1/N`` split any set of references
exactly, with no coordination.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from itertools import chain, islice
from pathlib import Path
from typing import Final

from oci_normalize import limits
from oci_normalize.batch.refspool import RefSpool
from oci_normalize.errors import InvalidReferenceError, OciNormalizeError, RegistryError
from oci_normalize.reference import (
    DOCKER_HUB,
    HUB_ALIASES,
    Reference,
    parse_repository,
    parse_tag,
    shown,
)
from oci_normalize.store.client import Client
from oci_normalize.store.referrers import is_attachment_tag

_HUB_PREFIXES = tuple(f"{name}/" for name in sorted(HUB_ALIASES))
#: Page sizes asked for; distribution refuses more than 1000 a page (HTTP 400).
CATALOG_PAGE = 1000
TAGS_PAGE = 1000


@dataclass(frozen=True)
class Shard:
    """Slice ``index`` (0-based, as Kubernetes' JOB_COMPLETION_INDEX) of ``count`` slices."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        left, sep, right = text.partition("/")
        try:
            index, count = int(left), int(right)
        except ValueError:
            index, count = -1, 0
        if not sep or count < 1 or not 0 <= index < count:
            raise ValueError(f"invalid shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4")
        return cls(index, count)

    def owns(self, ref: Reference) -> bool:
        return shard_of(ref, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(ref: Reference, count: int) -> int:
    key = f"{ref.repository}:{ref.tag or ''}@{ref.digest or ''}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % count


@dataclass(frozen=True, kw_only=True)
class Selection:
    """Filters applied to every enumerated reference; empty glob lists match everything."""

    repos: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    shard: Shard | None = None

    def wants_repository(self, repository: str) -> bool:
        return not self.repos or any(fnmatchcase(repository, g) for g in self.repos)

    def wants(self, ref: Reference) -> bool:
        """Whether ``ref`` is a reference of this sweep. A cosign or referrers-fallback tag
        never is: it follows its subject
        (:func:`~oci_normalize.store.referrers.is_attachment_tag`)."""
        if ref.tag is not None and is_attachment_tag(ref.tag):
            return False
        if not self.wants_repository(ref.repository):
            return False
        if self.tags and not any(fnmatchcase(ref.tag or "", g) for g in self.tags):
            return False
        return self.shard is None or self.shard.owns(ref)


@dataclass
class Targets:
    """Selected references (sorted, unique) and the items that could not be read (``what, why``)."""

    refs: list[Reference] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    repositories: int = 0
    #: Every tag of each listed repository of ``registry``, before the filters (so that
    #: nothing lists them twice).
    all_tags: dict[str, list[str]] = field(default_factory=dict)
    registry: str = ""


def registry_reference(registry: str) -> Reference:
    """A placeholder reference naming only ``registry`` (``host[:port]``), checked."""
    probe = Reference.parse(f"{registry}/probe")
    hub_names = tuple(p.rstrip("/") for p in _HUB_PREFIXES)
    if probe.registry == DOCKER_HUB and not registry.startswith(hub_names):
        raise InvalidReferenceError(f"invalid registry {registry!r}: expected HOST[:PORT]")
    return probe


@dataclass
class TargetStream:
    """Selected references, enumerated lazily as :attr:`refs` is consumed.

    :attr:`failures` and :attr:`repositories` grow as the enumeration goes and are complete
    once :attr:`refs` is exhausted. The references of one repository come one after another,
    sorted by tag; repositories come in catalog order (sorted, on distribution).
    """

    refs: Iterator[Reference]
    registry: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)
    repositories: int = 0


def stream_registry(
    client: Client,
    registry: str,
    selection: Selection,
    *,
    concurrency: int,
    on_tags: Callable[[str, list[str]], None] | None = None,
) -> TargetStream:
    """Every tag of every catalog repository that ``selection`` wants, lazily.

    The catalog is read a page at a time, when the previous page's repositories have been
    handed out; tag lists are read at most ``concurrency`` repositories ahead of the one being
    handed out. So what is held is one catalog page, a few tag lists and the references of one
    repository, whatever the registry's size. ``on_tags(repository, tags)`` sees each tag
    list as read (before the filters). The catalog failing raises: here for its first page,
    from ``next`` on :attr:`~TargetStream.refs` for a later one; one repository's tag list
    failing is recorded in ``failures`` and the others go on.
    """
    probe = registry_reference(registry)
    reg = client.registry(probe)
    stream = TargetStream(refs=iter(()), registry=probe.registry)
    where_catalog = probe.registry

    pages = reg.iter_catalog(page_size=CATALOG_PAGE)
    first = next(pages, [])  # asked for now: a registry without a catalog fails here, not later

    def repositories() -> Iterator[str]:
        for page in chain([first], pages):
            for name in _valid(page, parse_repository, where_catalog, stream.failures):
                if selection.wants_repository(name):
                    stream.repositories += 1
                    yield name

    def tags_of(repository: str) -> list[str] | str:
        try:
            return reg.list_tags(repository, page_size=TAGS_PAGE)
        except OciNormalizeError as exc:
            return str(exc)

    def refs() -> Iterator[Reference]:
        lookahead = max(1, concurrency)
        with ThreadPoolExecutor(lookahead, thread_name_prefix="tags") as pool:
            queue: deque[tuple[str, Future[list[str] | str]]] = deque()
            names = repositories()
            try:
                while True:
                    for name in islice(names, lookahead - len(queue)):
                        queue.append((name, pool.submit(tags_of, name)))
                    if not queue:
                        return
                    repository, future = queue.popleft()
                    yield from _repository_refs(
                        probe.registry, repository, future.result(), selection, stream, on_tags
                    )
            finally:
                for _, future in queue:
                    future.cancel()

    stream.refs = refs()
    return stream


def _repository_refs(
    registry: str,
    repository: str,
    listed: list[str] | str,
    selection: Selection,
    stream: TargetStream,
    on_tags: Callable[[str, list[str]], None] | None,
) -> Iterator[Reference]:
    where = f"{registry}/{repository}"
    if isinstance(listed, str):
        stream.failures.append((where, listed))
        return
    tags = _valid(listed, parse_tag, where, stream.failures)
    if on_tags is not None:
        on_tags(repository, tags)
    for tag in sorted(set(tags)):
        ref = Reference(registry=registry, repository=repository, tag=tag)
        if selection.wants(ref):
            yield ref


def from_registry(
    client: Client, registry: str, selection: Selection, *, concurrency: int
) -> Targets:
    """Every tag of every catalog repository that ``selection`` wants, as one list (bounded
    by :func:`~oci_normalize.limits.max_listed_names`; :func:`stream_registry` is not).

    The catalog failing is fatal (raised); one repository's tag list failing is recorded in
    ``failures`` and the others go on.
    """
    targets = Targets()
    cap = limits.max_listed_names()
    total = 0

    def keep(repository: str, tags: list[str]) -> None:
        nonlocal total
        total += len(tags)
        if total > cap:
            raise RegistryError(
                f"{targets.registry}: more than {cap} references in the catalog "
                f"(set {limits.ENV_MAX_LISTED_NAMES} to allow more)"
            )
        targets.all_tags[repository] = tags

    stream = stream_registry(client, registry, selection, concurrency=concurrency, on_tags=keep)
    targets.registry = stream.registry
    targets.refs = _select(stream.refs, selection)
    targets.failures = stream.failures
    targets.repositories = stream.repositories
    return targets


def _valid(
    names: Iterable[str],
    parse: Callable[..., str],
    where: str,
    failures: list[tuple[str, str]],
) -> list[str]:
    """The names that parse like user input; each other one is a failure and never requested."""
    out: list[str] = []
    for name in names:
        try:
            out.append(parse(name, source=where))
        except InvalidReferenceError as exc:
            failures.append((f"{where}: {shown(name)}", str(exc)))
    return out


#: Lines of a list that do not parse, reported one by one; beyond, one failure counts the rest.
MAX_LISTED_LINE_FAILURES: Final = 1000


def from_lines(
    lines: Iterable[str],
    selection: Selection,
    *,
    registry: str | None = None,
    directory: Path | None = None,
) -> TargetStream:
    """References from text lines (blank lines and ``#`` comments skipped), each once, sorted
    by registry, repository and tag, in constant memory: they are spooled to an on-disk index
    (:class:`~oci_normalize.batch.refspool.RefSpool`, in ``directory``, default $TMPDIR) and
    read back as the stream is consumed.

    With ``registry``, a line without a registry host (``team/app:1``) is read as living there.
    Lines that do not parse are in ``failures`` (the first :data:`MAX_LISTED_LINE_FAILURES`
    each, then one that counts the rest).
    """
    spool = RefSpool(directory)
    failures: list[tuple[str, str]] = []
    unlisted = 0
    try:
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                ref = Reference.parse(line)
                if registry and ref.registry == DOCKER_HUB and not line.startswith(_HUB_PREFIXES):
                    ref = Reference.parse(f"{registry_reference(registry).registry}/{line}")
            except OciNormalizeError as exc:
                if len(failures) < MAX_LISTED_LINE_FAILURES:
                    failures.append((shown(line), str(exc)))
                else:
                    unlisted += 1
                continue
            if selection.wants(ref):
                spool.add(ref)
        repositories = spool.repositories()
    except BaseException:
        spool.close()
        raise
    if unlisted:
        failures.append(
            (
                f"{unlisted} more lines",
                f"not references either (the first {len(failures)} are listed)",
            )
        )
    return TargetStream(refs=spool.drain(), failures=failures, repositories=repositories)


def _select(refs: Iterable[Reference], selection: Selection) -> list[Reference]:
    """The wanted references, once each, in order."""
    unique = {str(r): r for r in refs if selection.wants(r)}
    return sorted(unique.values(), key=lambda r: (r.registry, r.repository, r.tag or "", str(r)))
