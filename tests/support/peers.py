"""Peers that judge our output (skopeo, umoci) and hand-made inputs for issue 6's sources.

Like ``tests/support/seed.py`` this never imports the package under test.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def run(*args: str) -> str:
    proc = subprocess.run(
        list(args), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def skopeo_copy(src: str, dest: str, *extra: str) -> None:
    run(
        "skopeo",
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        *extra,
        src,
        dest,
    )


def layout_with_history(tmp: Path, name: str = "hist") -> Path:
    """umoci image: layer, ENV (empty), layer with a subdir and a symlink, CMD (empty)."""
    layout = tmp / name
    image = f"{layout}:latest"
    run("umoci", "init", "--layout", str(layout))
    run("umoci", "new", "--image", image)
    src = tmp / f"{name}-src"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "greeting").write_text("hello\n")
    run("umoci", "insert", "--image", image, str(src / "etc"), "/etc")
    run("umoci", "config", "--image", image, "--config.env", "A=1")
    (src / "app").mkdir()
    (src / "app" / "run.sh").write_text("#!/bin/sh\necho app\n")
    os.chmod(src / "app" / "run.sh", 0o755)
    os.symlink("run.sh", src / "app" / "start")
    run("umoci", "insert", "--image", image, str(src / "app"), "/app")
    run(
        "umoci",
        "config",
        "--image",
        image,
        "--config.cmd",
        "/app/start",
        "--os",
        "linux",
        "--architecture",
        "amd64",
    )
    run("umoci", "gc", "--layout", str(layout))
    return layout


def read_layout(layout: Path, tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(manifest, config) of a tagged image in an OCI layout, read by hand."""
    index = json.loads((layout / "index.json").read_bytes())
    (entry,) = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) == tag]
    manifest = json.loads(blob(layout, entry["digest"]))
    return manifest, json.loads(blob(layout, manifest["config"]["digest"]))


def blob(layout: Path, digest: str) -> bytes:
    algorithm, hexpart = digest.split(":", 1)
    return (layout / "blobs" / algorithm / hexpart).read_bytes()


def unpacked_tree(layout: Path, tag: str, bundle: Path) -> dict[str, tuple[str, str]]:
    """umoci-unpack the image; {path: (kind+mode, content or link target)} of its rootfs."""
    run("umoci", "unpack", "--rootless", "--image", f"{layout}:{tag}", str(bundle))
    rootfs = bundle / "rootfs"
    out: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(rootfs))
            st = path.lstat()
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = (f"dir {oct(st.st_mode & 0o7777)}", "")
            else:
                mode = oct(st.st_mode & 0o7777)
                out[rel] = (f"file {mode}", hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def schema_validator(name: str) -> Any:
    """A format-checking validator for one OCI spec schema file (found as tests/oci_schema says)."""
    from jsonschema import Draft4Validator

    from tests.support.oci_schema import _registry, schema_dir

    base = schema_dir()
    assert base is not None, "OCI schemas not found (set OCI_SCHEMA_DIR)"
    schema = json.loads((base / name).read_text())
    return Draft4Validator(
        schema, registry=_registry(), format_checker=Draft4Validator.FORMAT_CHECKER
    )


# ---- docker save tarballs, made by hand ---------------------------------------------------


def layer_tar(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


def docker_save_tarball(
    path: Path,
    layers: list[bytes],
    *,
    gzip_layers: tuple[int, ...] = (),
    repo_tag: str = "example.com/app:v1",
    diff_ids: list[str] | None = None,
) -> bytes:
    """A ``docker save``-format tarball (legacy layout: ID/layer.tar); the config bytes."""
    ids = diff_ids or ["sha256:" + hashlib.sha256(tar).hexdigest() for tar in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": ids},
            "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
        },
        indent=2,
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    members: list[tuple[str, bytes]] = [(config_name, config)]
    names = []
    for i, tar in enumerate(layers):
        name = f"{hashlib.sha256(str(i).encode()).hexdigest()}/layer.tar"
        data = gzip.compress(tar, mtime=0) if i in gzip_layers else tar
        members.append((name, data))
        names.append(name)
    manifest = [{"Config": config_name, "RepoTags": [repo_tag], "Layers": names}]
    members.append(("manifest.json", json.dumps(manifest).encode()))
    with tarfile.open(path, mode="w") as out:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return config
