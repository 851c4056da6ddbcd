"""A real ``nats-server`` (Debian package) with JetStream on a free loopback port, for tests.

Debian installs the binary as /usr/sbin/nats-server, which a non-root PATH often lacks: it is
looked up on PATH first, then there. Missing, the test skips, except under CI=true, where it
fails. This module does not import the package under test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.registry import free_port, in_ci

NATS_BIN = "nats-server"
DEBIAN_NATS_BIN = Path("/usr/sbin/nats-server")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
PORT_ATTEMPTS = 3
READY_LINE = "Server is ready"
LOG_TAIL_LINES = 30


def nats_server_binary() -> str | None:
    found = shutil.which(NATS_BIN)
    if found:
        return found
    if DEBIAN_NATS_BIN.is_file() and os.access(DEBIAN_NATS_BIN, os.X_OK):
        return str(DEBIAN_NATS_BIN)
    return None


def require_nats_server() -> str:
    """The nats-server binary; skip without it, but fail under CI=true."""
    binary = nats_server_binary()
    if binary is not None:
        return binary
    reason = "NATS tests need nats-server (apt-get install nats-server)"
    if in_ci():
        pytest.fail(f"{reason}; CI=true never skips them", pytrace=False)
    pytest.skip(reason)


@dataclass
class RunningNats:
    port: int
    store_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def start_nats(
    workdir: Path, *, again: RunningNats | None = None, jetstream: bool = True
) -> RunningNats:
    """``nats-server -js -sd DIR -a 127.0.0.1 -p PORT``, returned once it says it is ready.

    ``again``: a stopped server to start anew on its port and JetStream store (a restart).
    ``jetstream=False``: plain NATS, as a registry's event bus may be.
    """
    binary = require_nats_server()
    workdir.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for attempt in range(1 if again else PORT_ATTEMPTS):
        port = again.port if again else free_port()
        store = again.store_dir if again else workdir / f"jetstream-{attempt}"
        log_path = workdir / f"nats-{attempt}{'-again' if again else ''}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    binary,
                    *(["-js", "-sd", str(store)] if jetstream else []),
                    *("-a", "127.0.0.1", "-p", str(port)),
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        server = RunningNats(port=port, store_dir=store, log_path=log_path, process=process)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if READY_LINE in log_path.read_text(errors="replace") and _accepts(port):
                return server
            time.sleep(0.05)
        last_error = server.log_tail()
        server.stop()
    raise RuntimeError(f"nats-server did not start:\n{last_error}")


@contextlib.contextmanager
def running_nats(workdir: Path) -> Iterator[RunningNats]:
    server = start_nats(workdir)
    try:
        yield server
    finally:
        server.stop()
