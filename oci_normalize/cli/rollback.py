"""What ``rollback`` prints, and the code of :mod:`.exits` it ends with: 2 when the journal
cannot be read, 3 when some tags conflicted or failed. ``--json``: a line per tag and a final
``{"summary": …}`` line."""

from __future__ import annotations

import time
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
    from oci_normalize.batch.journal import read_journal
    from oci_normalize.batch.rollback import rollback
    from oci_normalize.result_models import RollbackResult
    from oci_normalize.results import CONFLICT, FAILED, RESTORED, UNCHANGED, WOULD_RESTORE

    started = time.monotonic()
    try:
        entries = read_journal(Path(journal))
    except OciNormalizeError as exc:
        say_error(f"{exc}")
        return exits.ERROR

    def on_result(r: RollbackResult) -> None:
        if json_out:
            json_line(r.model_dump())

    results = rollback(
        entries, client=client, dry_run=dry_run, concurrency=concurrency, on_result=on_result
    )
    statuses = (RESTORED, WOULD_RESTORE, UNCHANGED, CONFLICT, FAILED)
    counts = {k: sum(1 for r in results if r.status == k) for k in statuses}
    bad = counts[CONFLICT] + counts[FAILED]
    code = exits.SOME_FAILED if bad else exits.OK
    seconds = round(time.monotonic() - started, 3)
    if json_out:
        summary = {"tags": len(results), **counts, "requests": client.requests, "seconds": seconds}
        json_line({"summary": summary, "dry_run": dry_run, "exit_code": code})
        return code
    for r in sorted(results, key=lambda r: r.reference):
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
        f"rollback{' (dry run)' if dry_run else ''}: {len(results)} tag(s): {restored} "
        f"{'would be restored' if dry_run else 'restored'}, {counts[UNCHANGED]} already "
        f"original, {counts[CONFLICT]} conflict(s), {counts[FAILED]} failed; "
        f"{client.requests} requests, {seconds:.1f} s"
    )
    return code
