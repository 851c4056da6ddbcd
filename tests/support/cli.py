"""Running the command line in tests: in process (typer's runner) or as a user runs it.

:func:`cli` invokes the typer app in this process (fast; the tests of batch, migration and
rollback). :func:`cli_process` runs ``python -m oci_normalize`` as a child, with its own
environment and working directory, and checks its output for every registered test secret.
:func:`json_lines` reads what ``--json`` printed: one document per reference, then a summary.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

from typer.testing import CliRunner, Result

from oci_normalize.cli.app import app
from tests.support import secretguard

#: A ceiling for one command run as a child process (a hang fails instead of blocking).
PROCESS_TIMEOUT_S: Final = 300.0


def cli(*args: str, stdin: str | None = None) -> Result:
    """The typer app invoked in process with ``args``; ``stdin`` as its standard input."""
    return CliRunner().invoke(app, list(args), input=stdin)


def cli_process(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = PROCESS_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """``python -m oci_normalize ARGS`` as a child process (no stdin unless given).

    Its output is printed into the test's captured output and must hold no test secret.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "oci_normalize", *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )
    print(proc.stdout, proc.stderr, sep="\n")  # into the captured output the guard searches
    secretguard.assert_clean(proc.stdout + proc.stderr, f"output of {args[0] if args else ''}")
    return proc


def json_lines(result: Result) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """``--json`` output: the documents by reference (a registry host left off), and the last
    line, which holds the ``summary``. Each reference has exactly one line."""
    docs = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert docs and "summary" in docs[-1], result.output
    by_ref = {d["reference"].split("/", 1)[-1]: d for d in docs[:-1]}
    assert len(by_ref) == len(docs) - 1, f"a reference printed twice:\n{result.output}"
    return by_ref, docs[-1]
