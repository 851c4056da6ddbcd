#!/usr/bin/env python3
"""What one sweep worker costs: requests/s, CPU and peak RSS at the default concurrency.

    .venv/bin/python bench/worker.py [--repos 25] [--shards 4]

Starts a throwaway ``docker-registry``, seeds ``--repos`` repositories of the fleet test's mixed
shapes (41 references each: Docker v2s2 and aliases, manifest lists, already-OCI, Kaniko-style
mixed, OCI indexes over Docker children), then runs ``oci-normalize batch --shard 0/N`` as a
direct child process and reads its CPU time from ``os.wait4`` and its peak RSS from GNU time.
Requests come from the registry's access log. It prints the per-reference cost and what it
implies for 100,000 tags; it is a measurement, never a test. The worker runs the host's
interpreter; the image runs the same code on Debian's Python of the same minor version."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.child import measured  # noqa: E402
from bench.installed import byte_compile  # noqa: E402
from oci_normalize.batch import DEFAULT_CONCURRENCY  # noqa: E402
from tests.support.fleet import seed_fleet, shard_of  # noqa: E402
from tests.support.registry import RunningRegistry, start_registry  # noqa: E402

TARGET_TAGS = 100_000
FLEETS = (1, 4, 8, 16, 32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=25)
    parser.add_argument("--shards", type=int, default=4, help="measure worker 0 of N")
    opts = parser.parse_args()
    byte_compile()
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        reg = start_registry(Path(tmp) / "registry")
        try:
            run(reg, opts.repos, opts.shards, Path(tmp))
        finally:
            reg.stop()


def run(reg: RunningRegistry, repos: int, shards: int, tmp: Path) -> None:
    started = time.monotonic()
    refs = seed_fleet(reg.url, prefix="bench", repos=repos)
    mine = [r for r in refs if shard_of(r.repository, r.tag, shards) == 0]
    convertible = sum(r.kind != "oci" for r in mine)
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; seeded {len(refs)}"
        f" references in {repos} repositories in {time.monotonic() - started:.1f} s"
    )
    mark = reg.log_mark()
    args = [sys.executable, "-m", "oci_normalize", "batch", reg.host, "--repo", "bench/*"]
    args += ["--shard", f"0/{shards}", "--journal", str(tmp / "sweep-0.jsonl"), "--json"]
    begin = time.monotonic()
    out = (tmp / "out.jsonl").open("wb")
    with measured(args, stdout=out, cwd=ROOT) as (_, got):
        pass
    status, usage = got.status, got.usage
    wall = time.monotonic() - begin
    out.close()
    docs = [json.loads(line) for line in (tmp / "out.jsonl").read_text().splitlines()]
    failed = [f"{d['reference']}: {d['error']}" for d in docs if d.get("status") == "failed"]
    if os.waitstatus_to_exitcode(status) not in (0, 3) or failed:
        print(f"batch exited {os.waitstatus_to_exitcode(status)}; failed:", *failed, sep="\n  ")
    requests = len(reg.access_log_lines(since=mark))
    cpu = usage.ru_utime + usage.ru_stime
    rss_mib = got.rss_kib / 1024
    n = len(mine)
    print(
        f"worker 0/{shards}, --concurrency {DEFAULT_CONCURRENCY} (default):"
        f" {n} references ({convertible} Docker/mixed), {requests} requests"
    )
    print(f"  wall            {wall:8.2f} s   ({wall / n * 1000:.1f} ms/ref, start-up included)")
    print(f"  requests/s      {requests / wall:8.0f}     ({requests / n:.2f} requests/ref)")
    print(
        f"  CPU             {cpu:8.2f} s   ({cpu / wall:.2f} cores busy,"
        f" {cpu / n * 1000:.1f} ms/ref)"
    )
    print(f"  peak RSS        {rss_mib:8.0f} MiB")
    per_ref = wall / n
    print(
        f"\n{TARGET_TAGS:,} tags at {per_ref * 1000:.1f} ms/ref per worker"
        " (if the registry keeps up):"
    )
    print(f"{'workers':>8} {'tags each':>10} {'hours':>7} {'registry req/s':>15}")
    for workers in FLEETS:
        each = TARGET_TAGS / workers
        print(
            f"{workers:>8} {each:>10,.0f} {each * per_ref / 3600:>7.2f}"
            f" {workers * requests / wall:>15,.0f}"
        )


if __name__ == "__main__":
    main()
