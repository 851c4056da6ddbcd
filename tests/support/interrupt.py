"""Kill a batch mid-run, as an OOM kill or a node drain would, once its journal shows progress."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def kill_after_converted(
    proc: subprocess.Popen[bytes],
    journal: Path,
    count: int,
    *,
    timeout: float,
    kill: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> bytes:
    """SIGKILL ``proc`` (or run ``kill`` on it) once ``journal`` holds ``count`` ``converted``
    lines, or when it ends or ``timeout`` passes; then reap it and return what it wrote to a
    piped stderr (the caller asserts how it died, and can show why it did not)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_bytes().count(b'"converted"') >= count:
            break
        time.sleep(0.002)
    if kill is None:
        proc.send_signal(signal.SIGKILL)
    else:
        kill(proc)
    _, err = proc.communicate(timeout=timeout)
    return err or b""
