"""Option groups shared by several commands, declared once.

Typer has no parameter groups, so :func:`connection_options` and :func:`safety_options` add
their options to a command's signature and hand the command one frozen value instead
(:class:`Connection`, :class:`~oci_normalize.options.ConvertOptions`). ``--help`` and parsing
are exactly as if each command had spelled the options out.

Declaring the options loads no HTTP, convert or API module (``--version`` and ``--help`` need
none): those are imported by the code that runs a command.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar

import typer

from oci_normalize.cli.exits import say_warning
from oci_normalize.errors import CredentialError, InvalidReferenceError
from oci_normalize.limits import (
    CONNECT_TIMEOUT_S,
    DEFAULT_BLOB_CONCURRENCY,
    MAX_BLOB_CONCURRENCY,
    READ_TIMEOUT_S,
)
from oci_normalize.options import (
    DEFAULT_SIGN_TIMEOUT_S,
    MAX_ATTEMPTS,
    MAX_RETRY_TIME_S,
    ConvertOptions,
    RetryPolicy,
)

if TYPE_CHECKING:
    from oci_normalize.api import Client

F = TypeVar("F", bound=Callable[..., Any])

#: Longest time any seconds option accepts (a day): beyond it a number is a typo or ``inf``.
MAX_SECONDS: Final = 24 * 3600.0


def _seconds(minimum: float, *, inclusive: bool) -> Callable[[float], float]:
    """A parse-time check for a seconds option: finite, above ``minimum``, at most a day."""

    def check(value: float) -> float:
        low = value >= minimum if inclusive else value > minimum
        if not (math.isfinite(value) and low and value <= MAX_SECONDS):
            bound = f"{'at least' if inclusive else 'more than'} {minimum:g}"
            raise typer.BadParameter(
                f"{value!r} is not a number of seconds {bound} and at most {MAX_SECONDS:g}"
            )
        return value

    return check


def _backup_template(value: str | None) -> str | None:
    """``--backup-tag`` checked before anything runs (the template, not yet a given tag)."""
    if value is None:
        return None
    from oci_normalize.convert.planner import render_backup_tag

    problems = []
    for sample in ("0", "1"):  # two tags: a constant template equals at most one of them
        try:
            render_backup_tag(value, sample)
        except InvalidReferenceError as exc:
            problems.append(str(exc))
    if len(problems) == 2:
        raise typer.BadParameter(problems[0].removeprefix("--backup-tag "))
    return value


def _sign_command(value: str | None) -> str | None:
    """``--sign-with`` split before anything runs: one clear error for bad quoting."""
    if value is None:
        return None
    from oci_normalize.convert.hooks import SignHook
    from oci_normalize.errors import HookError

    try:
        SignHook.parse(value)
    except HookError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--sign-with: ")) from None
    return value


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]


@dataclass(frozen=True, kw_only=True)
class Connection:
    """How to reach registries: the options every command takes."""

    plain_http: Annotated[
        bool, typer.Option("--plain-http", help="Speak plain HTTP to non-loopback registries.")
    ] = False
    insecure: Annotated[bool, typer.Option("--insecure", help="Skip TLS certificate checks.")] = (
        False
    )
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            callback=_seconds(0.1, inclusive=True),
            help=(
                "Seconds to wait for each read and for a whole answer "
                "(blob transfers get more, by size)."
            ),
        ),
    ] = READ_TIMEOUT_S
    connect_timeout: Annotated[
        float,
        typer.Option(
            "--connect-timeout",
            callback=_seconds(0.1, inclusive=True),
            help="Connect timeout per request, seconds.",
        ),
    ] = CONNECT_TIMEOUT_S
    username: Annotated[
        str | None,
        typer.Option(
            "--username",
            "-u",
            help="Registry user name; the password is read from stdin (--password-stdin).",
        ),
    ] = None
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password for --username from stdin."),
    ] = False
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            exists=True,
            dir_okay=False,
            help="PEM bundle of the CA(s) that signed the registry's certificate.",
        ),
    ] = None
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            min=0,
            max=20,
            help="Retries of a request after 429, 502-504 or a dropped connection.",
        ),
    ] = MAX_ATTEMPTS - 1
    retry_max_time: Annotated[
        float,
        typer.Option(
            "--retry-max-time",
            callback=_seconds(0, inclusive=True),
            help="No retry starts later than this, seconds.",
        ),
    ] = MAX_RETRY_TIME_S


@dataclass(frozen=True, kw_only=True)
class _Safety:
    """The in-place safety options of ``convert`` and ``batch`` (see ConvertOptions)."""

    force: Annotated[
        bool, typer.Option("--force", help="Move the tag even if it changed since it was read.")
    ] = False
    backup_tag: Annotated[
        str | None,
        typer.Option(
            "--backup-tag",
            metavar="TEMPLATE",
            callback=_backup_template,
            help="First tag the original manifest here, e.g. '{tag}-docker' (in place only).",
        ),
    ] = None
    break_signatures: Annotated[
        bool,
        typer.Option(
            "--break-signatures",
            help="Convert even though signatures name a digest that changes (left behind).",
        ),
    ] = False
    sign_with: Annotated[
        str | None,
        typer.Option(
            "--sign-with",
            metavar="'COMMAND ARGS…'",
            callback=_sign_command,
            help=(
                "Re-sign each new digest whose old digest was signed, before the tag moves: "
                "split like a shell (never run by one), {ref} becomes HOST/REPO@sha256:NEW."
            ),
        ),
    ] = None
    sign_timeout: Annotated[
        float,
        typer.Option(
            "--sign-timeout",
            callback=_seconds(0, inclusive=False),
            help="Seconds one --sign-with run may take; past it the tag does not move.",
        ),
    ] = DEFAULT_SIGN_TIMEOUT_S
    no_referrers: Annotated[
        bool,
        typer.Option(
            "--no-referrers", help="Do not re-attach SBOMs/attestations to the new digest."
        ),
    ] = False
    blob_concurrency: Annotated[
        int,
        typer.Option(
            "--blob-concurrency",
            min=1,
            max=MAX_BLOB_CONCURRENCY,
            help="Blobs streamed at once per image when copying to another repository.",
        ),
    ] = DEFAULT_BLOB_CONCURRENCY

    def convert_options(self) -> ConvertOptions:
        return ConvertOptions(
            force=self.force,
            backup_tag=self.backup_tag,
            break_signatures=self.break_signatures,
            referrers=not self.no_referrers,
            sign_with=self.sign_with,
            sign_timeout=self.sign_timeout,
            blob_concurrency=self.blob_concurrency,
        )


_group_parameters_seen: dict[str, tuple[inspect.Parameter, ...]] = {}


def _group_parameters(cls: type[Any]) -> tuple[inspect.Parameter, ...]:
    """``cls``'s fields as keyword-only parameters, their annotations evaluated once per group
    (each evaluation builds every option anew, and several commands share a group)."""
    key = f"{cls.__module__}.{cls.__qualname__}"
    if key not in _group_parameters_seen:
        hints = inspect.get_annotations(cls, eval_str=True)
        _group_parameters_seen[key] = tuple(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name]
            )
            for f in fields(cls)
        )
    return _group_parameters_seen[key]


def _group(cls: type[Any], kwarg: str, build: Callable[[Any], Any]) -> Callable[[F], F]:
    """Add ``cls``'s fields to a command as options; pass ``build(cls(...))`` as ``kwarg``."""
    extra = list(_group_parameters(cls))
    names = [p.name for p in extra]

    def decorate(func: F) -> F:
        # Every annotation is resolved but the group's own (``options: ConvertOptions``), whose
        # type the command module imports for mypy only: typer never sees that parameter.
        unresolved = inspect.signature(func).parameters[kwarg].annotation
        placeholder = {unresolved: None} if isinstance(unresolved, str) else None
        sig = inspect.signature(func, eval_str=True, locals=placeholder)
        own = [p for p in sig.parameters.values() if p.name != kwarg]

        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            group = cls(**{n: kwargs.pop(n) for n in names})
            return func(*args, **{kwarg: build(group)}, **kwargs)

        public = sig.replace(parameters=own + extra)
        command.__signature__ = public  # type: ignore[attr-defined]
        # typer reads the annotations too: the resolved ones, without the group's parameter.
        command.__annotations__ = {p.name: p.annotation for p in public.parameters.values()}
        if public.return_annotation is not inspect.Signature.empty:
            command.__annotations__["return"] = public.return_annotation
        return command  # type: ignore[return-value]

    return decorate


def connection_options(func: F) -> F:
    """Give a command the connection options, as ``conn: Connection``."""
    return _group(Connection, "conn", lambda c: c)(func)


def safety_options(func: F) -> F:
    """Give a command the in-place safety options, as ``options: ConvertOptions``."""
    return _group(_Safety, "options", lambda s: s.convert_options())(func)


_warned_insecure = False


def make_client(conn: Connection, *, pool_size: int = 16) -> Client:
    """The client a command uses; raises CredentialError for unusable credential flags."""
    from oci_normalize.api import Client
    from oci_normalize.http import credentials
    from oci_normalize.options import ClientOptions

    global _warned_insecure
    _log_warnings()
    if conn.insecure and not _warned_insecure:
        _warned_insecure = True
        say_warning("--insecure: TLS certificates are not verified")
    password = None
    if conn.password_stdin:
        if not conn.username:
            raise CredentialError("--password-stdin needs --username")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CredentialError("--password-stdin: nothing was read from stdin")
    elif conn.username:
        raise CredentialError(
            "--username needs --password-stdin (passwords are never taken as arguments)"
        )
    options = ClientOptions(
        plain_http=conn.plain_http,
        insecure=conn.insecure,
        ca_file=str(conn.ca_file) if conn.ca_file else None,
        connect_timeout=conn.connect_timeout,
        read_timeout=conn.timeout,
        retry=RetryPolicy(attempts=conn.retries + 1, total_s=conn.retry_max_time),
    )
    return Client(
        options=options,
        credentials=credentials.lookup(username=conn.username, password=password),
        pool_size=pool_size,
    )


def _log_warnings() -> None:
    """Library warnings (a missing credential helper …) go to stderr as one line each."""
    logger = logging.getLogger("oci_normalize")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("oci-normalize: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
