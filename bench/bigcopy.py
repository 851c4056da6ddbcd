#!/usr/bin/env python3
"""Copy one big image registry → fresh registry: oci-normalize against skopeo, side by side.

    .venv/bin/python bench/bigcopy.py [--layers 4] [--layer-mib 64] [--rounds 3] [--base DIR]
                                      [--storage DIR]

A Docker v2s2 image with LAYERS gzip layers of LAYER_MIB random MiB each is pushed to a source
registry once; every round then starts a fresh, empty destination registry for each contender
and times ``oci-normalize convert SRC DEST`` and ``skopeo copy --format oci SRC DEST`` as child
processes (wall time and CPU from ``os.wait4``, peak RSS from GNU time: :mod:`bench.child`),
alternating which goes first. ``bench/floor_stream.py`` runs too: the same copy in the
standard library alone, every blob streamed and hashed at once, nothing else (how close to
skopeo a Python copier gets here). With ``--base DIR`` (an older checkout, e.g. ``git worktree
add /tmp/bc-base REV``) that copy's ``convert`` runs too, on the same interpreter, first on
``PYTHONPATH``. The registries keep their blobs under ``--storage`` (default ``/dev/shm``
where there is one: on a disk, the writeback of earlier rounds' gigabytes lands in later
rounds). It prints medians, spreads and ratios, not verdicts: no timing is a test."""

from __future__ import annotations

import argparse
import compileall
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
    """The big Docker v2s2 image at ``REPOSITORY:TAG``."""
    descs, diff_ids = [], []
    for i in range(layers):
        blob, diff_id = gzip_layer(layer_mib * MIB, i)
        push_blob(url, REPOSITORY, blob)
        descs.append(seed.descriptor(seed.DOCKER_LAYER_GZIP, blob))
        diff_ids.append(diff_id)
    config = seed.make_config(diff_ids)
    push_blob(url, REPOSITORY, config)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": seed.DOCKER_MANIFEST,
            "config": seed.descriptor(seed.DOCKER_CONFIG, config),
            "layers": descs,
        }
    ).encode()
    seed.put_manifest(url, REPOSITORY, TAG, body, seed.DOCKER_MANIFEST)


OURS = "oci-normalize convert"
BASE = "base convert"
SKOPEO = "skopeo copy"
FLOOR = "floor (stdlib, streamed)"
FLOOR_SCRIPT = ROOT / "bench" / "floor_stream.py"
REPOSITORY, TAG = "big/app", "v1"
SHM = Path("/dev/shm")


@dataclass(frozen=True)
class Contender:
    name: str
    command: list[str]  # {SRC}, {DEST}: the references; {SRC_HOST}, {DEST_HOST}: registries
    env: dict[str, str] | None = None
    cwd: Path = ROOT


def measure(contender: Contender, src: str, dest: str, registry_pids: tuple[int, ...]) -> Sample:
    """``src`` and ``dest``: the registries' host:port."""
    places = {
        "{SRC}": f"{src}/{REPOSITORY}:{TAG}",
        "{DEST}": f"{dest}/{REPOSITORY}:{TAG}",
        "{SRC_HOST}": src,
        "{DEST_HOST}": dest,
    }
    args = []
    for arg in contender.command:
        for place, value in places.items():
            arg = arg.replace(place, value)
        args.append(arg)
    child = run_child(args, watch=registry_pids, env=contender.env, cwd=contender.cwd)
    return Sample(child.seconds, child.rss_mib, child.cpu_s, sum(child.watched_cpu_s))


def tree_env(tree: Path) -> dict[str, str]:
    """The environment for a run of ``tree``'s package: it first on the path (over the
    editable install), nothing else that could change what gets imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(tree)
    return env


def contenders(base: Path | None, cwd: Path) -> list[Contender]:
    """This checkout, skopeo, and with ``base`` the older checkout, each run from ``cwd`` (an
    empty folder: python puts the current one first on the path)."""
    convert = [sys.executable, "-m", "oci_normalize", "convert", "{SRC}", "{DEST}"]
    found = [Contender(OURS, convert, tree_env(ROOT), cwd)]
    if base is not None:
        if not compileall.compile_dir(base / "oci_normalize", quiet=1):
            raise SystemExit(f"cannot byte-compile {base}")
        found.append(Contender(BASE, convert, tree_env(base), cwd))
    for c in found:
        code = "import oci_normalize; print(oci_normalize.__file__)"
        out = subprocess.run(
            [sys.executable, "-c", code], env=c.env, cwd=cwd, capture_output=True, text=True
        )
        tree = Path(out.stdout.strip()).parent.parent
        wanted = ROOT if c.name == OURS else base
        if out.returncode or wanted is None or tree.resolve() != wanted.resolve():
            raise SystemExit(f"{c.name}: python imports oci_normalize from {tree}, not {wanted}")
    found.append(Contender(SKOPEO, skopeo("{SRC}", "{DEST}")))
    floor = [sys.executable, str(FLOOR_SCRIPT), "{SRC_HOST}", "{DEST_HOST}", REPOSITORY, TAG]
    found.append(Contender(FLOOR, floor, cwd=cwd))
    return found


def skopeo(src: str, dest: str) -> list[str]:
    """skopeo's copy; ``src`` and ``dest`` are references without a transport."""
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
    parser.add_argument("--base", type=Path, help="an older checkout whose convert runs too")
    parser.add_argument(
        "--storage",
        type=Path,
        default=SHM if SHM.is_dir() else None,
        help="where the registries keep their blobs (default /dev/shm; a temporary folder "
        "where there is none)",
    )
    parser.add_argument("--seed-into", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    byte_compile()
    if args.seed_into:  # in a child, so the bench's own RSS never counts for the contenders
        seed_image(args.seed_into, args.layers, args.layer_mib)
        return 0
    require("docker-registry", "skopeo")
    work = Path(tempfile.mkdtemp(prefix="oci-normalize-bench-copy-", dir=args.storage))
    source = start_registry(work / "src")
    try:
        t = time.perf_counter()
        seeding = [sys.executable, __file__, "--seed-into", source.url]
        seeding += ["--layers", str(args.layers), "--layer-mib", str(args.layer_mib)]
        subprocess.run(seeding, check=True, timeout=600)
        src = source.host
        print(
            f"big-layer copy: {args.layers} x {args.layer_mib} MiB layers, registry -> fresh "
            f"registry; seeded in {time.perf_counter() - t:.1f} s; median of {args.rounds} rounds"
        )
        order = contenders(args.base, work)
        samples: dict[str, list[Sample]] = {c.name: [] for c in order}
        for r in range(args.rounds):
            # Each contender goes first as often as the others: rotate, and reverse odd rounds.
            turn = order[r % len(order) :] + order[: r % len(order)]
            for contender in turn if r % 2 == 0 else turn[::-1]:
                dest_reg = start_registry(work / f"dest-{r}-{contender.name.split()[0]}")
                try:
                    pids = (source.process.pid, dest_reg.process.pid)
                    samples[contender.name].append(measure(contender, src, dest_reg.host, pids))
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
    ours_s, skopeo_s = med[OURS], med[SKOPEO]
    head = f"{'contender':<26}{'wall s':>9}{'min-max s':>14}{'peak RSS MiB':>14}"
    head += f"{'x skopeo time':>15}{'CPU s':>8}{'registries CPU s':>18}"
    print(head)
    print("-" * len(head))
    for name, m in med.items():
        ratio = m.seconds / skopeo_s.seconds
        walls = [s.seconds for s in samples[name]]
        spread = f"{min(walls):.2f}-{max(walls):.2f}"
        print(
            f"{name:<26}{m.seconds:>9.2f}{spread:>14}{m.rss_mib:>14.1f}{ratio:>14.2f}x"
            f"{m.cpu_s:>8.2f}{m.regs_cpu_s:>18.2f}"
        )
    theirs = [s.seconds for s in samples[SKOPEO]]
    for name in (n for n in samples if n != SKOPEO):
        ratios = [o.seconds / t for o, t in zip(samples[name], theirs, strict=True)]
        print(
            f"{name}: {med[name].seconds / skopeo_s.seconds:.2f}x skopeo of the medians; "
            f"round by round {', '.join(f'{x:.2f}' for x in ratios)} "
            f"(median {statistics.median(ratios):.2f}; target <= 0.9, issue 19)"
        )
    for other in (BASE, FLOOR):
        if other not in samples:
            continue
        ratios = [o.seconds / b.seconds for o, b in zip(samples[OURS], samples[other], strict=True)]
        each = ", ".join(f"{x:.2f}" for x in ratios)
        print(
            f"{OURS} / {other}: {ours_s.seconds / med[other].seconds:.2f}x of the medians; "
            f"round by round {each} (median {statistics.median(ratios):.2f})"
        )
    print(
        f"peak RSS {ours_s.rss_mib:.0f} MiB (target <= 96 MB = {96e6 / MIB:.0f} MiB), skopeo "
        f"{skopeo_s.rss_mib:.0f} MiB; load average {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    sys.exit(main())
