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

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError  # typer's own click

from oci_normalize.cli import exits


def run_guarded(app: typer.Typer, args: list[str] | None) -> int:
    """Run ``app`` on ``args`` without letting anything out but an exit code."""
    try:
        code = app(args=args, prog_name=exits.PROG, standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        return exits.ERROR
    except ClickException as exc:  # a usage error: one line, whatever click's own code says
        ctx = getattr(exc, "ctx", None)
        hint = f" (see {ctx.command_path if ctx else exits.PROG} --help)"
        exits.say_error(f"{exc.format_message()}{hint}")
        return exits.ERROR
    except typer.Abort as exc:
        interrupted = isinstance(exc.__cause__, KeyboardInterrupt)
        if interrupted:
            exits.say(f"{exits.PROG}: interrupted")
        else:
            exits.say_error("aborted")
        return exits.INTERRUPTED if interrupted else exits.ERROR
    except KeyboardInterrupt:
        exits.say(f"{exits.PROG}: interrupted")
        return exits.INTERRUPTED
    except SystemExit as exc:  # typer exits by itself only when stdout is a closed pipe
        context = exc.__context__
        if isinstance(context, OSError) and context.errno == errno.EPIPE:
            _silence_stdout()
            exits.say_error("output closed early (broken pipe)")
            return exits.ERROR
        if exc.code is None or exc.code == 0:
            return exits.OK
        return exc.code if isinstance(exc.code, int) and exc.code != 1 else exits.ERROR
    except BrokenPipeError:
        _silence_stdout()
        exits.say_error("output closed early (broken pipe)")
        return exits.ERROR
    except MemoryError:
        exits.say_internal(MemoryError("out of memory"))
        return exits.ERROR
    except BaseException as exc:  # noqa: BLE001 - the last resort: never a traceback
        exits.say_internal(exc)
        return exits.ERROR
    if code == exits.INTERRUPTED:  # typer turns Ctrl-C into this code, silently
        exits.say(f"{exits.PROG}: interrupted")
    return code if isinstance(code, int) else exits.OK


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
