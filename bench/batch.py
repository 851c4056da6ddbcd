#!/usr/bin/env python3
"""Benchmark ``oci-normalize batch`` against a skopeo loop and the physical floor, side by side.

    .venv/bin/python bench/batch.py [--refs 100] [--rounds 3] [--scale 500,1000,2000]
                                    [--concurrency 8] [--skip-skopeo]

Starts a throwaway ``docker-registry`` on a free loopback port, seeds N references (half
single-image Docker v2s2, half two-platform Docker manifest lists; real blobs, raw pushes) once,
and gives each contender an identical copy in its own repositories (blobs cross-mounted, manifests
copied byte for byte). Then, in one run, it times converting every copy in place with:

- ``skopeo copy --all --format oci`` in a sequential loop (docker:// to the same docker://);
- the floor: one GET and one PUT per manifest on one reused connection, the converted bytes
  computed beforehand (the least any in-place conversion can do), sent once through
  requests.Session (the package the tool is built on) and once through http.client;
- ``oci-normalize batch`` at ``--concurrency 1`` and at the default.

Every contender runs ``--rounds`` times on fresh data, round by round side by side (the order
reversed every other round), and the table shows the median and the spread (min-max) of its
rounds, and each ratio also round by round. Requests per manifest come from the registry's
access log. ``batch s`` is the command's own
clock (enumeration included, interpreter start-up not); ``wall s`` includes start-up. Finally it
converts larger registries of manifests-only references (a few shared blobs) at the default
concurrency to show the cost grows linearly. It prints ratios, not verdicts: no timing is a test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from bench.child import require  # noqa: E402
from bench.installed import byte_compile  # noqa: E402
from oci_normalize.api import Client, plan  # noqa: E402
from oci_normalize.batch import DEFAULT_CONCURRENCY  # noqa: E402
from tests.support import seed  # noqa: E402
from tests.support.bulk_seed import (  # noqa: E402
    Image,
    ListImage,
    Seeder,
    docker_list_body,
    docker_manifest_variant,
)
from tests.support.registry import RunningRegistry, start_registry  # noqa: E402

REPOS = 10
SEED_THREADS = 8


@dataclass
class Row:
    name: str
    refs: int
    manifests: int
    wall: float
    requests: int
    own: float | None = None  # the tool's own clock, when it reports one
    rounds: tuple[Row, ...] = ()  # for a median row: the rounds it is the median of

    @property
    def per_manifest(self) -> float:
        return self.requests / self.manifests

    @property
    def time(self) -> float:
        """The own clock where there is one, else wall time."""
        return self.own if self.own is not None else self.wall

    @property
    def spread(self) -> str:
        """``min-max`` of the rounds (own clock where there is one) and that range as a share
        of the median."""
        if not self.rounds:
            return "-"
        times = [r.time for r in self.rounds]
        lo, hi = min(times), max(times)
        return f"{lo:.2f}-{hi:.2f} ({(hi - lo) / self.time * 100:.0f}%)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--refs", type=int, default=100, help="references per contender (even)")
    parser.add_argument("--scale", default="500,1000,2000", help="sizes for the scaling run")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--rounds", type=int, default=3, help="runs per contender (median)")
    parser.add_argument("--skip-skopeo", action="store_true", help="leave the slow loop out")
    args = parser.parse_args()
    byte_compile()
    require("docker-registry", "skopeo")
    work = Path(tempfile.mkdtemp(prefix="oci-normalize-bench-"))
    try:
        return run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def fresh_registry(workdir: Path) -> Iterator[RunningRegistry]:
    registry = start_registry(workdir)
    try:
        yield registry
    finally:
        registry.stop()


def run(args: argparse.Namespace, work: Path) -> int:
    # Each contender gets its own registry holding identical bytes: a registry answers a manifest
    # PUT much faster when that blob already exists, and every contender but skopeo writes the
    # same converted bytes, so sharing one registry would favour whoever runs later.
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.refs} references "
        f"(half v2s2, half 2-platform lists); median of {args.rounds} rounds, fresh data each"
    )
    rows: list[Row] = []
    contenders: list[tuple[str, Callable[[RunningRegistry, Seeded], Row]]] = [
        ("floor", bench_floor),
        ("floor-raw", bench_floor_raw),
        ("c1", lambda reg, seeded: bench_batch(reg, seeded, 1)),
        ("cN", lambda reg, seeded: bench_batch(reg, seeded, args.concurrency)),
    ]
    if not args.skip_skopeo:
        contenders.append(("skopeo", bench_skopeo))
    with ExitStack() as stack:
        seeded: dict[str, tuple[RunningRegistry, list[Seeded]]] = {}
        for name, _ in contenders:
            registry = stack.enter_context(fresh_registry(work / name))
            t = time.perf_counter()
            rounds = [seed_sources(registry, args.refs, r) for r in range(args.rounds)]
            seconds = time.perf_counter() - t
            print(
                f"  {name}: seeded {args.rounds} x {rounds[0].manifests} manifests in "
                f"{seconds:.1f} s",
                flush=True,
            )
            seeded[name] = (registry, rounds)
        # Round by round, every contender in turn (the order reversed every other round), so
        # that a change in the machine's load falls on all of them, not on one.
        runs: dict[str, list[Row]] = {name: [] for name, _ in contenders}
        for r in range(args.rounds):
            order = contenders if r % 2 == 0 else contenders[::-1]
            for name, contender in order:
                registry, rounds = seeded[name]
                runs[name].append(contender(registry, rounds[r]))
            load = os.getloadavg()[0]
            print(f"  round {r + 1} of {args.rounds} done (load average {load:.1f})", flush=True)
        rows = [median_row(runs[name]) for name, _ in contenders]
    print_table(rows)

    sizes = [int(n) for n in args.scale.split(",") if n.strip()]
    if sizes:
        print_scaling([scaling(work / f"scale{n}", n, args.concurrency) for n in sizes])
    return 0


# ---- seeding ----------------------------------------------------------------------------------


@dataclass
class Seeded:
    refs: list[tuple[str, str, Image | ListImage]]  # (repository, tag, image)
    repo_glob: str

    @property
    def manifests(self) -> int:
        return sum(3 if isinstance(img, ListImage) else 1 for _, _, img in self.refs)


def seed_sources(registry: RunningRegistry, refs: int, round_: int = 0) -> Seeded:
    """``refs`` references over REPOS repositories: even ones v2s2, odd ones lists; the same
    bytes on every registry for a round (layers and configs are reproducible), other bytes in
    another round (so no round finds the previous one's converted manifests)."""

    def one(i: int) -> tuple[str, str, Image | ListImage]:
        s = Seeder(registry.url)
        repo, tag = f"app{round_}/r{i % REPOS}", f"t{i:04d}"
        key = f"bench-{round_}-{i}"
        img: Image | ListImage
        if i % 2 == 0:
            img = s.docker_image(repo, tag, key=key)
        else:
            img = s.docker_list(repo, tag, key=key)
        s.close()
        return repo, tag, img

    with ThreadPoolExecutor(SEED_THREADS) as pool:
        return Seeded(list(pool.map(one, range(refs))), f"app{round_}/*")


# ---- contenders -------------------------------------------------------------------------------


@dataclass
class FloorStep:
    repo: str
    get_ref: str
    put_ref: str
    data: bytes
    media_type: str


def prepare_floor(registry: RunningRegistry, seeded: Seeded) -> list[list[FloorStep]]:
    """Per reference: (GET old, PUT new) per manifest, children first, computed untimed."""
    client = Client()
    out = []
    for repo, tag, _ in seeded.refs:
        planned = plan(f"{registry.host}/{repo}:{tag}", client=client).plan
        steps = []
        for node in planned.nodes:
            is_root = node is planned.root
            steps.append(
                FloorStep(
                    repo=repo,
                    get_ref=tag if is_root else str(node.old_digest),
                    put_ref=tag if is_root else str(node.new_digest),
                    data=node.new_data,
                    media_type=node.new_media_type,
                )
            )
        out.append(steps)
    client.close()
    return out


def bench_floor(registry: RunningRegistry, seeded: Seeded) -> Row:
    """The floor through requests.Session, the HTTP package the tool is built on."""
    work = prepare_floor(registry, seeded)
    session = requests.Session()
    accept = {"Accept": seed.MANIFEST_ACCEPT}
    mark = registry.log_mark()
    t = time.perf_counter()
    for steps in work:
        for step in reversed(steps):  # read every manifest, root first …
            url = f"{registry.url}/v2/{step.repo}/manifests/{step.get_ref}"
            session.get(url, headers=accept, timeout=30).raise_for_status()
        for step in steps:  # … then write children first, the tag last
            url = f"{registry.url}/v2/{step.repo}/manifests/{step.put_ref}"
            resp = session.put(
                url, data=step.data, headers={"Content-Type": step.media_type}, timeout=30
            )
            resp.raise_for_status()
    wall = time.perf_counter() - t
    session.close()
    name = "floor (1 GET + 1 PUT/manifest)"
    return Row(name, len(work), seeded.manifests, wall, count(registry, mark))


def bench_floor_raw(registry: RunningRegistry, seeded: Seeded) -> Row:
    """The same floor through the standard library's http.client: the least Python can do."""
    work = prepare_floor(registry, seeded)
    conn = http.client.HTTPConnection(registry.host, timeout=30)
    accept = {"Accept": seed.MANIFEST_ACCEPT}

    def call(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> None:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status >= 300:
            raise SystemExit(f"floor: {method} {path}: HTTP {resp.status}")

    mark = registry.log_mark()
    t = time.perf_counter()
    for steps in work:
        for step in reversed(steps):
            call("GET", f"/v2/{step.repo}/manifests/{step.get_ref}", None, accept)
        for step in steps:
            headers = {"Content-Type": step.media_type}
            call("PUT", f"/v2/{step.repo}/manifests/{step.put_ref}", step.data, headers)
    wall = time.perf_counter() - t
    conn.close()
    name = "floor, http.client (same requests)"
    return Row(name, len(work), seeded.manifests, wall, count(registry, mark))


def bench_batch(registry: RunningRegistry, seeded: Seeded, concurrency: int) -> Row:
    label = "batch --concurrency 1" if concurrency == 1 else f"batch (default, {concurrency})"
    mark = registry.log_mark()
    t = time.perf_counter()
    summary = run_batch(registry, seeded.repo_glob, concurrency)
    wall = time.perf_counter() - t
    refs = len(seeded.refs)
    assert summary["converted"] == refs and summary["failed"] == 0, summary
    return Row(label, refs, seeded.manifests, wall, count(registry, mark), own=summary["seconds"])


def run_batch(registry: RunningRegistry, repo_glob: str, concurrency: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "oci_normalize", "batch", registry.host, "--repo", repo_glob]
    cmd += ["--concurrency", str(concurrency), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"batch failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])["summary"]
    return summary


def bench_skopeo(registry: RunningRegistry, seeded: Seeded) -> Row:
    mark = registry.log_mark()
    t = time.perf_counter()
    for repo, tag, _ in seeded.refs:
        ref = f"docker://{registry.host}/{repo}:{tag}"
        cmd = ["skopeo", "copy", "--quiet", "--all", "--format", "oci"]
        cmd += ["--src-tls-verify=false", "--dest-tls-verify=false", ref, ref]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    wall = time.perf_counter() - t
    name = "skopeo copy --format oci loop"
    return Row(name, len(seeded.refs), seeded.manifests, wall, count(registry, mark))


def count(registry: RunningRegistry, mark: int) -> int:
    return len(registry.access_log_lines(since=mark))


# ---- scaling ----------------------------------------------------------------------------------


def scaling(workdir: Path, size: int, concurrency: int) -> Row:
    """A manifests-only registry of ``size`` references on two shared images: 9 in 10 are v2s2
    variants (one annotation differs), 1 in 10 lists of two variants; 50 tags a repository."""
    repos = max(1, size // 50)
    with fresh_registry(workdir) as registry:
        t = time.perf_counter()
        s = Seeder(registry.url)
        base = [s.docker_image("base/img", f"b{a}", key=f"scale-{a}") for a in range(2)]
        s.close()

        def mount(r: int) -> None:
            seeder = Seeder(registry.url)
            for img in base:
                for blob in img.blobs:
                    seeder.mount_blob(f"scale/r{r}", blob, "base/img")
            seeder.close()

        def put(i: int) -> int:
            seeder = Seeder(registry.url)
            repo, tag = f"scale/r{i % repos}", f"t{i:05d}"
            if i % 10 == 9:
                kids = tuple(
                    Image(docker_manifest_variant(base[a], i * 10 + a), base[a].blobs)
                    for a in range(2)
                )
                for kid in kids:
                    seeder.put_manifest(repo, kid.digest, kid.manifest, seed.DOCKER_MANIFEST)
                seeder.put_manifest(repo, tag, docker_list_body(kids), seed.DOCKER_LIST)
                made = 3
            else:
                body = docker_manifest_variant(base[0], i * 10)
                seeder.put_manifest(repo, tag, body, seed.DOCKER_MANIFEST)
                made = 1
            seeder.close()
            return made

        with ThreadPoolExecutor(SEED_THREADS) as pool:
            list(pool.map(mount, range(repos)))
            manifests = sum(pool.map(put, range(size)))
        seeded = time.perf_counter() - t
        mark = registry.log_mark()
        t = time.perf_counter()
        summary = run_batch(registry, "scale/*", concurrency)
        wall = time.perf_counter() - t
        assert summary["converted"] == size and summary["failed"] == 0, summary
        label = f"{size} refs, {repos} repos (seeded in {seeded:.1f} s)"
        return Row(label, size, manifests, wall, count(registry, mark), summary["seconds"])


def median_row(rows: list[Row]) -> Row:
    def mid(values: list[float]) -> float:
        return statistics.median(values)

    first = rows[0]
    own = [r.own for r in rows if r.own is not None]
    return Row(
        first.name,
        first.refs,
        first.manifests,
        mid([r.wall for r in rows]),
        round(mid([r.requests for r in rows])),
        mid(own) if own else None,
        tuple(rows),
    )


def paired(num: Row, den: Row) -> str:
    """``num / den`` round by round (each round's contenders ran side by side)."""
    ratios = [n.time / d.time for n, d in zip(num.rounds, den.rounds, strict=True)]
    return ", ".join(f"{x:.1f}" for x in ratios)


# ---- output -----------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    floor = next(r for r in rows if r.name.startswith("floor"))
    skopeo = next((r for r in rows if r.name.startswith("skopeo")), None)
    print()
    head = f"{'contender':<34}{'refs':>5}{'mfst':>6}{'wall s':>8}{'batch s':>9}"
    head += f"  {'min-max (spread)':<18}{'req/mfst':>9}{'x floor':>9}{'skopeo/x':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        own = r.time
        vs_floor = own / floor.wall
        vs_skopeo = f"{skopeo.wall / own:>9.1f}x" if skopeo else f"{'-':>10}"
        own_text = f"{r.own:>9.2f}" if r.own is not None else f"{'-':>9}"
        print(
            f"{r.name:<34}{r.refs:>5}{r.manifests:>6}{r.wall:>8.2f}{own_text}  {r.spread:<18}"
            f"{r.per_manifest:>9.2f}{vs_floor:>8.2f}x{vs_skopeo}"
        )
    c1 = next(r for r in rows if "concurrency 1" in r.name)
    cn = next(r for r in rows if r.name.startswith("batch (default"))
    print()
    print(
        f"concurrency 1 / floor: {(c1.own or c1.wall) / floor.wall:.2f}x own clock, "
        f"{c1.wall / floor.wall:.2f}x wall (target <= 1.2x); round by round: {paired(c1, floor)}"
    )
    raw = next((r for r in rows if r.name.startswith("floor, http.client")), None)
    if raw:
        print(
            f"concurrency 1 / http.client floor: {(c1.own or c1.wall) / raw.wall:.2f}x own clock,"
            f" {c1.wall / raw.wall:.2f}x wall"
        )
    if skopeo:
        print(
            f"skopeo loop / default concurrency: {skopeo.wall / (cn.own or cn.wall):.1f}x own "
            f"clock, {skopeo.wall / cn.wall:.1f}x wall, of the medians (target >= 6x); round "
            f"by round: {paired(skopeo, cn)}"
        )
    print(
        f"requests per manifest: batch {c1.per_manifest:.2f} / {cn.per_manifest:.2f}, "
        f"floor {floor.per_manifest:.2f}"
        + (f", skopeo {skopeo.per_manifest:.2f}" if skopeo else "")
        + " (target <= 3)"
    )


def print_scaling(rows: list[Row]) -> None:
    print()
    head = f"{'scaling (default concurrency)':<44}{'mfst':>6}{'batch s':>9}{'ms/ref':>8}"
    head += f"{'req/mfst':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        own = r.own or r.wall
        print(
            f"{r.name:<44}{r.manifests:>6}{own:>9.2f}{1000 * own / r.refs:>8.2f}"
            f"{r.per_manifest:>10.2f}"
        )
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        ratio = ((last.own or last.wall) / last.refs) / ((first.own or first.wall) / first.refs)
        print(f"time per reference at {last.refs} vs {first.refs}: {ratio:.2f}x (1.0 = linear)")


if __name__ == "__main__":
    sys.exit(main())
