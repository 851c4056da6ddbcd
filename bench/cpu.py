"""CPU seconds of running processes, to show where a benchmark's time goes.

On a small machine the registries under test share the cores with the contender: a figure
only makes sense next to what each process spent. Linux only (``/proc``).
"""

from __future__ import annotations

import os


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (its threads included)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    # after "pid (comm)": state is fields[0], utime fields[11], stime fields[12]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
