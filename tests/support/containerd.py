"""A private ``containerd`` for tests: its own socket, root and state directory, judged by ``ctr``.

Nothing is shared with a system containerd: the daemon gets a tiny ``config.toml`` naming paths
under one temporary directory (the CRI plugin off), is started as a child of the test process
(killed with it), and is stopped when the context ends. ``pull`` fetches and unpacks an image
from a plain-HTTP registry with the ``native`` snapshotter (no overlay mounts needed).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.registry import _die_with_parent

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
CTR_TIMEOUT = 180
NAMESPACE = "oci-normalize-test"
SNAPSHOTTER = "native"


@dataclass
class Containerd:
    """A running private daemon and the ``ctr`` calls the tests need."""

    address: str
    process: subprocess.Popen[bytes]
    log: Path

    def ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "--address", self.address, "--namespace", NAMESPACE, *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=CTR_TIMEOUT,
        )

    def pull(self, ref: str) -> subprocess.CompletedProcess[str]:
        """``ctr images pull --plain-http`` (fetch every blob, then unpack the layers)."""
        return self.ctr("images", "pull", "--plain-http", "--snapshotter", SNAPSHOTTER, ref)

    def import_archive(self, path: Path) -> subprocess.CompletedProcess[str]:
        """``ctr images import`` of an OCI or docker archive, unpacked like a pull."""
        return self.ctr("images", "import", "--snapshotter", SNAPSHOTTER, str(path))

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _config(base: Path) -> str:
    return "\n".join(
        [
            "version = 2",
            f'root = "{base / "root"}"',
            f'state = "{base / "state"}"',
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
            "[grpc]",
            f'  address = "{base / "c.sock"}"',
            "[ttrpc]",
            f'  address = "{base / "c.sock.ttrpc"}"',
            "[debug]",
            '  address = ""',
            "[metrics]",
            '  address = ""',
            "",
        ]
    )


@contextlib.contextmanager
def running_containerd() -> Iterator[Containerd]:
    """Start a private containerd (the socket path must stay short: a /tmp directory)."""
    base = Path(tempfile.mkdtemp(prefix="ctrd-", dir="/tmp"))
    (base / "config.toml").write_text(_config(base))
    log = base / "containerd.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["containerd", "--config", str(base / "config.toml")],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, before exec
        )
    daemon = Containerd(address=str(base / "c.sock"), process=process, log=log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while daemon.ctr("version").returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"containerd did not start:\n{daemon.log_tail()}")
            time.sleep(0.2)
        yield daemon
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(base, ignore_errors=True)
