"""The batch summary, counted as results arrive: a few integers, whatever the run's size.

A :class:`Tally` sees each :class:`~oci_normalize.result_models.RefResult` once (``add``) and keeps
counts only; the repositories seen are a :class:`~.keyset.HashSet` (16 bytes a repository).
:meth:`Tally.summary` turns the counts into the :class:`~oci_normalize.result_models.BatchSummary`
that ``--json`` prints and the reports head with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from oci_normalize.batch.keyset import HashSet
from oci_normalize.result_models import BatchSummary, RefResult
from oci_normalize.results import ALREADY_OCI, ARTIFACT, CONVERTED, FAILED, PRESENT, WOULD_CONVERT


class Tally:
    """Counts of a batch's results; ``add`` each result once, from one thread."""

    def __init__(self) -> None:
        self.references = 0
        self.pushed_manifests = 0
        self.statuses: Counter[str] = Counter()
        #: Signatures by what happened to them (carried, re-signed, left-behind, refused).
        self.signatures: Counter[str] = Counter()
        self._repositories = HashSet()

    def add(self, r: RefResult) -> None:
        self.references += 1
        self.pushed_manifests += r.pushed_manifests
        self.statuses[r.status] += 1
        self.signatures.update(sig.action for sig in r.signatures)
        self._repositories.add(r.repository.encode())

    def extend(self, results: Iterable[RefResult]) -> Tally:
        for r in results:
            self.add(r)
        return self

    @property
    def repositories(self) -> int:
        return len(self._repositories)

    @property
    def failed(self) -> int:
        return self.statuses[FAILED]

    def summary(
        self,
        *,
        requests: int,
        seconds: float,
        dry_run: bool,
        shard: str | None = None,
        journal: str | None = None,
        destination: str | None = None,
    ) -> BatchSummary:
        count = self.statuses
        return BatchSummary(
            references=self.references,
            repositories=self.repositories,
            converted=count[CONVERTED],
            already_oci=count[ALREADY_OCI],
            would_convert=count[WOULD_CONVERT],
            failed=count[FAILED],
            artifacts=count[ARTIFACT],
            pushed_manifests=self.pushed_manifests,
            requests=requests,
            seconds=round(seconds, 3),
            dry_run=dry_run,
            shard=shard,
            journal=journal,
            present=count[PRESENT],
            signatures=dict(sorted(self.signatures.items())),
            destination=destination,
        )
