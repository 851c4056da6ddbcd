"""The last line of defence around the typer app: one line on stderr and a true exit code.

A usage error is one line and 2 (click's own code may be 1 for some); Ctrl-C is 130; a closed
stdout is 2; any exception nothing else caught (a bug, MemoryError, RecursionError) is one
``PROG: internal error: TYPE: MESSAGE`` line and 2, never a traceback and never the 1 that
``check`` reserves for "Docker types found".
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Final

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError  # typer's own click

from oci_normalize.cli.options import err
from oci_normalize.text import printable

EXIT_OK: Final = 0
EXIT_ERROR: Final = 2
EXIT_INTERRUPTED: Final = 130


def run_guarded(app: typer.Typer, args: list[str] | None, *, prog: str) -> int:
    """Run ``app`` on ``args`` without letting anything out but an exit code."""
    try:
        code = app(args=args, prog_name=prog, standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        return EXIT_ERROR
    except ClickException as exc:  # a usage error: one line, whatever click's own code says
        ctx = getattr(exc, "ctx", None)
        hint = f" (see {ctx.command_path if ctx else prog} --help)"
        err(f"{prog}: error: {exc.format_message()}{hint}")
        return EXIT_ERROR
    except typer.Abort as exc:
        interrupted = isinstance(exc.__cause__, KeyboardInterrupt)
        err(f"{prog}: {'interrupted' if interrupted else 'error: aborted'}")
        return EXIT_INTERRUPTED if interrupted else EXIT_ERROR
    except KeyboardInterrupt:
        err(f"{prog}: interrupted")
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # typer exits by itself only when stdout is a closed pipe
        context = exc.__context__
        if isinstance(context, OSError) and context.errno == errno.EPIPE:
            _silence_stdout()
            err(f"{prog}: error: output closed early (broken pipe)")
            return EXIT_ERROR
        if exc.code is None or exc.code == 0:
            return EXIT_OK
        return exc.code if isinstance(exc.code, int) and exc.code != 1 else EXIT_ERROR
    except BrokenPipeError:
        _silence_stdout()
        err(f"{prog}: error: output closed early (broken pipe)")
        return EXIT_ERROR
    except MemoryError:
        err(f"{prog}: internal error: MemoryError: out of memory")
        return EXIT_ERROR
    except BaseException as exc:  # noqa: BLE001 - the last resort: never a traceback
        err(f"{prog}: internal error: {type(exc).__name__}: {printable(str(exc), limit=300)}")
        return EXIT_ERROR
    if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into this code, silently
        err(f"{prog}: interrupted")
    return code if isinstance(code, int) else EXIT_OK


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
