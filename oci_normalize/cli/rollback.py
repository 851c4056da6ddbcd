"""What ``rollback`` prints, and the code of :mod:`.exits` it ends with: 2 when the journal
cannot be read, 3 when some tags conflicted or failed. ``--json``: a line per tag as it
finishes and a final ``{"summary": …}`` line; otherwise a line per tag sorted by reference, read
back from disk (:class:`~oci_normalize.batch.undoindex.SortedResults`), then the summary.
Nothing here holds the journal or a list of results: counts are kept as results come."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from oci_normalize.cli import exits
from oci_normalize.cli.exits import say_error
from oci_normalize.cli.files import json_line
from oci_normalize.errors import OciNormalizeError
from oci_normalize.text import printable

if TYPE_CHECKING:
    from oci_normalize.api import Client


def run_rollback(
    journal: str, client: Client, *, dry_run: bool, json_out: bool, concurrency: int
) -> int:
    from oci_normalize.batch.rollback import rollback
    from oci_normalize.batch.undoindex import MoveIndex, SortedResults
    from oci_normalize.results import CONFLICT, FAILED, RESTORED, UNCHANGED, WOULD_RESTORE

    started = time.monotonic()
    try:
        moves = MoveIndex(Path(journal))
    except OciNormalizeError as exc:
        say_error(f"{exc}")
        return exits.ERROR

    statuses = (RESTORED, WOULD_RESTORE, UNCHANGED, CONFLICT, FAILED)
    counts = dict.fromkeys(statuses, 0)
    sort: AbstractContextManager[SortedResults | None] = (
        nullcontext() if json_out else SortedResults(moves.directory)
    )
    with moves, sort as results:
        tags = 0
        for r in rollback(moves, client=client, dry_run=dry_run, concurrency=concurrency):
            tags += 1
            counts[r.status] += 1
            if results is None:
                json_line(r.model_dump())
            else:
                results.add(r)
        bad = counts[CONFLICT] + counts[FAILED]
        code = exits.SOME_FAILED if bad else exits.OK
        seconds = round(time.monotonic() - started, 3)
        if results is None:
            summary = {"tags": tags, **counts, "requests": client.requests, "seconds": seconds}
            json_line({"summary": summary, "dry_run": dry_run, "exit_code": code})
            return code
        for r in results:  # sorted by reference
            shown = printable(r.reference)
            if r.status in (RESTORED, WOULD_RESTORE):
                verb = "would restore" if dry_run else "restored"
                print(f"{verb} {shown} -> {r.digest}")
                for sig in r.signatures:  # made by --sign-with for the digest undone
                    print(
                        f"  signature left behind, naming a digest no tag points at: "
                        f"{sig.name} ({sig.subject})"
                    )
            elif r.status == CONFLICT:
                print(
                    f"conflict {shown}: now at {r.digest or 'nothing (tag gone)'}, not at "
                    f"{r.expected} the batch wrote; left alone"
                )
            elif r.status == FAILED:
                print(f"failed {shown}: {printable(r.error or '')}")
                say_error(f"{shown}: {printable(r.error or '')}")
    restored = counts[WOULD_RESTORE] if dry_run else counts[RESTORED]
    print(
        f"rollback{' (dry run)' if dry_run else ''}: {tags} tag(s): {restored} "
        f"{'would be restored' if dry_run else 'restored'}, {counts[UNCHANGED]} already "
        f"original, {counts[CONFLICT]} conflict(s), {counts[FAILED]} failed; "
        f"{client.requests} requests, {seconds:.1f} s"
    )
    return code
