"""Build the project's own image with ``image/build.sh`` and run it with buildah, for tests.

``podman run`` cannot set rlimits inside the sandbox these tests run in, so containers run with
``buildah run --isolation chroot``: the image's root filesystem under chroot, no namespaces, no
OCI runtime. That needs root, and it shares the host's network, so a registry on a loopback port
is reachable from inside. Every store lives in a private ``--root`` under the test's temp dir,
never in the machine's own containers-storage. Like ``tests/support/seed.py``, this never imports the
package under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.registry import in_ci, require_tools

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "image" / "build.sh"
BUILD_TOOLS = ("buildah", "mmdebstrap", "mmtarfilter", "jq")
BUILD_TIMEOUT = 900.0
BUILDAH_TIMEOUT = 300.0
#: A fixed epoch, so that two builds of one commit can be compared.
SOURCE_DATE_EPOCH = "1767225600"  # 2026-01-01T00:00:00Z


def require_image_tools() -> None:
    """Skip (fail under CI=true) without the build tools or without root (chroot, mmdebstrap)."""
    require_tools(*BUILD_TOOLS)
    if os.geteuid() != 0:
        reason = "building and running the image needs root (mmdebstrap, buildah chroot)"
        if in_ci():
            pytest.fail(f"{reason}; CI=true never skips registry tests", pytrace=False)
        pytest.skip(reason)


def revision() -> str:
    """The commit the image is labelled with: HEAD, or a stand-in outside a git checkout."""
    proc = (
        subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        if shutil.which("git")
        else None
    )
    return proc.stdout.strip() if proc and proc.returncode == 0 else "unknown"


def project_version() -> str:
    for line in (REPO_ROOT / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise RuntimeError("no version in pyproject.toml")


@dataclass(frozen=True)
class Buildah:
    """buildah with a private store (vfs: works everywhere, no overlay mounts needed)."""

    root: Path

    def args(self, *args: str) -> list[str]:
        return [
            "buildah",
            "--storage-driver",
            "vfs",
            "--root",
            str(self.root / "root"),
            "--runroot",
            str(self.root / "run"),
            *args,
        ]

    def __call__(self, *args: str, timeout: float = BUILDAH_TIMEOUT) -> str:
        proc = subprocess.run(
            self.args(*args),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"buildah {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
            )
        return proc.stdout

    def run_args(
        self, container: str, command: Sequence[str], *, volumes: dict[Path, str]
    ) -> list[str]:
        """``buildah run --isolation chroot`` (see the module docstring for why not podman)."""
        mounts = [arg for host, inside in volumes.items() for arg in ("-v", f"{host}:{inside}")]
        return self.args("run", "--isolation", "chroot", *mounts, container, "--", *command)

    def destroy(self) -> None:
        """Remove every container and image of the store, then the store itself."""
        for args in (("rm", "--all"), ("rmi", "--all", "--force")):
            subprocess.run(self.args(*args), capture_output=True, timeout=BUILDAH_TIMEOUT)
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class BuiltImage:
    buildah: Buildah
    name: str  # in the private store: oci-normalize:VERSION
    layout: Path  # OCI layout, tag = version
    version: str
    config_digest: str
    output: str  # what build.sh printed

    def destroy(self) -> None:
        """Remove the store, the layout, the wheels and the base tarball."""
        self.buildah.destroy()
        shutil.rmtree(self.layout.parent, ignore_errors=True)


def build_image(work: Path) -> BuiltImage:
    """Run ``image/build.sh`` into ``work`` (store, layout, wheels) and return what it built."""
    version = project_version()
    buildah = Buildah(work / "store")
    out = work / "out"
    env = {
        **os.environ,
        "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH,
        "REVISION": revision(),
        "BUILDAH_ROOT": str(buildah.root),
        "OUT": str(out),
        "WHEEL_PYTHON": sys.executable,
    }
    proc = subprocess.run(
        [str(BUILD_SCRIPT)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=REPO_ROOT,
        timeout=BUILD_TIMEOUT,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-40:])
        raise RuntimeError(f"image/build.sh failed ({proc.returncode}):\n{tail}")
    return BuiltImage(
        buildah=buildah,
        name=f"oci-normalize:{version}",
        layout=out / "oci",
        version=version,
        config_digest=(out / "config-digest").read_text().strip(),
        output=proc.stdout,
    )


def layout_manifest(layout: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(manifest, config) of the one image in an OCI layout, read by hand."""
    index = json.loads((layout / "index.json").read_bytes())
    (entry,) = index["manifests"]
    manifest = json.loads(_blob(layout, entry["digest"]))
    return manifest, json.loads(_blob(layout, manifest["config"]["digest"]))


def _blob(layout: Path, digest: str) -> bytes:
    algorithm, hexpart = digest.split(":", 1)
    return (layout / "blobs" / algorithm / hexpart).read_bytes()


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children first found, grandchildren after)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a ``buildah run`` and everything under it (the tool runs in a grandchild)."""
    for pid in [*descendants(proc.pid), proc.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
