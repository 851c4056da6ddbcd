"""Undo batch runs from their journal: put each original manifest back on its tag.

Per tag, the journal's moves (``pending`` and ``converted`` lines, in file order, several runs
allowed) are undone newest first, each only while the tag still points at the digest that move
wrote: a HEAD (the guard) right before the PUT of the original bytes. A tag found anywhere else
is a *conflict* and is left alone; a tag already at the original digest is *unchanged* (the move
never happened, or was undone already). Nothing is deleted: the converted manifests stay in the
registry, reachable by digest.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel, ConfigDict

from oci_normalize.api import Client
from oci_normalize.batch.journal import JournalEntry, iter_moves
from oci_normalize.digest import Digest
from oci_normalize.errors import OciNormalizeError
from oci_normalize.reference import Reference

RESTORED: Final = "restored"
WOULD_RESTORE: Final = "would-restore"
UNCHANGED: Final = "unchanged"
CONFLICT: Final = "conflict"
FAILED: Final = "failed"


@dataclass(frozen=True)
class Undo:
    """One move to undo: the tag went ``old`` → ``new``; ``data`` are ``old``'s exact bytes."""

    old: Digest
    new: Digest
    media_type: str
    data: bytes


class RollbackResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    reference: str
    status: str  # restored | would-restore | unchanged | conflict | failed
    digest: str | None = None  # where the tag points now (after a restore: the original)
    expected: str | None = None  # for a conflict: the digest the batch wrote
    steps: int = 0  # moves undone (several when re-runs converted the tag more than once)
    error: str | None = None


def undo_chains(entries: list[JournalEntry]) -> dict[str, list[Undo]]:
    """Per reference, its distinct moves in journal order (a pending line and its converted line
    are one move)."""
    chains: dict[str, list[Undo]] = {}
    for e in iter_moves(entries):
        assert e.old_digest and e.new_digest and e.old_manifest is not None  # iter_moves checked
        undo = Undo(e.old_digest, e.new_digest, e.old_media_type or "", e.old_manifest)
        chain = chains.setdefault(e.reference, [])
        if not chain or (chain[-1].old, chain[-1].new) != (undo.old, undo.new):
            chain.append(undo)
    return chains


def rollback(
    entries: list[JournalEntry],
    *,
    client: Client,
    dry_run: bool = False,
    concurrency: int = 8,
    on_result: Callable[[RollbackResult], None] | None = None,
) -> list[RollbackResult]:
    """Undo every move recorded in ``entries``; one result per reference."""
    chains = undo_chains(entries)
    results: list[RollbackResult] = []
    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="rollback") as pool:
        futures = {
            pool.submit(_undo, client, ref, chain, dry_run): ref for ref, chain in chains.items()
        }
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - one tag never stops the others
                result = RollbackResult(
                    reference=futures[future], status=FAILED, error=f"internal error: {exc!r}"
                )
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


def _undo(client: Client, reference: str, chain: list[Undo], dry_run: bool) -> RollbackResult:
    try:
        ref = Reference.parse(reference)
        if ref.tag is None:
            raise OciNormalizeError(f"{reference}: journal reference has no tag")
        for undo in chain:
            undo.old.verify(undo.data, f"{reference}: journalled original manifest")
        reg = client.registry(ref)
        current = reg.head_manifest(ref.repository, ref.tag)  # the guard
        steps = 0
        for undo in reversed(chain):
            if current == undo.new:
                if not dry_run:
                    reg.put_manifest(ref.repository, ref.tag, undo.data, undo.media_type)
                current, steps = undo.old, steps + 1
            elif current != undo.old:
                break  # someone else moved the tag after this move: stop here
    except OciNormalizeError as exc:
        return RollbackResult(reference=reference, status=FAILED, error=str(exc))
    if steps:
        status = WOULD_RESTORE if dry_run else RESTORED
        return RollbackResult(reference=reference, status=status, digest=str(current), steps=steps)
    if current is not None and any(current == u.old for u in chain):
        return RollbackResult(reference=reference, status=UNCHANGED, digest=str(current))
    return RollbackResult(
        reference=reference,
        status=CONFLICT,
        digest=str(current) if current else None,
        expected=str(chain[-1].new),
    )
