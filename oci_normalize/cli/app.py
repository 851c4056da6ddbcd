"""The command line: the only place that prints for humans and picks exit codes.

The codes and the one error printer live in :mod:`.exits`; options shared by several commands in
:mod:`.options`; what ``batch`` and ``rollback`` print in :mod:`.batch`. :func:`main` runs the app
through :func:`.guard.run_guarded`, the last line of defence: never a traceback, and never the 1
that means "Docker types found" for anything but that.

Start-up is most of a short command's time, so each command imports what it runs in its body:
``--version`` loads neither the API nor the HTTP stack, a registry command no batch or archive
module, and pydantic is loaded only to build a result (tests/test_imports.py holds the lists).
:func:`run` hands typer an app holding only the command named (typer builds the options of
every command it holds at each start), and the whole app for help and unknown names. ``serve``
(its module and its defaults) is added to the app only when it is asked for: :func:`whole_app`,
or the module attribute ``app``.
"""

from __future__ import annotations

import gc
import json
import sys
from typing import TYPE_CHECKING, Annotated, Any, Final, NamedTuple

import typer

from oci_normalize import mediatypes as mt
from oci_normalize.batch import DEFAULT_CONCURRENCY, MAX_CONCURRENCY
from oci_normalize.cli import exits, guard
from oci_normalize.cli.exits import say_error
from oci_normalize.cli.options import (
    Connection,
    JsonOpt,
    connection_options,
    make_client,
    safety_options,
)
from oci_normalize.errors import HookError, OciNormalizeError, RefusedError
from oci_normalize.text import printable

if TYPE_CHECKING:
    from oci_normalize.api import Client
    from oci_normalize.options import ConvertOptions
    from oci_normalize.result_models import CheckResult, ConvertResult, ReferrerOut

#: How the app is built; :func:`_app_for` builds a one-command app the same way.
_SETTINGS: Final[dict[str, Any]] = {
    "add_completion": False,
    "no_args_is_help": True,
    "help": "Rewrite Docker media types in registry images to their OCI equivalents.",
    "context_settings": {"help_option_names": ["-h", "--help"]},
}
#: The commands every start knows; ``serve`` joins them in :func:`whole_app`.
_commands = typer.Typer(**_SETTINGS)
_SERVE: Final = "serve"
_HELP: Final = frozenset(_SETTINGS["context_settings"]["help_option_names"])


def _version(value: bool) -> None:
    if value:
        from oci_normalize.version import VERSION

        print(f"oci-normalize {VERSION}")
        raise typer.Exit(exits.OK)


@_commands.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Rewrite Docker media types in registry images to their OCI equivalents."""


def _say(text: str = "") -> None:
    """Human output: each line without control characters (manifests and registries wrote
    parts of it), never cut short."""
    for line in text.split("\n"):
        print(printable(line, limit=sys.maxsize))


def _emit_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, sort_keys=False))


def _client_or_exit(conn: Connection, code: int, *, pool_size: int = 16) -> Client:
    try:
        return make_client(conn, pool_size=pool_size)
    except OciNormalizeError as exc:
        say_error(f"{exc}")
        raise typer.Exit(code) from None


@_commands.command()
@connection_options
def check(
    refs: Annotated[
        list[str],
        typer.Argument(
            metavar="REF...",
            help="Images: HOST/REPO[:TAG][@DIGEST], oci:PATH[:TAG], oci-archive:PATH[:REF] or "
            "docker-archive:PATH[:REF].",
        ),
    ],
    json_out: JsonOpt = False,
    *,
    conn: Connection,
) -> None:
    """List every Docker media type under each REF (index, children, config, layers)."""
    from oci_normalize import api

    client = _client_or_exit(conn, exits.ERROR)
    outcomes: list[CheckResult | _Failed] = []
    for ref in refs:
        try:
            outcomes.append(api.check(ref, client=client))
        except OciNormalizeError as exc:
            say_error(f"{exc}")
            outcomes.append(_Failed(reference=ref, error=str(exc)))
    checked = [r for r in outcomes if not isinstance(r, _Failed)]
    code = exits.OK
    if len(checked) < len(outcomes) or any(r.error for r in checked):
        code = exits.ERROR
    elif any(not r.oci and r.artifact is None for r in checked):
        code = exits.DOCKER_FOUND
    if json_out:
        docs = [_as_result(r).model_dump() for r in outcomes]
        _emit_json({"results": docs, "exit_code": code})
    else:
        for r in checked:
            if r.error is None:
                _print_check(r)
    raise typer.Exit(code)


class _Failed(NamedTuple):
    """A REF ``check`` could not read: a result model only if ``--json`` prints one."""

    reference: str
    error: str


def _as_result(outcome: CheckResult | _Failed) -> CheckResult:
    if not isinstance(outcome, _Failed):
        return outcome
    from oci_normalize.result_models import CheckResult

    return CheckResult(reference=outcome.reference, error=outcome.error)


def _print_check(r: CheckResult) -> None:
    verdict = "OCI" if r.oci else "ARTIFACT" if r.artifact else "DOCKER"
    _say(f"{r.reference}  {r.digest}  {r.media_type}  [{verdict}]")
    if r.artifact is not None:
        _say(f"  artifact, left alone: {r.artifact}")
        return
    for f in r.findings:
        twin = f.oci_media_type or (
            f"rebuilt as {mt.OCI_MANIFEST} by convert"
            if mt.is_schema1(f.media_type)
            else "(no OCI equivalent)"
        )
        where = f.where if f.path == "@" else f"{f.path} {f.where}"
        _say(f"  {where}: {f.media_type} -> {twin}")
    for w in r.warnings:
        _say(f"  warning: {w}")
    _print_referrers(r.referrers, indent="  ")
    if r.oci:
        _say(f"  all OCI ({_plural(r.manifests, 'manifest')})")
    else:
        docker = _plural(len(r.findings), "Docker media type")
        _say(f"  not OCI-pure: {docker} in {_plural(r.manifests, 'manifest')}")


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@_commands.command()
@connection_options
@safety_options
def convert(
    src: Annotated[
        str,
        typer.Argument(
            metavar="SRC",
            help="Image to convert: a registry ref, oci:PATH[:TAG], oci-archive:PATH[:REF] or "
            "docker-archive:PATH[:REF].",
        ),
    ],
    dest: Annotated[
        str | None,
        typer.Argument(
            metavar="[DEST]",
            help="Where to write (registry ref, oci:PATH[:TAG] or oci-archive:PATH[:REF]); "
            "default: SRC's tag, in place.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Push nothing; show the diff and new digests.")
    ] = False,
    json_out: JsonOpt = False,
    *,
    conn: Connection,
    options: ConvertOptions,
) -> None:
    """Rewrite SRC with OCI media types, in place or into DEST.

    A signature whose digest changes refuses it, unless --sign-with re-signs the new digest.

    Signatures that keep their digest, and unsigned referrers, follow the image.
    """
    from oci_normalize import api

    client = _client_or_exit(conn, exits.ERROR)
    try:
        result = api.convert(src, dest, dry_run=dry_run, client=client, options=options)
    except OciNormalizeError as exc:
        say_error(f"{exc}")
        if json_out:
            from oci_normalize.result_models import ConvertResult, ReferrerOut

            details = exc.details if isinstance(exc, RefusedError) else ()
            failed = ConvertResult(
                source=src,
                destination=dest or src,
                status="refused" if isinstance(exc, RefusedError) else "error",
                dry_run=dry_run,
                error=str(exc),
                referrers=[ReferrerOut.model_validate(d) for d in details],
                signatures=[
                    ReferrerOut.model_validate(d) for d in details if d.get("signed") is True
                ],
            )
            _emit_json(failed.model_dump())
        # A re-sign that failed leaves the tag where it was: the reference failed (exit 3).
        raise typer.Exit(exits.SOME_FAILED if isinstance(exc, HookError) else exits.ERROR) from None
    if json_out:
        _emit_json(result.model_dump())
    else:
        _print_convert(result)
    raise typer.Exit(exits.OK)


_ACTIONS: Final = {
    "refused": "signed: refuses the conversion (re-sign with --sign-with, or --break-signatures)",
    "left-behind": "signed: left behind on the old digest (it does not verify the new one)",
    "re-signed": "signed: the new digest was re-signed by --sign-with",
    "would-re-sign": "signed: --sign-with would re-sign the new digest",
    "carried": "travels with the image (its digest does not change)",
    "would-carry": "would travel with the image (its digest does not change)",
    "would-reattach": "would be re-attached to the new digest",
    "reattached": "re-attached to the new digest",
    "left": "left on the old digest (--no-referrers)",
    "annotation-updated": "index annotation follows the new digest",
}


def _print_referrers(items: list[ReferrerOut], *, indent: str = "") -> None:
    if items:
        signed = sum(1 for i in items if i.signed)
        _say(f"{indent}pointing at the image's digests ({len(items)}, {signed} signed):")
    for item in items:
        what = f" [{item.artifact_type}]" if item.artifact_type else ""
        _say(f"{indent}  {item.kind} {item.name}{what} -> {item.subject}")
        note = _ACTIONS.get(item.action, item.action)
        copied = item.action in ("reattached", "carried")
        target = f" as {item.new_name}" if item.new_name and copied else ""
        _say(f"{indent}    {note}{target}")


def _print_signing(r: ConvertResult) -> None:
    counts: dict[str, int] = {}
    for sig in r.signatures:
        counts[sig.action] = counts.get(sig.action, 0) + 1
    if counts:
        _say("signatures: " + ", ".join(f"{n} {action}" for action, n in sorted(counts.items())))
    for run in r.signing:
        verb = "ran" if run.ran else "would run"
        _say(f"sign {run.path} {run.new_digest}: {verb}: {run.command}")


def _print_convert(r: ConvertResult) -> None:
    for w in r.warnings:
        _say(f"warning: {w}")
    if r.status == "already-oci":
        _say(f"{r.source}: already OCI ({r.old_digest}); nothing to do")
        return
    if r.status == "artifact":
        copied = (
            "" if r.destination == r.source or r.dry_run else f", copied as is to {r.destination}"
        )
        _say(f"{r.source}: artifact, left alone{copied}: {r.artifact} ({r.old_digest})")
        return
    _print_referrers(r.referrers)
    _print_signing(r)
    for change in r.changes:
        if r.dry_run:
            _say(change.diff)
        _say(f"# {change.path}: {change.old_digest} -> {change.new_digest}")
        if r.dry_run:
            _say()
    where = "in place" if r.destination == r.source else f"-> {r.destination}"
    if r.status == "would-convert":
        now = f" (now {r.old_digest})" if r.old_digest else ""
        _say(
            f"dry run: {r.destination} would point at {r.new_digest}{now}; "
            f"{_plural(len(r.changes), 'manifest')} would change; nothing pushed"
        )
    elif r.status == "would-refuse":
        _say(f"dry run: {r.source} would be refused; nothing pushed")
    elif r.status == "copied":
        _say(f"{r.source} is already OCI; copied {where} ({r.new_digest})")
    else:
        moved = f"{r.old_digest} -> {r.new_digest}" if r.old_digest else f"{r.new_digest}"
        _say(
            f"converted {r.source} {where}: {moved} "
            f"({_plural(r.pushed_manifests, 'manifest')} pushed, "
            f"{_plural(r.pushed_blobs, 'blob')} uploaded, {r.mounted_blobs} mounted, "
            f"{_plural(r.requests, 'request')})"
        )
    verb = "would move" if r.dry_run else "moved"
    for t in r.tags:
        _say(f"{verb} tag {t.tag} ({t.role}): {t.old_digest or '(new)'} -> {t.new_digest}")


# ---- batch and rollback: wiring only; cli/batch.py prints and picks their exit codes ----------

ConcurrencyOpt = Annotated[
    int,
    typer.Option("--concurrency", min=1, max=MAX_CONCURRENCY, help="References worked on at once."),
]


@_commands.command()
@connection_options
@safety_options
def batch(
    registry: Annotated[
        str | None,
        typer.Argument(metavar="[REGISTRY]", help="HOST[:PORT] whose catalog to sweep."),
    ] = None,
    repo: Annotated[
        list[str] | None, typer.Option("--repo", metavar="GLOB", help="Repository glob (repeat).")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", metavar="GLOB", help="Tag glob (repeat).")
    ] = None,
    from_file: Annotated[
        str | None,
        typer.Option(
            "--from-file",
            metavar="FILE|-",
            help="References, one a line, instead of the catalog ('-': stdin).",
        ),
    ] = None,
    concurrency: ConcurrencyOpt = DEFAULT_CONCURRENCY,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Change nothing; report what each would become.")
    ] = False,
    journal: Annotated[
        str | None,
        typer.Option(
            "--journal", metavar="FILE", help="Append a JSON-lines journal (for rollback)."
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON line per reference, then a summary line.")
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option("--shard", metavar="I/N", help="Only slice I (0-based) of N stable slices."),
    ] = None,
    report: Annotated[
        str | None, typer.Option("--report", metavar="FILE", help="Write a .html or .md report.")
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="HOST[:PORT][/PREFIX]",
            help="Write repository R to HOST/PREFIX/R (same tags) instead of converting in place.",
        ),
    ] = None,
    *,
    conn: Connection,
    options: ConvertOptions,
) -> None:
    """Convert every selected reference in place, concurrently; journal, report, resume.

    Each tag goes through what 'convert' does (guard, signatures, --sign-with, referrers).

    With --to, repository R goes to HOST/PREFIX/R under the same tags; the source is only read.
    """
    from oci_normalize.cli import batch as batch_cli

    if conn.password_stdin and from_file == "-":
        say_error("--password-stdin and --from-file - both want stdin")
        raise typer.Exit(exits.ERROR)
    pool = batch_cli.pool_size(concurrency, copies=to is not None)
    client = _client_or_exit(conn, exits.ERROR, pool_size=pool)
    request = batch_cli.BatchRequest(
        registry=registry,
        repos=tuple(repo or ()),
        tags=tuple(tag or ()),
        from_file=from_file,
        concurrency=concurrency,
        dry_run=dry_run,
        journal=journal,
        json_out=json_out,
        shard=shard,
        report=report,
        to=to,
        options=options,
    )
    raise typer.Exit(batch_cli.run_batch(request, client))


@_commands.command()
@connection_options
def rollback(
    journal: Annotated[str, typer.Argument(metavar="JOURNAL", help="A batch journal file.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Change nothing; report what would be restored.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON line per tag, then a summary line.")
    ] = False,
    concurrency: ConcurrencyOpt = DEFAULT_CONCURRENCY,
    *,
    conn: Connection,
) -> None:
    """Put the original manifests back on every tag a batch moved, where nothing moved since."""
    from oci_normalize.cli import batch as batch_cli

    pool = batch_cli.pool_size(concurrency)
    client = _client_or_exit(conn, exits.ERROR, pool_size=pool)
    raise typer.Exit(
        batch_cli.run_rollback(
            journal, client, dry_run=dry_run, json_out=json_out, concurrency=concurrency
        )
    )


def whole_app() -> typer.Typer:
    """The app with every command, ``serve`` last (its module is loaded here, once)."""
    if not any(info.name == _SERVE for info in _commands.registered_commands):
        from oci_normalize.cli import serve as serve_cli

        _commands.command(name=_SERVE)(serve_cli.serve)
    return _commands


def __getattr__(name: str) -> typer.Typer:
    """``app``: the whole app (:func:`whole_app`), as tests and embedders import it."""
    if name == "app":
        return whole_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    code = run()
    # The command is done and its files closed. The interpreter's shutdown would next walk
    # every object of every module loaded (typer's, requests', pydantic's) looking for
    # cycles to collect: tens of milliseconds a run, more than some commands' own work.
    # Frozen, they are only released; atexit hooks (temporary files) run as before.
    gc.freeze()
    sys.exit(code)


def run(args: list[str] | None = None) -> int:
    """Run the command line in ``args`` (default: ``sys.argv``) and return its exit code."""
    return guard.run_guarded(_app_for(sys.argv[1:] if args is None else args), args)


def _app_for(args: list[str]) -> typer.Typer:
    """The app as ``args`` need it: typer builds every registered command's options from its
    signature at each start, so when ``args`` begin with a command's name, an app with that
    command alone (and the root's ``--version``). No command, help, or a name that is no
    command get the whole app: its help and its errors list every command. A root option
    without help (``--version``) gets the app as it is, ``serve`` not loaded.
    """
    if not args or (args[0].startswith("-") and not _HELP.isdisjoint(args)):
        return whole_app()  # its help lists every command
    if args[0].startswith("-"):
        return _commands  # the root's own options (--version)
    if args[0] == _SERVE:
        whole_app()  # serve is registered only now
    return _one(_commands, args[0]) or whole_app()


def _one(app: typer.Typer, command: str) -> typer.Typer | None:
    """An app with ``app``'s root options and its command ``command`` alone; None: no such
    command."""
    for info in app.registered_commands:
        callback = info.callback
        name = info.name or (callback.__name__.replace("_", "-") if callback else None)
        if name == command:
            one = typer.Typer(**_SETTINGS)
            one.registered_callback = app.registered_callback
            one.registered_commands.append(info)
            return one
    return None
