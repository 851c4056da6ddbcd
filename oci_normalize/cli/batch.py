"""What ``batch`` and ``rollback`` print, and the code of :mod:`.exits` they end with.

2 (``exits.ERROR``) when they could not start (no source, bad shard or report name, an output
path that cannot be written, catalog refused, journal unreadable) or could not record what they
did (the journal or the report failed to write: the summary is printed all the same); 3
(``exits.SOME_FAILED``) when some references failed or, for rollback, conflicted.
Humans get a progress bar when stdout is a terminal and a summary at the end; ``--json`` gets one
line per reference and a final ``{"summary": …}`` line.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from oci_normalize.batch import DEFAULT_CONCURRENCY, MAX_CONCURRENCY
from oci_normalize.cli import exits
from oci_normalize.cli.exits import say_error
from oci_normalize.convert.tree import CHILD_FETCH_CONCURRENCY
from oci_normalize.errors import OciNormalizeError, RegistryError
from oci_normalize.limits import DEFAULT_BLOB_CONCURRENCY
from oci_normalize.options import DEFAULT_CONVERT_OPTIONS, ConvertOptions
from oci_normalize.store.localfs import kind_of, open_regular, read_capped
from oci_normalize.text import printable

# The batch stack (pydantic result models, reports, rollback) is imported where it is used:
# ``convert`` and ``check`` start faster without it.
if TYPE_CHECKING:
    from oci_normalize.api import Client
    from oci_normalize.batch.destination import Destination
    from oci_normalize.batch.targets import Selection, Targets
    from oci_normalize.results import BatchSummary, RefResult

__all__ = ["DEFAULT_CONCURRENCY", "MAX_CONCURRENCY"]

REPORT_SUFFIXES: Final = (".html", ".htm", ".md")
#: Largest ``--from-file`` read (a million references of ~60 characters).
MAX_FROM_FILE_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class BatchRequest:
    registry: str | None = None
    repos: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    from_file: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    dry_run: bool = False
    journal: str | None = None
    json_out: bool = False
    shard: str | None = None
    report: str | None = None
    to: str | None = None  # HOST[:PORT][/PREFIX]: write there instead of in place
    options: ConvertOptions = DEFAULT_CONVERT_OPTIONS


def pool_size(concurrency: int, *, copies: bool = False) -> int:
    """Connections a batch of ``concurrency`` can hold at once (an index fetches children too;
    a copy streams several blobs, and talks to two registries)."""
    per_ref = max(CHILD_FETCH_CONCURRENCY, DEFAULT_BLOB_CONCURRENCY if copies else 0)
    return max(16, min(concurrency, MAX_CONCURRENCY) * per_ref)


def unwritable(path: Path, what: str) -> str | None:
    """Why ``path`` cannot be written as an output file, or None: checked before any write."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        parent = path.parent
        if not parent.is_dir():
            return f"{what} {path}: directory {parent} does not exist"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"{what} {path}: directory {parent} is not writable"
        return None
    except OSError as exc:
        return f"{what} {path}: {exc.strerror or exc}"
    if not stat.S_ISREG(mode):
        return f"{what} {path}: is {kind_of(mode)}, not a regular file"
    if not os.access(path, os.W_OK):
        return f"{what} {path}: not writable"
    return None


def _json_line(doc: Any) -> None:
    print(json.dumps(doc, separators=(",", ":")), flush=True)


def run_batch(req: BatchRequest, client: Client) -> int:
    from oci_normalize.batch import report as report_mod
    from oci_normalize.batch.journal import Journal, known_oci, read_journal
    from oci_normalize.batch.run import BatchOptions, failed, run, summarize
    from oci_normalize.batch.targets import Selection, Shard
    from oci_normalize.results import FAILED

    started = time.monotonic()
    if req.registry is None and req.from_file is None:
        say_error("give a REGISTRY to sweep or --from-file FILE|-")
        return exits.ERROR
    if req.report and Path(req.report).suffix.lower() not in REPORT_SUFFIXES:
        say_error(f"--report {req.report}: the name must end in .html or .md")
        return exits.ERROR
    outputs = [("--report", req.report), ("--journal", req.journal)]
    for option, target in outputs:  # every output checked before the first write
        problem = unwritable(Path(target), option) if target else None
        if problem:
            say_error(f"{problem}")
            return exits.ERROR
    try:
        shard = Shard.parse(req.shard) if req.shard else None
    except ValueError as exc:
        say_error(f"{exc}")
        return exits.ERROR
    try:
        to = _destination(req)
    except OciNormalizeError as exc:
        say_error(f"{exc}")
        return exits.ERROR
    selection = Selection(repos=req.repos, tags=req.tags, shard=shard)
    journal: Journal | None = None
    known: frozenset[Any] = frozenset()
    try:
        if req.journal:
            path = Path(req.journal)
            if path.exists():
                known = known_oci(read_journal(path))
            journal = Journal(path)
        targets = _targets(req, client, selection)
    except OciNormalizeError as exc:
        hint = ""
        if isinstance(exc, RegistryError) and req.from_file is None:
            hint = " (registries without a catalog need --from-file)"
        say_error(f"{exc}{hint}")
        return exits.ERROR
    except OSError as exc:
        say_error(f"{exc}")
        return exits.ERROR

    results: list[RefResult] = []
    early = [failed(what, why) for what, why in targets.failures]
    with _progress(len(targets.refs) + len(early), enabled=_show_progress(req)) as bar:

        def on_result(r: RefResult) -> None:
            if req.json_out:
                _json_line(r.model_dump())
            bar.advance(r.status == FAILED)

        for r in early:
            results.append(r)
            on_result(r)
        for repository, tags in targets.all_tags.items():
            client.referrers.prime(targets.registry, repository, tags)
        options = BatchOptions(
            concurrency=req.concurrency,
            dry_run=req.dry_run,
            convert_options=req.options,
            destination=to,
        )
        try:
            results += run(
                targets.refs,
                client=client,
                options=options,
                journal=journal,
                known_oci=known if to is None else frozenset(),
                on_result=on_result,
            )
        finally:
            if journal is not None:
                journal.close()

    summary = summarize(
        results,
        requests=client.requests,
        seconds=time.monotonic() - started,
        dry_run=req.dry_run,
        shard=str(shard) if shard else None,
        journal=req.journal,
        destination=str(to) if to else None,
    )
    code = exits.SOME_FAILED if summary.failed else exits.OK
    problems = [str(journal.failure)] if journal is not None and journal.failure else []
    if req.report:
        source = req.registry or f"references from {req.from_file}"
        try:
            report_mod.write(Path(req.report), results, summary, source=source)
        except OSError as exc:
            problems.append(f"cannot write report {req.report}: {exc.strerror or exc}")
    if problems:  # what was done is not fully on record: say so, and exit 2
        code = exits.ERROR
    if req.json_out:
        _json_line({"summary": summary.model_dump(), "exit_code": code})
    else:
        _print_batch(results, summary)
    for problem in problems:
        say_error(f"{problem}")
    return code


def _destination(req: BatchRequest) -> Destination | None:
    """``--to``, checked: a registry other than the source (or another prefix on it)."""
    from oci_normalize.batch.destination import Destination
    from oci_normalize.batch.targets import registry_reference

    if req.to is None:
        return None
    to = Destination.parse(req.to)
    if req.options.backup_tag is not None:
        raise OciNormalizeError("--backup-tag applies to in-place conversion only, not --to")
    same = req.registry is not None and registry_reference(req.registry).registry == to.registry
    if same and not to.prefix:
        raise OciNormalizeError(
            f"--to {req.to} is the source registry; give a /PREFIX, or drop --to to convert "
            "in place"
        )
    return to


def _targets(req: BatchRequest, client: Client, selection: Selection) -> Targets:
    from oci_normalize.batch.targets import from_lines, from_registry

    if req.from_file is None:
        assert req.registry is not None
        return from_registry(client, req.registry, selection, concurrency=req.concurrency)
    return from_lines(read_from_file(req.from_file), selection, registry=req.registry)


def read_from_file(name: str, *, cap: int = MAX_FROM_FILE_BYTES) -> list[str]:
    """The lines of ``--from-file`` (``-``: stdin): a regular file or a pipe, at most ``cap``."""
    what = "--from-file " + ("(stdin)" if name == "-" else name)
    if name == "-":
        data = read_capped(sys.stdin.buffer, cap, what)
    else:
        with open_regular(name, what, fifo_ok=True) as fh:
            data = read_capped(fh, cap, what)
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise OciNormalizeError(f"{what}: not UTF-8 text (byte {exc.start})") from exc


def _print_batch(results: list[RefResult], s: BatchSummary) -> None:
    from oci_normalize.results import FAILED, WOULD_CONVERT

    ordered = sorted(results, key=lambda r: r.reference)
    if s.dry_run:
        for r in ordered:
            if r.status == WOULD_CONVERT:
                into = f" into {r.destination}" if r.destination else ""
                print(
                    f"would convert {printable(r.reference)}{into}: "
                    f"{r.old_digest} -> {r.new_digest} "
                    f"({r.kind}, {len(r.moved)} manifest(s))"
                )
    failures = [r for r in ordered if r.status == FAILED]
    if failures:
        print(f"failed ({len(failures)}):")
        for r in failures:
            print(f"  {printable(r.reference)}: {printable(r.error or '')}")
    done = f"{s.would_convert} would convert" if s.dry_run else f"{s.converted} converted"
    if s.destination:
        verb = "would be written" if s.dry_run else "written"
        count = s.would_convert if s.dry_run else s.converted
        done = f"{count} {verb} to {s.destination}, {s.present} already there"
    print(
        f"batch{' (dry run)' if s.dry_run else ''}: {s.references} reference(s) in "
        f"{s.repositories} repositor{'y' if s.repositories == 1 else 'ies'}: {done}, "
        f"{'' if s.destination else f'{s.already_oci} already OCI, '}"
        f"{s.artifacts} artifact(s) left alone, {s.failed} failed; "
        f"{s.requests} requests, "
        f"{s.pushed_manifests} manifests pushed, {s.seconds:.1f} s"
    )
    if s.signatures:
        counted = ", ".join(f"{n} {action}" for action, n in sorted(s.signatures.items()))
        print(f"signatures: {counted}")
        for r in ordered:
            for sig in r.signatures:
                if sig.action in ("left-behind", "refused"):
                    print(f"  {sig.action} {printable(r.reference)}: {sig.name}")
    if s.failed:
        print(f"{s.failed} reference(s) failed; re-running the same command retries only them")


def run_rollback(
    journal: str, client: Client, *, dry_run: bool, json_out: bool, concurrency: int
) -> int:
    from oci_normalize.batch.journal import read_journal
    from oci_normalize.batch.rollback import rollback
    from oci_normalize.results import (
        CONFLICT,
        FAILED,
        RESTORED,
        UNCHANGED,
        WOULD_RESTORE,
        RollbackResult,
    )

    started = time.monotonic()
    try:
        entries = read_journal(Path(journal))
    except OciNormalizeError as exc:
        say_error(f"{exc}")
        return exits.ERROR

    def on_result(r: RollbackResult) -> None:
        if json_out:
            _json_line(r.model_dump())

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
        _json_line({"summary": summary, "dry_run": dry_run, "exit_code": code})
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


# ---- progress -----------------------------------------------------------------------------------


def _show_progress(req: BatchRequest) -> bool:
    return not req.json_out and sys.stdout.isatty()


class _Bar:
    def advance(self, failed: bool) -> None:  # noqa: ARG002 - the quiet bar ignores it
        return None


class _RichBar(_Bar):
    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("batch", total=total, failed=0)
        self._failed = 0

    def advance(self, failed: bool) -> None:
        self._failed += failed
        self._progress.update(self._task, advance=1, failed=self._failed)


def _progress(total: int, *, enabled: bool) -> AbstractContextManager[_Bar]:
    if not enabled:
        return nullcontext(_Bar())
    bar = _RichBar(total)

    class _Ctx(AbstractContextManager[_Bar]):
        def __enter__(self) -> _Bar:
            bar._progress.start()
            return bar

        def __exit__(self, *_: object) -> None:
            bar._progress.stop()

    return _Ctx()
