"""Run one contender as a child process and read what it cost, and what the registries spent.

On a small machine the registries under test share the cores with the contender: a figure
only makes sense next to what each process spent. Linux only (``/proc``, ``os.wait4``).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (its threads included)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    # after "pid (comm)": state is fields[0], utime fields[11], stime fields[12]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Child:
    seconds: float  # wall time
    rss_mib: float  # peak RSS
    cpu_s: float  # the child's own user + system CPU
    #: CPU each watched process (a registry) spent meanwhile, in the order given.
    watched_cpu_s: list[float] = field(default_factory=list)


#: GNU time (Debian's ``time``). A forked child counts its parent's resident pages until it
#: execs (Linux keeps the larger high-water mark across exec), so ``ru_maxrss`` of a child that
#: the benchmark forks is at least the benchmark's own RSS: a bench that seeded 10,000 tags
#: first reported its own growth. Run through GNU time, the contender is forked by a small
#: process and ``%M`` is its own peak.
GNU_TIME = "/usr/bin/time"


@dataclass
class Spawned:
    status: int  # as os.wait4 gives it
    usage: resource.struct_rusage  # the contender's (GNU time waits for it: its usage is in)
    rss_kib: int  # the contender's own peak RSS


@contextmanager
def measured(args: list[str], **popen: Any) -> Iterator[tuple[subprocess.Popen[bytes], Spawned]]:
    """Start ``args`` under GNU time (``popen``: Popen's keywords); on leaving the block, wait
    for it and fill in the :class:`Spawned` yielded with it."""
    if not os.access(GNU_TIME, os.X_OK):
        raise SystemExit(f"bench needs GNU time at {GNU_TIME} (Debian package time)")
    with tempfile.NamedTemporaryFile(prefix="bench-rss-", suffix=".txt") as report:
        wrapped = [GNU_TIME, "-q", "-f", "%M", "-o", report.name, "--", *args]
        proc = subprocess.Popen(wrapped, **popen)
        spawned = Spawned(0, resource.getrusage(resource.RUSAGE_SELF), 0)
        try:
            yield proc, spawned
        finally:
            _, spawned.status, spawned.usage = os.wait4(proc.pid, 0)
            lines = Path(report.name).read_text().split()
            spawned.rss_kib = int(lines[-1]) if lines and lines[-1].isdigit() else 0


def run_child(
    args: list[str],
    *,
    watch: tuple[int, ...] = (),
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    expect: int = 0,
) -> Child:
    """Run ``args`` in ``cwd`` to completion (exit ``expect`` or SystemExit with its stderr) and
    measure it, and the CPU the processes ``watch`` spent meanwhile; ``env`` replaces the
    environment."""
    before = [cpu_seconds(pid) for pid in watch]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:  # a file: no pipe to fill up
        with measured(args, stdout=subprocess.DEVNULL, stderr=err, cwd=cwd, env=env) as (_, got):
            pass
        elapsed = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(got.status)
        if code != expect:
            err.seek(0)
            raise SystemExit(f"{' '.join(args)} failed ({code}): {err.read().decode()[-2000:]}")
    spent = [cpu_seconds(pid) - b for pid, b in zip(watch, before, strict=True)]
    usage = got.usage
    return Child(elapsed, got.rss_kib / 1024, usage.ru_utime + usage.ru_stime, spent)


def require(*tools: str) -> None:
    """Exit 2 with one line unless every tool is on PATH."""
    for tool in tools:
        if shutil.which(tool) is None:
            print(f"bench needs {tool} on PATH", file=sys.stderr)
            raise SystemExit(2)
