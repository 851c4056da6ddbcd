"""Undo batch runs from their journal: put each original manifest back on its tag.

Per tag, the journal's moves (``pending`` and ``converted`` lines, in file order, several runs
allowed) are undone newest first, each only while the tag still points at the digest that move
wrote: a HEAD (the guard) right before the PUT of the original bytes, both run by the one
writer (:func:`~oci_normalize.convert.push.execute`) that convert and batch use. A tag found
anywhere else is a *conflict* and is left alone; a tag already at the original digest is
*unchanged* (the move never happened, or was undone already). Nothing is deleted: the converted
manifests stay in the registry, reachable by digest.

A journal is a file anyone with write access to it can forge, so no line is taken at its word:
before the first PUT for a tag, every move about to be undone is *proved*. The journalled original
must hash to its ``old_digest`` (as a manifest of its declared, body-consistent media type), and
running this tool's pure normalizer over it (children fetched from the registry by digest and
verified) must give exactly ``new_digest``, the digest the tag holds at that step. Only then is
the original known to be the Docker-typed twin of what the tag holds, and put back; otherwise the
tag is *failed* with the reason and nothing is pushed for it.

Memory does not grow with the journal: the moves come from an on-disk index of it
(:class:`~oci_normalize.batch.undoindex.MoveIndex`), one reference's chain at a time and at most
:func:`window` references ahead of the results handed out; a move's original is read back from
the journal (and checked again there) only by the worker that proves and pushes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Final

from oci_normalize import mediatypes as mt
from oci_normalize.batch.journal import JournalEntry, iter_moves
from oci_normalize.batch.undoindex import Move, MoveIndex
from oci_normalize.convert.normalize import normalize
from oci_normalize.convert.pipeline import schema1_facts
from oci_normalize.convert.planner import restore
from oci_normalize.convert.push import execute
from oci_normalize.convert.tree import build_tree
from oci_normalize.digest import Digest
from oci_normalize.errors import (
    MalformedManifestError,
    OciNormalizeError,
    RefusedError,
    TagMovedError,
)
from oci_normalize.manifest import (
    MAX_MANIFEST_BYTES,
    VerifiedManifest,
    effective_media_type,
    parse_body,
    verify_manifest,
)
from oci_normalize.reference import Reference
from oci_normalize.result_models import ReferrerOut, RollbackResult
from oci_normalize.results import (
    CONFLICT,
    FAILED,
    LEFT_BEHIND,
    RESTORED,
    UNCHANGED,
    WOULD_RESTORE,
    RollbackStatus,
)
from oci_normalize.store.base import Store
from oci_normalize.store.client import Client
from oci_normalize.text import printable

#: References in flight per worker (:func:`window`).
WINDOW_PER_WORKER: Final = 4


@dataclass(frozen=True)
class Undo:
    """One move to undo: the tag went ``old`` → ``new``; ``data`` are ``old``'s exact bytes."""

    old: Digest
    new: Digest
    media_type: str
    data: bytes
    line: int = field(default=0, compare=False)  # the journal line, for messages


def undo_chains(entries: list[JournalEntry]) -> dict[str, list[Undo]]:
    """Per reference, its distinct moves in journal order (a pending line and its converted line
    are one move)."""
    chains: dict[str, list[Undo]] = {}
    for e in iter_moves(entries):
        assert e.old_digest and e.new_digest and e.old_manifest is not None  # iter_moves checked
        undo = Undo(e.old_digest, e.new_digest, e.old_media_type or "", e.old_manifest, e.line)
        chain = chains.setdefault(e.reference, [])
        if not chain or (chain[-1].old, chain[-1].new) != (undo.old, undo.new):
            chain.append(undo)
    return chains


def window(concurrency: int) -> int:
    """References handed to the workers and not yet answered, at most: enough to keep every
    worker busy while results are handed out, and no more (each may hold its originals)."""
    return WINDOW_PER_WORKER * max(1, concurrency)


def rollback(
    moves: MoveIndex,
    *,
    client: Client,
    dry_run: bool = False,
    concurrency: int = 8,
) -> Iterator[RollbackResult]:
    """Undo every move in ``moves``; one result per reference, yielded as each finishes.

    References are taken from the index lazily, at most :func:`window` of them not yet
    answered; a move's original is read back from the journal only by the worker about to
    prove and push it.
    """
    chains = moves.chains()
    limit = window(concurrency)
    inflight: dict[Future[RollbackResult], str] = {}
    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="rollback") as pool:
        try:
            more = True
            while True:
                while more and len(inflight) < limit:
                    item = next(chains, None)
                    if item is None:
                        more = False
                        break
                    ref, chain = item
                    inflight[pool.submit(_undo, client, ref, chain, moves, dry_run)] = ref
                if not inflight:
                    return
                finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for future in finished:
                    reference = inflight.pop(future)
                    try:
                        result = future.result()
                    except Exception as exc:  # noqa: BLE001 - one tag never stops the others
                        why = printable(f"{type(exc).__name__}: {exc}")
                        result = RollbackResult(
                            reference=printable(reference),
                            status=FAILED,
                            error=f"internal error: {why}",
                        )
                    yield result
        finally:
            for future in inflight:
                future.cancel()


def _undo(
    client: Client, reference: str, chain: list[Move], moves: MoveIndex, dry_run: bool
) -> RollbackResult:
    shown = printable(reference)
    try:
        ref = Reference.parse(reference)
        if ref.tag is None or ref.digest is not None:
            raise RefusedError(f"{shown}: a journal reference must name a tag (and no digest)")
        reg = client.registry(ref)
        current = reg.head_manifest(ref.repository, ref.tag)  # the guard
        found: list[Move] = []
        at = current
        for move in reversed(chain):
            if at == move.new:
                found.append(move)
                at = move.old
            elif at != move.old:
                break  # someone else moved the tag after this move: stop here
        # the originals, read back from the journal now (and checked again there)
        steps = [Undo(m.old, m.new, m.media_type, moves.read(reference, m), m.line) for m in found]
        for undo in steps:  # every step proved before the first byte is pushed
            prove(reg, ref, undo)
        if steps and not dry_run:
            for undo in steps:  # through the one writer: guard (the tag is where we left it), PUT
                writes = restore(ref.repository, ref.tag, undo.data, undo.media_type, now=current)
                try:
                    execute(writes, dest=reg)
                except TagMovedError:  # proving took a while, and someone moved the tag
                    now = reg.head_manifest(ref.repository, ref.tag)
                    return RollbackResult(
                        reference=str(ref),
                        status=CONFLICT,
                        digest=str(now) if now else None,
                        expected=str(current),
                    )
                current = undo.old
        elif steps:
            current = at
    except OciNormalizeError as exc:
        return RollbackResult(reference=shown, status=FAILED, error=printable(str(exc)))
    if steps:
        status: RollbackStatus = WOULD_RESTORE if dry_run else RESTORED
        return RollbackResult(
            reference=str(ref),
            status=status,
            digest=str(current),
            steps=len(steps),
            signatures=_orphaned(client, ref, steps),
        )
    if current is not None and any(current == u.old for u in chain):
        return RollbackResult(reference=str(ref), status=UNCHANGED, digest=str(current))
    return RollbackResult(
        reference=str(ref),
        status=CONFLICT,
        digest=str(current) if current else None,
        expected=str(chain[-1].new),
    )


def _orphaned(client: Client, ref: Reference, steps: list[Undo]) -> list[ReferrerOut]:
    """Signatures that name a digest this rollback takes the tag off (``--sign-with`` made them
    when the tag moved): left in place, they name a digest nothing points at any more. The
    original's own signatures name the digest put back, and verify again."""
    reg = client.registry(ref)
    try:
        found = client.referrers.of(reg, ref.repository, [u.new for u in steps])
    except OciNormalizeError:
        return []  # listing is a courtesy here: the restore itself has happened
    return [
        ReferrerOut(
            subject=str(r.subject),
            kind=r.kind,
            name=r.name,
            artifact_type=r.artifact_type,
            signed=True,
            action=LEFT_BEHIND,
        )
        for r in found
        if r.signed
    ]


def prove(registry: Store, ref: Reference, undo: Undo) -> None:
    """Raise RefusedError unless ``undo.data`` is what this tool converts into ``undo.new``.

    Checked, in order: size cap; a manifest media type that the bytes do not contradict; the
    bytes hash to ``undo.old``; the pure normalizer, over the tree under those bytes (children
    by digest from the registry, verified), ends at exactly ``undo.new``.
    """
    what = f"journal line {undo.line}"
    if len(undo.data) > MAX_MANIFEST_BYTES:
        raise RefusedError(f"{what}: the original manifest is over {MAX_MANIFEST_BYTES} bytes")
    declared = mt.base(undo.media_type)
    try:
        own = parse_body(undo.data, what).get("mediaType")
    except MalformedManifestError as exc:
        raise RefusedError(
            f"{what}: the journalled original is not a manifest; refusing to push it"
        ) from exc
    media_type = effective_media_type(undo.data, declared)
    # Docker schema2 bodies always carry their mediaType (only OCI's is optional).
    docker_untyped = mt.is_docker(declared) and not mt.is_schema1(declared) and own != declared
    if not mt.is_manifest(media_type) or media_type != declared or docker_untyped:
        raise RefusedError(
            f"{what}: the journalled media type {printable(undo.media_type, limit=100)!r} is "
            "not a manifest type its bytes agree with; refusing to push it"
        )
    _, content = verify_manifest(
        undo.data, media_type, undo.old, None, f"{what}: journalled original"
    )
    # A signed schema1 original is journalled as served (the registry takes it back signed
    # only); its digest, and the proof, cover the JWS payload alone.
    signed = undo.data if content is not undo.data else None
    fetched = VerifiedManifest(content, media_type, undo.old, size=len(undo.data), signed=signed)
    where = ref.with_digest(undo.old)
    try:
        tree = build_tree(registry, where, fetched)
        plan = normalize(tree, schema1_layers=schema1_facts(tree, registry, where))
    except OciNormalizeError as exc:
        raise RefusedError(
            f"{what}: cannot prove the original converts to {undo.new.short} ({exc}); "
            "refusing to push it"
        ) from exc
    if plan.root.new_digest != undo.new:
        raise RefusedError(
            f"{what}: the journalled original converts to {plan.root.new_digest.short}, not to "
            f"{undo.new.short} that the tag holds; refusing to push it (forged or foreign line)"
        )
