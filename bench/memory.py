"""Peak memory of converting an image with a 1 GiB layer: schema1 and docker-archive sources.

Not a test: run it by hand (``python bench/memory.py [--size-mib N]``). It needs docker-registry
and skopeo on PATH and about 3x the layer size of free space under $TMPDIR.

1. A layer tar with one SIZE file is generated in streaming fashion (zeros with one random MiB in
   every 16, so gzip has real work) and gzipped; both steps are timed.
2. An OCI layout over it is pushed by skopeo as a signed schema1 image to a local registry with
   ``compatibility.schema1.enabled``, and a ``docker save``-format tarball is written next to it.
3. ``oci-normalize convert`` runs in a child process for each source, and so does skopeo doing
   the same conversion; each child's peak RSS is its own, from GNU time (:mod:`bench.child`).

skopeo's schema1 timing is flattered by its blob-info cache (it knows the layer's diff_id from
the push and skips the download oci-normalize has to do); its peak RSS is still a fair yardstick.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.child import run_child  # noqa: E402
from bench.installed import byte_compile  # noqa: E402
from tests.support.registry import start_registry  # noqa: E402

MIB = 1024 * 1024
RANDOM_EVERY = 16  # one random MiB in every 16


def make_layer_tar(path: Path, size: int) -> str:
    """A tar holding one ``size``-byte file, written in 1 MiB steps; its sha256 (the diff_id)."""
    digest = hashlib.sha256()
    info = tarfile.TarInfo("big.bin")
    info.size, info.mode, info.mtime = size, 0o644, 0
    header = info.tobuf(format=tarfile.PAX_FORMAT)
    zeros = bytes(MIB)
    with path.open("wb") as out:

        def write(data: bytes) -> None:
            digest.update(data)
            out.write(data)

        write(header)
        written = 0
        step = 0
        while written < size:
            n = min(MIB, size - written)
            write(os.urandom(n) if step % RANDOM_EVERY == 0 else zeros[:n])
            written += n
            step += 1
        write(bytes(-size % 512) + bytes(1024))  # pad the member, then the end-of-archive
    return "sha256:" + digest.hexdigest()


def gzip_file(src: Path, dest: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    comp = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    size = 0
    with src.open("rb") as fin, dest.open("wb") as out:
        while chunk := fin.read(MIB):
            data = comp.compress(chunk)
            digest.update(data)
            out.write(data)
            size += len(data)
        data = comp.flush()
        digest.update(data)
        out.write(data)
        size += len(data)
    return "sha256:" + digest.hexdigest(), size


def put_blob(layout: Path, data: bytes) -> dict[str, object]:
    hexd = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / hexd).write_bytes(data)
    return {"digest": f"sha256:{hexd}", "size": len(data)}


def make_layout(layout: Path, gz: Path, gz_digest: str, gz_size: int, diff_id: str) -> bytes:
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    os.link(gz, layout / "blobs" / "sha256" / gz_digest.split(":")[1])
    config = json.dumps(
        {
            "created": "2024-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "bench"}],
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **put_blob(layout, config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": gz_digest,
                "size": gz_size,
            }
        ],
    }
    desc = put_blob(layout, json.dumps(manifest).encode())
    entry = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **desc,
        "annotations": {"org.opencontainers.image.ref.name": "latest"},
    }
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return config


def make_docker_archive(path: Path, config: bytes, layer_tar: Path) -> None:
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps(
        [{"Config": config_name, "RepoTags": ["bench/app:v1"], "Layers": ["layer/layer.tar"]}]
    ).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in ((config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        with layer_tar.open("rb") as fh:
            tar.addfile(tar.gettarinfo(str(layer_tar), arcname="layer/layer.tar"), fh)


def measure(args: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one child process."""
    child = run_child(args)
    return child.seconds, child.rss_mib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="layer file size (MiB)")
    opts = parser.parse_args()
    byte_compile()
    size = opts.size_mib * MIB
    ours = [sys.executable, "-m", "oci_normalize", "convert"]
    skopeo = ["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false"]
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmpdir:
        tmp = Path(tmpdir)
        t0 = time.monotonic()
        diff_id = make_layer_tar(tmp / "layer.tar", size)
        t1 = time.monotonic()
        gz_digest, gz_size = gzip_file(tmp / "layer.tar", tmp / "layer.tar.gz")
        t2 = time.monotonic()
        print(f"layer: {opts.size_mib} MiB tar written in {t1 - t0:.1f} s, "
              f"gzipped to {gz_size / MIB:.1f} MiB in {t2 - t1:.1f} s")  # fmt: skip
        config = make_layout(tmp / "layout", tmp / "layer.tar.gz", gz_digest, gz_size, diff_id)
        make_docker_archive(tmp / "saved.tar", config, tmp / "layer.tar")
        (tmp / "layer.tar").unlink()
        reg = start_registry(tmp / "registry", schema1=True)
        # skopeo's blob-info cache remembers which compressed blob holds our layer and where:
        # the archive runs go to a second registry, so skopeo has to read and compress it too.
        reg2 = start_registry(tmp / "registry2")
        try:
            host, host2 = reg.host, reg2.host
            subprocess.run(
                [*skopeo, "--format", "v2s1", f"oci:{tmp / 'layout'}:latest",
                 f"docker://{host}/bench/s1:v1"],
                check=True,
            )  # fmt: skip
            archive = f"docker-archive:{tmp / 'saved.tar'}"
            runs = [
                ("schema1 -> OCI", ours + [f"{host}/bench/s1:v1", f"{host}/bench/ours-s1:v1"],
                 [*skopeo, "--format", "oci", f"docker://{host}/bench/s1:v1",
                  f"docker://{host}/bench/skopeo-s1:v1"]),
                ("docker-archive -> OCI", ours + [archive, f"{host2}/bench/ours-arch:v1"],
                 [*skopeo, "--format", "oci", archive, f"docker://{host2}/bench/skopeo-arch:v1"]),
            ]  # fmt: skip
            print(f"{'source':<24}{'oci-normalize':>22}{'skopeo':>22}{'RSS ratio':>11}")
            for name, mine, theirs in runs:
                s_ours, rss_ours = measure(mine)
                s_theirs, rss_theirs = measure(theirs)
                print(
                    f"{name:<24}{rss_ours:>9.1f} MiB {s_ours:>7.1f} s"
                    f"{rss_theirs:>9.1f} MiB {s_theirs:>7.1f} s{rss_ours / rss_theirs:>10.2f}x"
                )
        finally:
            reg.stop()
            reg2.stop()


if __name__ == "__main__":
    main()
