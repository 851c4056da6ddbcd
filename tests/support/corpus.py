"""Images written by the peers themselves (podman, buildah, skopeo), and the peers that judge ours.

Every image starts from a tiny rootfs tar made in the test: no network. Podman and buildah share
one private containers-storage (vfs driver, root and runroot under temporary directories); the
runroot path stays short because podman caps its length. Like ``seed.py`` this module never
imports the package under test.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import seed

PEER_TIMEOUT = 180


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(args), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=PEER_TIMEOUT
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def rootfs_tar(path: Path, files: dict[str, bytes]) -> Path:
    """A plain tar of a few files (a base layer for ``podman import`` or ``buildah add``)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o755, 0
            tar.addfile(info, io.BytesIO(data))
    return path


@dataclass
class Storage:
    """A private containers-storage, driven by podman and buildah."""

    root: Path
    runroot: Path

    def _flags(self) -> list[str]:
        return ["--root", str(self.root), "--runroot", str(self.runroot), "--storage-driver", "vfs"]

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("podman", *self._flags(), *args, check=check)

    def buildah(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("buildah", *self._flags(), *args, check=check)

    # ---- writers ------------------------------------------------------------------------------

    def podman_import(self, tar: Path, name: str) -> None:
        """What ``docker import`` makes: one layer, history "ADD file:… in /", no Cmd."""
        self.podman("import", str(tar), name)

    def buildah_scratch(self, name: str, tar: Path, *, fmt: str, cmd: str = "/hello") -> None:
        """``buildah from scratch`` + ``add`` + ``config`` + ``commit --format docker|oci``."""
        ctr = self.buildah("from", "scratch").stdout.strip()
        try:
            self.buildah("add", ctr, str(tar), "/")
            self.buildah("config", "--cmd", cmd, "--env", "A=1", ctr)
            self.buildah("commit", "--format", fmt, ctr, name)
        finally:
            self.buildah("rm", ctr, check=False)

    def push(self, name: str, dest: str, fmt: str) -> None:
        """``podman push --format v2s2|oci`` to ``docker://HOST/REPO:TAG``."""
        self.podman("push", "--tls-verify=false", "--format", fmt, name, dest)

    def save(self, name: str, path: Path, fmt: str) -> None:
        """``podman save --format docker-archive|oci-archive``."""
        self.podman("save", "--format", fmt, "-o", str(path), name)

    # ---- judges -------------------------------------------------------------------------------

    def pull(self, source: str) -> subprocess.CompletedProcess[str]:
        """``podman pull`` from ``docker://``, ``oci:``, ``oci-archive:`` (not checked)."""
        return self.podman("pull", "--tls-verify=false", source, check=False)


@contextmanager
def storage() -> Iterator[Storage]:
    base = Path(tempfile.mkdtemp(prefix="cs-", dir="/tmp"))
    try:
        yield Storage(root=base / "root", runroot=base / "rr")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run("skopeo", *args, check=check)


def skopeo_copy(src: str, dest: str, *extra: str) -> None:
    skopeo(
        "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", *extra, src, dest
    )


def skopeo_inspect(source: str) -> subprocess.CompletedProcess[str]:
    """``skopeo inspect`` (as an image, not --raw): fails on what it takes for an artifact."""
    return skopeo("inspect", "--tls-verify=false", source, check=False)


def umoci_unpack(source: str, work: Path) -> subprocess.CompletedProcess[str]:
    """Copy ``source`` into a layout with skopeo, then ``umoci unpack --rootless`` it."""
    work.mkdir(parents=True, exist_ok=True)
    layout = work / "layout"
    skopeo_copy(source, f"oci:{layout}:judge")
    return run(
        "umoci", "unpack", "--rootless", "--image", f"{layout}:judge", str(work / "b"), check=False
    )


# ---- raw registry reads (not our code) -----------------------------------------------------------


def manifest_and_config(
    url: str, repo: str, ref: str
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(manifest, config, content type) of an image manifest, read with raw requests."""
    body, ctype, _ = seed.get_manifest(url, repo, ref)
    manifest = json.loads(body)
    config = json.loads(seed.get_blob(url, repo, manifest["config"]["digest"]))
    return manifest, config, ctype


def layer_digests(manifest: dict[str, Any]) -> list[str]:
    return [layer["digest"] for layer in manifest.get("layers") or []]
