"""Run one contender as a child process and read what it cost, and what the registries spent.

On a small machine the registries under test share the cores with the contender: a figure
only makes sense next to what each process spent. Linux only (``/proc``, ``os.wait4``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

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
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd, env=env
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != expect:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{' '.join(args)} failed ({code}): {err[-2000:]}")
    spent = [cpu_seconds(pid) - b for pid, b in zip(watch, before, strict=True)]
    # Linux reports ru_maxrss in KiB
    return Child(elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, spent)


def require(*tools: str) -> None:
    """Exit 2 with one line unless every tool is on PATH."""
    for tool in tools:
        if shutil.which(tool) is None:
            print(f"bench needs {tool} on PATH", file=sys.stderr)
            raise SystemExit(2)
