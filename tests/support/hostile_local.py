"""Crafted local inputs (layouts, tarballs, journals) and a bounded CLI runner to feed them to.

Everything is built in the test from a few bytes: no committed fixtures. :func:`run_cli` runs
``python -m oci_normalize`` as a child under a timeout and an address-space limit, so a hang or a
runaway allocation fails the test instead of the machine; :func:`one_error_line` is the shape
every failure must have.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
REF_NAME: Final = "org.opencontainers.image.ref.name"
#: Address space a CLI child may use: the interpreter and its imports need ~300 MiB of it.
CLI_MEMORY: Final = 512 * 1024 * 1024
CLI_TIMEOUT: Final = 60.0
ROOT: Final = Path(__file__).resolve().parents[2]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _limits(memory: int, fsize: int | None) -> Callable[[], None]:
    def apply() -> None:  # pragma: no cover - runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return apply


def run_cli(
    *args: str,
    timeout: float = CLI_TIMEOUT,
    memory: int = CLI_MEMORY,
    fsize: int | None = None,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``oci-normalize ARGS`` in a child with a deadline and a memory ceiling."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "REGISTRY_"))}
    child_env["PYTHONDONTWRITEBYTECODE"] = "1"
    child_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "oci_normalize", *args],
        input=(stdin or b"").decode(),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limits(memory, fsize),  # noqa: PLW1509 - no threads in the parent's child
        cwd=ROOT,
        env=child_env,
    )


def one_error_line(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The failure's one stderr line; asserts the exit code and that nothing else was said."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("oci-normalize: "), lines
    assert lines[0].isprintable(), lines
    return lines[0]


def snapshot(path: Path) -> dict[str, tuple[str, str]]:
    """Every entry under ``path`` (symlinks not followed): kind and content hash or link target."""
    out: dict[str, tuple[str, str]] = {}
    for entry in sorted(path.rglob("*")):
        rel = str(entry.relative_to(path))
        if entry.is_symlink():
            out[rel] = ("link", os.readlink(entry))
        elif entry.is_file():
            out[rel] = ("file", hashlib.sha256(entry.read_bytes()).hexdigest())
        else:
            out[rel] = ("dir" if entry.is_dir() else "other", "")
    return out


# ---- OCI layouts holding a Docker image ----------------------------------------------------------


@dataclass(frozen=True)
class DockerLayout:
    root: Path
    manifest: bytes
    config: bytes
    layer: bytes

    def blob(self, data: bytes) -> Path:
        return self.root / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()


def docker_layout(root: Path, *, tag: str = "v1", layer: bytes = b"layer bytes") -> DockerLayout:
    """An OCI layout whose one image (tagged ``tag``) has Docker media types."""
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha256(layer)]}}).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": DOCKER_LAYER, "digest": sha256(layer), "size": len(layer)}],
        }
    ).encode()
    blobs = root / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for data in (config, layer, manifest):
        (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entry = {
        "mediaType": DOCKER_MANIFEST,
        "digest": sha256(manifest),
        "size": len(manifest),
        "annotations": {REF_NAME: tag},
    }
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
    (root / "index.json").write_text(json.dumps(index))
    return DockerLayout(root, manifest, config, layer)


# ---- tarballs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One tar entry: ``kind`` is file, dir, symlink, hardlink, fifo or chr."""

    name: str
    data: bytes = b""
    kind: str = "file"
    link: str = ""


_TYPES: Final = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "chr": tarfile.CHRTYPE,
}


def write_tar(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w") as out:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = _TYPES[m.kind]
            info.linkname = m.link
            if m.kind == "file":
                info.size = len(m.data)
                out.addfile(info, io.BytesIO(m.data))
            else:
                out.addfile(info)
    return path


def docker_members(
    *, layer: bytes, config_name: str = "cfg.json", layer_name: str = "l1/layer.tar"
) -> tuple[list[Member], dict[str, Any]]:
    """The members of a one-layer ``docker save`` tarball, and its manifest.json entry."""
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha256(layer)]}}).encode()
    entry = {"Config": config_name, "RepoTags": ["example.com/app:v1"], "Layers": [layer_name]}
    members = [
        Member(config_name, config),
        Member(layer_name, layer),
        Member("manifest.json", json.dumps([entry]).encode()),
    ]
    return members, entry


def a_layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as out:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return buf.getvalue()
