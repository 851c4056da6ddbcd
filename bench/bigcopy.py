#!/usr/bin/env python3
"""Copy one big image registry → fresh registry: oci-normalize against skopeo, side by side.

    .venv/bin/python bench/bigcopy.py [--layers 4] [--layer-mib 64] [--rounds 3]

A Docker v2s2 image with LAYERS gzip layers of LAYER_MIB random MiB each is pushed to a source
registry once; every round then starts a fresh, empty destination registry for each contender
and times ``oci-normalize convert SRC DEST`` and ``skopeo copy --format oci SRC DEST`` as child
processes (wall time and peak RSS from ``os.wait4``), alternating which goes first. It prints
medians and ratios, not verdicts: no timing is a test.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.child import require, run_child  # noqa: E402
from bench.installed import byte_compile  # noqa: E402
from tests.support import seed  # noqa: E402
from tests.support.registry import start_registry  # noqa: E402

MIB = 1024 * 1024
HTTP_TIMEOUT = 120


@dataclass
class Sample:
    seconds: float
    rss_mib: float
    cpu_s: float = 0.0  # the contender's own CPU
    regs_cpu_s: float = 0.0  # both registries' CPU meanwhile


def gzip_layer(size: int, key: int) -> tuple[bytes, str]:
    """A gzip tar of one ``size``-byte random file (stored deflate: quick to make, and the
    blob is as big as its content); its diff_id."""
    data = os.urandom(size)
    info = tarfile.TarInfo(f"blob-{key}.bin")
    info.size, info.mode, info.mtime = size, 0o644, 0
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    comp = zlib.compressobj(0, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    blob = comp.compress(tar_bytes) + comp.flush()
    return blob, "sha256:" + hashlib.sha256(tar_bytes).hexdigest()


def push_blob(url: str, repo: str, data: bytes) -> None:
    start = requests.post(f"{url}/v2/{repo}/blobs/uploads/", timeout=HTTP_TIMEOUT)
    start.raise_for_status()
    location = start.headers["Location"]
    location = url + location if location.startswith("/") else location
    done = requests.put(
        location,
        params={"digest": seed.sha256_digest(data)},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=HTTP_TIMEOUT,
    )
    done.raise_for_status()


def seed_image(url: str, layers: int, layer_mib: int) -> None:
    """The big Docker v2s2 image at ``big/app:v1``."""
    descs, diff_ids = [], []
    for i in range(layers):
        blob, diff_id = gzip_layer(layer_mib * MIB, i)
        push_blob(url, "big/app", blob)
        descs.append(seed.descriptor(seed.DOCKER_LAYER_GZIP, blob))
        diff_ids.append(diff_id)
    config = seed.make_config(diff_ids)
    push_blob(url, "big/app", config)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": seed.DOCKER_MANIFEST,
            "config": seed.descriptor(seed.DOCKER_CONFIG, config),
            "layers": descs,
        }
    ).encode()
    seed.put_manifest(url, "big/app", "v1", body, seed.DOCKER_MANIFEST)


def measure(args: list[str], registry_pids: tuple[int, ...]) -> Sample:
    child = run_child(args, watch=registry_pids)
    return Sample(child.seconds, child.rss_mib, child.cpu_s, sum(child.watched_cpu_s))


def ours(src: str, dest: str) -> list[str]:
    return [sys.executable, "-m", "oci_normalize", "convert", src, dest]


def skopeo(src: str, dest: str) -> list[str]:
    return ["skopeo", "copy", "--quiet", "--format", "oci", "--src-tls-verify=false"] + [
        "--dest-tls-verify=false",
        f"docker://{src}",
        f"docker://{dest}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--layer-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed-into", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    byte_compile()
    if args.seed_into:  # in a child, so the bench's own RSS never counts for the contenders
        seed_image(args.seed_into, args.layers, args.layer_mib)
        return 0
    require("docker-registry", "skopeo")
    work = Path(tempfile.mkdtemp(prefix="oci-normalize-bench-copy-"))
    source = start_registry(work / "src")
    try:
        t = time.perf_counter()
        seeding = [sys.executable, __file__, "--seed-into", source.url]
        seeding += ["--layers", str(args.layers), "--layer-mib", str(args.layer_mib)]
        subprocess.run(seeding, check=True, timeout=600)
        src = f"{source.host}/big/app:v1"
        print(
            f"big-layer copy: {args.layers} x {args.layer_mib} MiB layers, registry -> fresh "
            f"registry; seeded in {time.perf_counter() - t:.1f} s; median of {args.rounds} rounds"
        )
        samples: dict[str, list[Sample]] = {"oci-normalize convert": [], "skopeo copy": []}
        for r in range(args.rounds):
            order = [("oci-normalize convert", ours), ("skopeo copy", skopeo)]
            for name, command in order if r % 2 == 0 else order[::-1]:
                dest_reg = start_registry(work / f"dest-{r}-{name.split()[0]}")
                try:
                    pids = (source.process.pid, dest_reg.process.pid)
                    cmd = command(src, f"{dest_reg.host}/big/app:v1")
                    samples[name].append(measure(cmd, pids))
                finally:
                    dest_reg.stop()
                    shutil.rmtree(dest_reg.storage_dir, ignore_errors=True)
        print_table(samples)
    finally:
        source.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def print_table(samples: dict[str, list[Sample]]) -> None:
    med = {
        name: Sample(
            statistics.median(s.seconds for s in rows),
            statistics.median(s.rss_mib for s in rows),
            statistics.median(s.cpu_s for s in rows),
            statistics.median(s.regs_cpu_s for s in rows),
        )
        for name, rows in samples.items()
    }
    ours_s, skopeo_s = med["oci-normalize convert"], med["skopeo copy"]
    head = f"{'contender':<26}{'wall s':>9}{'peak RSS MiB':>14}{'x skopeo time':>15}"
    head += f"{'CPU s':>8}{'registries CPU s':>18}"
    print(head)
    print("-" * len(head))
    for name, m in med.items():
        ratio = m.seconds / skopeo_s.seconds
        print(
            f"{name:<26}{m.seconds:>9.2f}{m.rss_mib:>14.1f}{ratio:>14.2f}x"
            f"{m.cpu_s:>8.2f}{m.regs_cpu_s:>18.2f}"
        )
    ours_rounds = [s.seconds for s in samples["oci-normalize convert"]]
    theirs = [s.seconds for s in samples["skopeo copy"]]
    per_round = ", ".join(f"{o / t:.2f}" for o, t in zip(ours_rounds, theirs, strict=True))
    print(
        f"time: {ours_s.seconds / skopeo_s.seconds:.2f}x skopeo of the medians, round by round "
        f"{per_round} (target <= 0.9, issue 19); "
        f"peak RSS {ours_s.rss_mib:.0f} MiB (target <= 96 MB = {96e6 / MIB:.0f} MiB), skopeo "
        f"{skopeo_s.rss_mib:.0f} MiB"
    )


if __name__ == "__main__":
    sys.exit(main())
