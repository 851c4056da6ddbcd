"""What ``batch`` prints, and the code of :mod:`.exits` it ends with.

2 (``exits.ERROR``) when it could not start (no source, bad shard or report name, an output
path that cannot be written, catalog refused, journal unreadable) or could not record what it
did (the journal or the report failed to write, the catalog failed mid-way: the summary is
printed all the same); 3 (``exits.SOME_FAILED``) when some references failed.
Humans get a progress bar when stdout is a terminal and a summary at the end; ``--json`` gets one
line per reference and a final ``{"summary": …}`` line.

The sweep streams: references are enumerated as the run goes, each result is written to a
results file (JSON lines, anonymous, beside the report or the journal) and counted the moment
it is known, and what the end shows sorted (failures, a dry run's moves, the report) is read
back from that file. Nothing here holds a list of references or of results. ``rollback`` lives
in :mod:`.rollback`, the bar in :mod:`.progress`, files in :mod:`.files`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from oci_normalize.batch import DEFAULT_CONCURRENCY, MAX_CONCURRENCY
from oci_normalize.cli import exits
from oci_normalize.cli.exits import say_error
from oci_normalize.cli.files import MAX_FROM_FILE_BYTES, iter_from_file, json_line, unwritable
from oci_normalize.cli.progress import progress
from oci_normalize.cli.rollback import run_rollback
from oci_normalize.convert.tree import CHILD_FETCH_CONCURRENCY
from oci_normalize.errors import OciNormalizeError, RegistryError
from oci_normalize.limits import DEFAULT_BLOB_CONCURRENCY
from oci_normalize.options import DEFAULT_CONVERT_OPTIONS, ConvertOptions
from oci_normalize.text import printable

# The batch stack (pydantic result models, reports, rollback) is imported where it is used:
# ``convert`` and ``check`` start faster without it.
if TYPE_CHECKING:
    from collections.abc import Container

    from oci_normalize.api import Client
    from oci_normalize.batch.destination import Destination
    from oci_normalize.batch.resultsfile import IndexedResults, MemoryIndex
    from oci_normalize.batch.targets import Selection, TargetStream
    from oci_normalize.digest import Digest
    from oci_normalize.result_models import BatchSummary

__all__ = [
    "DEFAULT_CONCURRENCY",
    "MAX_CONCURRENCY",
    "MAX_FROM_FILE_BYTES",
    "iter_from_file",
    "run_rollback",
    "unwritable",
]

REPORT_SUFFIXES: Final = (".html", ".htm", ".md")


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


def run_batch(req: BatchRequest, client: Client) -> int:
    from oci_normalize.batch.journal import Journal, KnownOci
    from oci_normalize.batch.resultsfile import ResultsFile, index
    from oci_normalize.batch.run import BatchOptions, failed, run
    from oci_normalize.batch.tally import Tally
    from oci_normalize.batch.targets import Selection, Shard
    from oci_normalize.result_models import RefResult
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
    known: KnownOci | None = None
    try:
        if req.journal:
            path = Path(req.journal)
            if path.exists() and to is None:
                known = KnownOci(path)
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

    problems: list[str] = []
    tally = Tally()
    with ResultsFile(_spool_dir(req)) as results:
        with progress(None, enabled=_show_progress(req)) as bar:
            told = 0  # targets.failures already reported

            def on_result(r: RefResult) -> None:
                nonlocal told
                results.add(r)
                tally.add(r)
                if req.json_out:
                    json_line(r.model_dump())
                bar.advance(r.status == FAILED)
                while told < len(targets.failures):  # enumeration failures, as they happen
                    what, why = targets.failures[told]
                    told += 1
                    on_result(failed(what, why))

            options = BatchOptions(
                concurrency=req.concurrency,
                dry_run=req.dry_run,
                convert_options=req.options,
                destination=to,
            )
            oci: Container[Digest] = known if known is not None else frozenset()
            try:
                while told < len(targets.failures):
                    told += 1
                    on_result(failed(*targets.failures[told - 1]))
                for _ in run(
                    targets.refs,
                    client=client,
                    options=options,
                    journal=journal,
                    known_oci=oci if to is None else frozenset(),
                    on_result=on_result,
                ):
                    pass
                while told < len(targets.failures):
                    told += 1
                    on_result(failed(*targets.failures[told - 1]))
            except OciNormalizeError as exc:  # the catalog failed mid-way: what ran is kept
                problems.append(f"{exc}; the references listed after it were not swept")
            finally:
                if journal is not None:
                    journal.close()
                if known is not None:
                    known.close()

        summary = tally.summary(
            requests=client.requests,
            seconds=time.monotonic() - started,
            dry_run=req.dry_run,
            shard=str(shard) if shard else None,
            journal=req.journal,
            destination=str(to) if to else None,
        )
        code = exits.SOME_FAILED if summary.failed else exits.OK
        if journal is not None and journal.failure:
            problems.insert(0, str(journal.failure))
        listed = bool(req.report) or (not req.json_out and (req.dry_run or summary.failed > 0))
        indexed = index(results) if listed else None
        try:
            if req.report and indexed is not None:
                problems += _write_report(req, indexed, summary)
            if req.json_out:
                if problems:  # what was done is not fully on record: say so, and exit 2
                    code = exits.ERROR
                json_line({"summary": summary.model_dump(), "exit_code": code})
            else:
                _print_batch(indexed, summary)
        finally:
            if indexed is not None:
                indexed.close()
    if problems:
        code = exits.ERROR
    for problem in problems:
        say_error(f"{problem}")
    return code


def _spool_dir(req: BatchRequest) -> Path | None:
    """Where the results file goes: beside the report, else the journal, else $TMPDIR."""
    for name in (req.report, req.journal):
        if name:
            return Path(name).resolve().parent
    return None


def _write_report(
    req: BatchRequest, indexed: IndexedResults | MemoryIndex, summary: BatchSummary
) -> list[str]:
    from oci_normalize.batch import report as report_mod

    assert req.report is not None
    source = req.registry or f"references from {req.from_file}"
    try:
        report_mod.write_data(Path(req.report), indexed, summary, source=source)
    except OSError as exc:
        return [f"cannot write report {req.report}: {exc.strerror or exc}"]
    return []


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


def _targets(req: BatchRequest, client: Client, selection: Selection) -> TargetStream:
    """The references, lazily from a registry's catalog (its tag lists primed into the
    referrers cache as they are read), or from ``--from-file``."""
    from oci_normalize.batch.targets import (
        from_lines,
        registry_reference,
        stream_registry,
    )

    if req.from_file is None:
        assert req.registry is not None
        name = registry_reference(req.registry).registry

        def prime(repository: str, tags: list[str]) -> None:
            client.referrers.prime(name, repository, tags)

        return stream_registry(
            client, req.registry, selection, concurrency=req.concurrency, on_tags=prime
        )
    lines = iter_from_file(req.from_file)
    return from_lines(lines, selection, registry=req.registry, directory=_spool_dir(req))


def _print_batch(indexed: IndexedResults | MemoryIndex | None, s: BatchSummary) -> None:
    from oci_normalize.results import CONVERTED, FAILED, PRESENT, WOULD_CONVERT

    RESULT_STATUSES = (CONVERTED, WOULD_CONVERT, PRESENT, FAILED)  # noqa: N806 - a constant

    if s.dry_run and indexed is not None:
        for r in indexed.iter_status(WOULD_CONVERT):
            into = f" into {r.destination}" if r.destination else ""
            print(
                f"would convert {printable(r.reference)}{into}: "
                f"{r.old_digest} -> {r.new_digest} "
                f"({r.kind}, {len(r.moved)} manifest(s))"
            )
    if s.failed and indexed is not None:
        print(f"failed ({s.failed}):")
        for r in indexed.iter_status(FAILED):
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
        for r in indexed.iter_status(*RESULT_STATUSES) if indexed is not None else ():
            for sig in r.signatures:
                if sig.action in ("left-behind", "refused"):
                    print(f"  {sig.action} {printable(r.reference)}: {sig.name}")
    if s.failed:
        print(f"{s.failed} reference(s) failed; re-running the same command retries only them")


def _show_progress(req: BatchRequest) -> bool:
    return not req.json_out and sys.stdout.isatty()
