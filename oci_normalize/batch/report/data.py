"""What a batch report shows, asked for in the order it is drawn: the :class:`ReportData` seam.

The renderers (:mod:`.html`, :mod:`.markdown`) never hold the results: they ask a
:class:`ReportData` for counts and for sorted rows, one at a time. :class:`ListData` answers
from a list (the API, the tests); :class:`~oci_normalize.batch.resultsfile.IndexedResults`
answers from the run's results file through an on-disk index, so a report of a million
references is drawn in the memory of one row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from oci_normalize.result_models import BatchSummary, RefResult
from oci_normalize.results import (
    ALREADY_OCI,
    ARTIFACT,
    CONVERTED,
    FAILED,
    KIND_DOCKER,
    KIND_MIXED,
    WOULD_CONVERT,
)


@dataclass
class RepoCounts:
    repository: str
    references: int = 0
    already_oci: int = 0
    docker: int = 0
    mixed: int = 0
    converted: int = 0  # or would be, in a dry run
    failed: int = 0
    artifacts: int = 0


@dataclass
class OldDigest:
    """An old manifest digest, its replacement, and what pointed at it."""

    old: str
    new: str
    path: str
    pointed_at_by: list[str] = field(default_factory=list)


class Failure(NamedTuple):
    reference: str
    error: str


class MovedTag(NamedTuple):
    reference: str
    kind: str
    old_digest: str
    new_digest: str


class SignatureRow(NamedTuple):
    """One signature a reference's image carried, and what happened to it."""

    reference: str
    name: str
    subject: str
    action: str


class ReportData(Protocol):
    """The report's rows; each ``iter_`` method yields in the report's order."""

    def repositories(self) -> int: ...

    def iter_repo_counts(self) -> Iterator[RepoCounts]:
        """Per repository, sorted by name."""
        ...

    def largest(self, count: int) -> list[RepoCounts]:
        """The ``count`` repositories with most references (ties: by name), in that order."""
        ...

    def most_references(self) -> int:
        """The most references of one repository (0 without any)."""
        ...

    def longest_name(self) -> int:
        """The longest repository name, in characters (0 without any)."""
        ...

    def failures(self) -> int: ...

    def iter_failures(self) -> Iterator[Failure]:
        """Failed references, sorted."""
        ...

    def moved_tags(self) -> int: ...

    def iter_moved_tags(self) -> Iterator[MovedTag]:
        """Converted (or would-be) references, sorted."""
        ...

    def old_digest_count(self) -> int: ...

    def iter_old_digests(self) -> Iterator[OldDigest]:
        """Root digests first, then by digest."""
        ...

    def iter_signatures(self) -> Iterator[SignatureRow]:
        """Every signature reported (carried, re-signed, left behind, refused), by reference."""
        ...


def who(reference: str, old_digest: str | None, path: str) -> str:
    """What pointed at a moved manifest, as the report says it."""
    if path == "@":
        return f"tag {reference}"
    return f"index {old_digest} ({path}) of tag {reference}"


def headline(s: BatchSummary) -> list[tuple[str, str]]:
    done = ("would convert", s.would_convert) if s.dry_run else ("converted", s.converted)
    where = [("destination", s.destination or ""), ("already there", str(s.present))]
    return [
        ("references", str(s.references)),
        ("repositories", str(s.repositories)),
        *(where if s.destination else []),
        ("already OCI", str(s.already_oci)),
        (done[0], str(done[1])),
        ("failed", str(s.failed)),
        ("artifacts (left alone)", str(s.artifacts)),
        *((f"signatures {action}", str(n)) for action, n in s.signatures.items()),
        ("requests", str(s.requests)),
        ("seconds", f"{s.seconds:.1f}"),
    ]


# ---- from a list (the API and tests) ------------------------------------------------------


def repo_counts(results: Iterable[RefResult]) -> list[RepoCounts]:
    counts: dict[str, RepoCounts] = {}
    for r in results:
        c = counts.setdefault(r.repository, RepoCounts(r.repository))
        c.references += 1
        c.already_oci += r.status == ALREADY_OCI
        c.docker += r.kind == KIND_DOCKER
        c.mixed += r.kind == KIND_MIXED
        c.converted += r.status in (CONVERTED, WOULD_CONVERT)
        c.failed += r.status == FAILED
        c.artifacts += r.status == ARTIFACT
    return sorted(counts.values(), key=lambda c: c.repository)


def moved(results: Iterable[RefResult]) -> list[RefResult]:
    return sorted(
        (r for r in results if r.status in (CONVERTED, WOULD_CONVERT)), key=lambda r: r.reference
    )


def old_digests(results: Iterable[RefResult]) -> list[OldDigest]:
    out: dict[str, OldDigest] = {}
    for r in moved(results):
        for m in r.moved:
            entry = out.setdefault(m.old_digest, OldDigest(m.old_digest, m.new_digest, m.path))
            pointer = who(r.reference, r.old_digest, m.path)
            if pointer not in entry.pointed_at_by:
                entry.pointed_at_by.append(pointer)
    return sorted(out.values(), key=lambda o: (o.path != "@", o.old))


class ListData:
    """:class:`ReportData` over results in memory."""

    def __init__(self, results: list[RefResult]) -> None:
        self._results = results
        self._counts = repo_counts(results)

    def repositories(self) -> int:
        return len(self._counts)

    def iter_repo_counts(self) -> Iterator[RepoCounts]:
        return iter(self._counts)

    def largest(self, count: int) -> list[RepoCounts]:
        return sorted(self._counts, key=lambda c: (-c.references, c.repository))[:count]

    def most_references(self) -> int:
        return max((c.references for c in self._counts), default=0)

    def longest_name(self) -> int:
        return max((len(c.repository) for c in self._counts), default=0)

    def _failed(self) -> list[RefResult]:
        return sorted((r for r in self._results if r.status == FAILED), key=lambda r: r.reference)

    def failures(self) -> int:
        return len(self._failed())

    def iter_failures(self) -> Iterator[Failure]:
        return (Failure(r.reference, r.error or "") for r in self._failed())

    def moved_tags(self) -> int:
        return len(moved(self._results))

    def iter_moved_tags(self) -> Iterator[MovedTag]:
        return (
            MovedTag(r.reference, r.kind or "", r.old_digest or "", r.new_digest or "")
            for r in moved(self._results)
        )

    def old_digest_count(self) -> int:
        return len(old_digests(self._results))

    def iter_old_digests(self) -> Iterator[OldDigest]:
        return iter(old_digests(self._results))

    def iter_signatures(self) -> Iterator[SignatureRow]:
        return signature_rows(sorted(self._results, key=lambda r: r.reference))


def signature_rows(results: Iterable[RefResult]) -> Iterator[SignatureRow]:
    """The signatures of ``results`` (given sorted by reference), one row each."""
    for r in results:
        for sig in r.signatures:
            yield SignatureRow(r.reference, sig.name, sig.subject, sig.action)
