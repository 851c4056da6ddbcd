"""The command line's one exit-code table and its one error printer.

Every command answers with these codes, and every failure is one line on stderr that starts
``oci-normalize: error:`` (``warning:`` for a caution, ``internal error:`` for a bug). Only
:mod:`oci_normalize.cli` picks codes and prints; the library raises
:class:`~oci_normalize.errors.OciNormalizeError`.

====  =================================================================================
code  meaning
====  =================================================================================
0     done: everything OCI (``check``), converted / copied / nothing to do, every
      reference done (``batch``), everything restored or unchanged (``rollback``)
1     ``check`` only: Docker, mixed or schema1 media types were found. Never an error.
2     error: bad input or options, unreachable, denied, refused, broken content; for
      ``batch`` and ``rollback``: could not start, or an output could not be written
3     ``batch`` / ``rollback``: some references failed or conflicted; the rest were done;
      ``convert``: a ``--sign-with`` run failed or timed out, so the tag did not move
130   interrupted (Ctrl-C)
====  =================================================================================
"""

from __future__ import annotations

import sys
from typing import Final

from oci_normalize.text import printable

PROG: Final = "oci-normalize"

OK: Final = 0
DOCKER_FOUND: Final = 1
ERROR: Final = 2
SOME_FAILED: Final = 3
INTERRUPTED: Final = 130

#: Longest line the CLI writes to stderr (a registry's 60 KB error text is cut to this).
MAX_LINE_CHARS: Final = 4096


def say_error(message: object) -> None:
    """``oci-normalize: error: MESSAGE`` as one line on stderr."""
    _line(f"{PROG}: error: {message}")


def say_warning(message: object) -> None:
    """``oci-normalize: warning: MESSAGE`` as one line on stderr."""
    _line(f"{PROG}: warning: {message}")


def say_internal(exc: BaseException) -> None:
    """The last resort for a bug: its type and message, never a traceback."""
    _line(f"{PROG}: internal error: {type(exc).__name__}: {printable(str(exc), limit=300)}")


def say(message: str) -> None:
    """Any other line for stderr (progress, ``interrupted``), made printable."""
    _line(message)


def _line(text: str) -> None:
    print(printable(text, limit=MAX_LINE_CHARS), file=sys.stderr)
