"""``oci-normalize serve``: options in, a :class:`~oci_normalize.serve.service.ServeConfig` out.

Exit codes: 0 after a drain on SIGTERM/SIGINT (or a ``--status`` shown), 2 when it cannot start
(no webhook token, bad option, state unusable). What it does is in :mod:`oci_normalize.serve`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from oci_normalize.cli import exits
from oci_normalize.cli.exits import say_error, say_warning
from oci_normalize.cli.options import Connection, connection_options, make_client, safety_options
from oci_normalize.errors import OciNormalizeError
from oci_normalize.options import ConvertOptions
from oci_normalize.serve.defaults import (
    DEFAULT_GRACE,
    DEFAULT_LISTEN,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RECONCILE,
    DEFAULT_SERVE_CONCURRENCY,
    DEFAULT_STATE,
    MAX_SERVE_CONCURRENCY,
)
from oci_normalize.text import printable

if TYPE_CHECKING:  # the service (prometheus_client, waitress) loads only when serve runs
    from oci_normalize.serve.service import ServeConfig

TOKEN_ENV: Final = "OCI_NORMALIZE_WEBHOOK_TOKEN"
#: Largest token file read (a token is a line; anything bigger is the wrong file).
MAX_TOKEN_FILE_BYTES: Final = 4096


@connection_options
@safety_options
def serve(
    registry: Annotated[
        str | None,
        typer.Option("--registry", metavar="HOST[:PORT]", help="The registry to keep OCI-pure."),
    ] = None,
    repo: Annotated[
        list[str] | None,
        typer.Option("--repo", metavar="GLOB", help="Repository glob (repeat); default: all."),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", metavar="GLOB", help="Tag glob (repeat); default: all."),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="DEST[/PREFIX]",
            help="Mirror each pushed image into DEST/PREFIX/REPO (batch --to rules).",
        ),
    ] = None,
    check_only: Annotated[
        bool, typer.Option("--check-only", help="Report non-OCI pushes; write nothing.")
    ] = False,
    listen: Annotated[
        str, typer.Option("--listen", metavar="ADDR:PORT", help="Where to accept HTTP.")
    ] = DEFAULT_LISTEN,
    state: Annotated[
        Path,
        typer.Option("--state", metavar="DIR", help="Queue, journal and memory of own writes."),
    ] = Path(DEFAULT_STATE),
    queue: Annotated[
        str | None,
        typer.Option(
            "--queue",
            metavar="nats://HOST:PORT/STREAM",
            help="Share work with other replicas on NATS JetStream (default: SQLite in --state).",
        ),
    ] = None,
    events: Annotated[
        str | None,
        typer.Option(
            "--events", metavar="nats://…", help="Also consume push events from a NATS subject."
        ),
    ] = None,
    reconcile_every: Annotated[
        str,
        typer.Option(
            "--reconcile-every",
            metavar="DURATION",
            help="Sweep the scope on start and then this often (30m, 1h; 0: never).",
        ),
    ] = DEFAULT_RECONCILE,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", min=1, max=MAX_SERVE_CONCURRENCY, help="Items converted at once."
        ),
    ] = DEFAULT_SERVE_CONCURRENCY,
    max_attempts: Annotated[
        int,
        typer.Option("--max-attempts", min=1, max=100, help="Attempts before an item is parked."),
    ] = DEFAULT_MAX_ATTEMPTS,
    grace: Annotated[
        str,
        typer.Option(
            "--grace", metavar="DURATION", help="On SIGTERM, finish in-flight items this long."
        ),
    ] = DEFAULT_GRACE,
    log_format: Annotated[
        str, typer.Option("--log-format", metavar="text|json", help="Log lines on stderr.")
    ] = "text",
    webhook_token_file: Annotated[
        Path | None,
        typer.Option(
            "--webhook-token-file",
            metavar="FILE",
            help=f"The bearer token senders must present (or env {TOKEN_ENV}).",
        ),
    ] = None,
    insecure_no_webhook_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-webhook-auth", help="Accept events without a token (tests only)."
        ),
    ] = False,
    show_status: Annotated[
        bool, typer.Option("--status", help="Print queue depth and parked items, then exit.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="--status as one JSON document.")] = (
        False
    ),
    *,
    conn: Connection,
    options: ConvertOptions,
) -> None:
    """Keep a registry OCI-pure as images arrive: convert on push events (POST /events).

    Accepts distribution notifications, Harbor PUSH_ARTIFACT webhooks and zot's image.updated.

    Only the repository and tag are taken from an event; see docs/serve.md.
    """
    from oci_normalize.serve import service

    if show_status:
        raise typer.Exit(_status(state, queue, json_out=json_out))
    try:
        config = _config(
            registry=registry,
            repos=tuple(repo or ()),
            tags=tuple(tag or ()),
            to=to,
            check_only=check_only,
            listen=listen,
            state=state,
            queue=queue,
            events=events,
            reconcile_every=reconcile_every,
            concurrency=concurrency,
            max_attempts=max_attempts,
            grace=grace,
            log_format=log_format,
            token_file=webhook_token_file,
            no_auth=insecure_no_webhook_auth,
            options=options,
        )
        client = make_client(conn, pool_size=max(16, concurrency * 8))
    except OciNormalizeError as exc:
        say_error(f"{exc}")
        raise typer.Exit(exits.ERROR) from None
    if config.token is None:
        say_warning("--insecure-no-webhook-auth: anyone who reaches --listen can queue work")
    try:
        code = service.run_service(config, client)
    except (OciNormalizeError, OSError) as exc:
        say_error(f"serve: {exc}")
        raise typer.Exit(exits.ERROR) from None
    finally:
        client.close()
    raise typer.Exit(code)


def _config(
    *,
    registry: str | None,
    repos: tuple[str, ...],
    tags: tuple[str, ...],
    to: str | None,
    check_only: bool,
    listen: str,
    state: Path,
    queue: str | None,
    events: str | None,
    reconcile_every: str,
    concurrency: int,
    max_attempts: int,
    grace: str,
    log_format: str,
    token_file: Path | None,
    no_auth: bool,
    options: ConvertOptions,
) -> ServeConfig:
    from oci_normalize.batch.destination import Destination
    from oci_normalize.batch.targets import registry_reference
    from oci_normalize.serve import service
    from oci_normalize.serve.events import Scope, backup_pattern
    from oci_normalize.serve.logs import LOG_FORMATS
    from oci_normalize.serve.worker import Mode

    if registry is None:
        raise service.ServeError(
            "give --registry HOST[:PORT] (the registry whose pushes to act on)"
        )
    if log_format not in LOG_FORMATS:
        raise service.ServeError(f"--log-format {log_format!r}: expected text or json")
    token = _token(token_file, no_auth)
    source = registry_reference(registry).registry
    destination = None
    exclude = ""
    if to is not None:
        if check_only:
            raise service.ServeError("--check-only writes nothing; drop --to or --check-only")
        destination = Destination.parse(to)
        if options.backup_tag is not None:
            raise service.ServeError("--backup-tag applies to in-place conversion only, not --to")
        if destination.registry == source:
            if not destination.prefix:
                raise service.ServeError(
                    f"--to {to} is the source registry; give a /PREFIX, or drop --to"
                )
            exclude = destination.prefix  # never follow our own copies
    for option, url in (("--queue", queue), ("--events", events)):
        if url is not None and not url.startswith(service.NATS_SCHEME):
            raise service.ServeError(f"{option} {url!r}: expected nats://HOST:PORT/…")
    return service.ServeConfig(
        mode=Mode(registry=source, to=destination, check_only=check_only, options=options),
        scope=Scope(
            registry=source,
            repos=repos,
            tags=tags,
            require_tag=not check_only,
            exclude_prefix=exclude,
            backup_tags=backup_pattern(options.backup_tag) if options.backup_tag else None,
        ),
        listen=service.parse_listen(listen),
        state=state,
        token=token,
        queue_url=queue,
        events_url=events,
        reconcile_every=service.parse_duration(reconcile_every, "--reconcile-every"),
        concurrency=concurrency,
        max_attempts=max_attempts,
        grace=service.parse_duration(grace, "--grace"),
        log_format=log_format,
    )


def _token(path: Path | None, no_auth: bool) -> str | None:
    from oci_normalize.serve.service import ServeError
    from oci_normalize.store.localfs import open_regular, read_capped

    if path is not None:
        what = f"--webhook-token-file {path}"
        with open_regular(str(path), what) as fh:
            raw = read_capped(fh, MAX_TOKEN_FILE_BYTES, what)
        token = raw.decode("utf-8", "replace").strip()
        if not token:
            raise ServeError(f"{what}: the file is empty")
        return token
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return env
    if no_auth:
        return None
    raise ServeError(
        f"no webhook token: give --webhook-token-file FILE or set {TOKEN_ENV} "
        "(or --insecure-no-webhook-auth for a test)"
    )


def _status(state: Path, queue: str | None, *, json_out: bool) -> int:
    from oci_normalize.serve import service

    try:
        doc = service.status(state, queue)
    except (OciNormalizeError, OSError) as exc:
        say_error(f"{exc}")
        return exits.ERROR
    if json_out:
        print(json.dumps(doc, indent=2))
        return exits.OK
    parked = doc["parked"]
    print(f"queue: {doc['depth']} item(s) waiting or in progress; {len(parked)} parked")
    for p in parked:
        print(
            f"  parked {printable(p['repository'])}:{printable(p['ref'])}: {printable(p['reason'])}"
        )
    return exits.OK
