#!/usr/bin/env python3
"""Migrate a fleet registry → fresh registry: ``batch --to`` against ``skopeo sync``, side by side.

    .venv/bin/python bench/migrate.py [--refs 100] [--layer-kib 256] [--rounds 1] [--base DIR]

Seeds a source registry once with REFS references over 10 repositories, half Docker v2s2 images
and half two-platform Docker manifest lists, every image with 3 random LAYER_KIB layers. Each
round gives each contender a fresh, empty destination registry and times, as child processes:

- ``oci-normalize batch SRC --repo 'mig*' --to DEST/ours`` (default concurrency);
- ``skopeo sync --all --format oci`` of the same repositories (one invocation, a YAML list);
- the floor, ``bench/floor_copy.py``: the same transfers with the fewest requests over
  http.client and no checks at all, so what the registries themselves cost shows.

Then it checks every reference at each destination: OCI media types all the way down and the
same blob digests as the source. Requests come from the registries' access logs. It prints
ratios, not verdicts: no timing is a test.

``--base DIR`` adds an older copy of the tool as a contender in the same rounds (a checkout
such as ``git worktree add /tmp/base REV``, run from its own directory with the same
interpreter), so a change is measured against what it replaces on the same machine, the same
minute, and the same source.
"""

from __future__ import annotations

import argparse
import compileall
import io
import json
import os
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.child import require, run_child  # noqa: E402
from bench.installed import byte_compile  # noqa: E402
from tests.support import seed  # noqa: E402
from tests.support.bulk_seed import Seeder  # noqa: E402
from tests.support.registry import RunningRegistry, start_registry  # noqa: E402

KIB = 1024
REPOS = 10
LAYERS = 3
SEED_THREADS = 8
ARCHS = ("amd64", "arm64")


def layer(size: int, key: str) -> tuple[bytes, str]:
    """A gzip tar (stored deflate) of one random file; its diff_id."""
    info = tarfile.TarInfo(f"{key}.bin")
    info.size, info.mode, info.mtime = size, 0o644, 0
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    tar_bytes = raw.getvalue()
    comp = zlib.compressobj(0, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return comp.compress(tar_bytes) + comp.flush(), seed.sha256_digest(tar_bytes)


def push_image(s: Seeder, repo: str, tag: str | None, key: str, arch: str, kib: int) -> bytes:
    descs, diff_ids = [], []
    for i in range(LAYERS):
        blob, diff_id = layer(kib * KIB, f"{key}-{i}")
        s.put_blob(repo, blob)
        descs.append(seed.descriptor(seed.DOCKER_LAYER_GZIP, blob))
        diff_ids.append(diff_id)
    config = seed.make_config(diff_ids, platform=("linux", arch))
    s.put_blob(repo, config)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": seed.DOCKER_MANIFEST,
            "config": seed.descriptor(seed.DOCKER_CONFIG, config),
            "layers": descs,
        }
    ).encode()
    s.put_manifest(repo, tag or seed.sha256_digest(body), body, seed.DOCKER_MANIFEST)
    return body


def seed_source(registry: RunningRegistry, refs: int, kib: int) -> list[tuple[str, str]]:
    def one(i: int) -> tuple[str, str]:
        s = Seeder(registry.url)
        # one path component: skopeo sync keeps only the last one at the destination
        repo, tag = f"mig{i % REPOS}", f"t{i:04d}"
        if i % 2 == 0:
            push_image(s, repo, tag, f"m{i}", "amd64", kib)
        else:
            kids = [push_image(s, repo, None, f"m{i}-{a}", a, kib) for a in ARCHS]
            body = {
                "schemaVersion": 2,
                "mediaType": seed.DOCKER_LIST,
                "manifests": [
                    seed.descriptor(
                        seed.DOCKER_MANIFEST, k, platform={"architecture": a, "os": "linux"}
                    )
                    for k, a in zip(kids, ARCHS, strict=True)
                ],
            }
            s.put_manifest(repo, tag, json.dumps(body).encode(), seed.DOCKER_LIST)
        s.close()
        return repo, tag

    with ThreadPoolExecutor(SEED_THREADS) as pool:
        return list(pool.map(one, range(refs)))


@dataclass
class Sample:
    seconds: float
    rss_mib: float
    cpu_s: float  # the contender's own CPU
    src_cpu_s: float  # the source registry's CPU meanwhile
    dest_cpu_s: float  # the destination registry's
    requests: int = 0
    verdict: str = ""
    kinds: dict[str, int] = field(default_factory=dict)  # destination requests by kind
    src_requests: int = 0


def kind_of(method: str, path: str) -> str:
    """What one logged request was, e.g. ``HEAD manifest``, ``PUT blob`` (the upload's end)."""
    if path.endswith("/tags/list"):
        return f"{method} tags"
    if "/blobs/uploads/" in path:
        return f"{method} upload"
    if "/blobs/" in path:
        return f"{method} blob"
    if "/manifests/" in path:
        return f"{method} manifest"
    if "/referrers/" in path:
        return f"{method} referrers"
    return f"{method} {path}"


def kinds(entries: list[Any]) -> dict[str, int]:
    return dict(Counter(kind_of(e.method, e.path) for e in entries))


def measure(
    args: list[str], source: RunningRegistry, dest: RunningRegistry, cwd: Path = ROOT
) -> Sample:
    """Wall seconds, peak RSS and CPU of one child process, and both registries' CPU."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    child = run_child(args, watch=(source.process.pid, dest.process.pid), cwd=cwd, env=env)
    src_cpu, dest_cpu = child.watched_cpu_s
    return Sample(child.seconds, child.rss_mib, child.cpu_s, src_cpu, dest_cpu)


def walk(url: str, repo: str, ref: str) -> list[tuple[dict[str, Any], str]]:
    data, ctype, _ = seed.get_manifest(url, repo, ref)
    doc = json.loads(data)
    out = [(doc, ctype)]
    for child in doc.get("manifests", []):
        out += walk(url, repo, child["digest"])
    return out


def blobs(tree: list[tuple[dict[str, Any], str]]) -> set[str]:
    out = set()
    for doc, _ in tree:
        if "config" in doc:
            out |= {doc["config"]["digest"], *(d["digest"] for d in doc["layers"])}
    return out


def check(src: RunningRegistry, dest: RunningRegistry, prefix: str, refs: list[Any]) -> str:
    """How many references landed all-OCI, and with the source's blob digests."""
    oci = same = 0
    for repo, tag in refs:
        there = walk(dest.url, f"{prefix}/{repo}", tag)
        oci += all(ctype.startswith("application/vnd.oci.") for _, ctype in there)
        same += blobs(there) == blobs(walk(src.url, repo, tag))
    return f"{oci}/{len(refs)} OCI, {same}/{len(refs)} with every blob digest unchanged"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--refs", type=int, default=100)
    parser.add_argument("--layer-kib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip-skopeo", action="store_true", help="leave out skopeo sync")
    parser.add_argument("--base", type=Path, help="an older checkout to run beside this one")
    args = parser.parse_args()
    byte_compile()
    if args.base is not None and not compileall.compile_dir(args.base / "oci_normalize", quiet=1):
        raise SystemExit(f"cannot byte-compile {args.base}")
    require("docker-registry", "skopeo")
    work = Path(tempfile.mkdtemp(prefix="oci-normalize-bench-migrate-"))
    source = start_registry(work / "src")
    try:
        t = time.perf_counter()
        refs = seed_source(source, args.refs, args.layer_kib)
        print(
            f"migration: {args.refs} references in {REPOS} repositories (half v2s2, half "
            f"2-platform lists, {LAYERS} x {args.layer_kib} KiB layers each), registry -> fresh "
            f"registry; seeded in {time.perf_counter() - t:.1f} s; median of {args.rounds} rounds"
        )
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
        sync_list = work / "sync.yaml"
        repos = sorted({repo for repo, _ in refs})
        images = "".join(f"    {repo}: []\n" for repo in repos)
        sync_list.write_text(f"{source.host}:\n  tls-verify: false\n  images:\n{images}")
        refs_file = work / "refs.json"
        refs_file.write_text(json.dumps(refs))
        rows: dict[str, list[Sample]] = {"floor": [], "ours": []}
        if args.base is not None:
            rows["base"] = []
        if not args.skip_skopeo:
            rows["skopeo"] = []
        for r in range(args.rounds):
            order = list(rows) if r % 2 == 0 else list(reversed(rows))
            for name in order:
                dest = start_registry(work / f"dest-{r}-{name}")
                try:
                    if name == "floor":
                        cmd = [sys.executable, str(ROOT / "bench" / "floor_copy.py")]
                        cmd += [source.host, dest.host, "floor", str(refs_file), "--workers", "16"]
                        prefix = "floor"
                    elif name in ("ours", "base"):
                        cmd = [sys.executable, "-m", "oci_normalize", "batch", source.host]
                        cmd += ["--repo", "mig*", "--to", f"{dest.host}/ours", "--json"]
                        prefix = "ours"
                    else:
                        cmd = ["skopeo", "sync", "--all", "--format", "oci", "--src", "yaml"]
                        cmd += ["--dest", "docker", "--dest-tls-verify=false", str(sync_list)]
                        cmd += [f"{dest.host}/theirs"]
                        prefix = "theirs"
                    src_mark = source.log_mark()
                    cwd = args.base.resolve() if name == "base" else ROOT
                    sample = measure(cmd, source, dest, cwd)
                    logged = dest.access_log_lines()
                    sample.requests = len(logged)
                    sample.kinds = kinds(logged)
                    sample.src_requests = len(source.access_log_lines(since=src_mark))
                    sample.verdict = check(source, dest, prefix, refs)
                    rows[name].append(sample)
                finally:
                    dest.stop()
        print_table(rows)
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        source.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def spread(values: list[float]) -> str:
    """``min-max`` of the rounds, and the spread as a share of the median."""
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    return f"{lo:.2f}-{hi:.2f} ({(hi - lo) / med * 100:.0f} %)"


def print_table(rows: dict[str, list[Sample]]) -> None:
    names = {
        "floor": "floor (http.client, no checks)",
        "ours": "oci-normalize batch --to",
        "skopeo": "skopeo sync --all --format oci",
        "base": "batch --to, --base copy",
    }
    names = {k: v for k, v in names.items() if k in rows}
    med = {k: statistics.median(r.seconds for r in v) for k, v in rows.items()}
    head = (
        f"{'contender':<32}{'wall s':>8}  {'min-max (spread)':<20}{'RSS MiB':>8}{'src req':>9}"
        f"{'dest req':>9}  at the destination"
    )
    print(head)
    print("-" * (len(head) + 14))
    for key, name in names.items():
        last = rows[key][-1]
        walls = [r.seconds for r in rows[key]]
        print(
            f"{name:<32}{med[key]:>8.2f}  {spread(walls):<20}{last.rss_mib:>8.1f}"
            f"{last.src_requests:>9}{last.requests:>9}  {last.verdict}"
        )
    print()
    head = f"{'CPU seconds (median)':<32}{'own':>8}{'src reg':>9}{'dest reg':>10}{'total':>8}"
    print(head)
    print("-" * len(head))
    for key, name in names.items():
        own = statistics.median(r.cpu_s for r in rows[key])
        src = statistics.median(r.src_cpu_s for r in rows[key])
        dest = statistics.median(r.dest_cpu_s for r in rows[key])
        print(f"{name:<32}{own:>8.2f}{src:>9.2f}{dest:>10.2f}{own + src + dest:>8.2f}")
    print()
    every = sorted({k for v in rows.values() for k in v[-1].kinds})
    head = f"{'destination requests (last round)':<36}" + "".join(f"{k:>9}" for k in names)
    print(head)
    print("-" * len(head))
    for kind in every:
        counts = "".join(f"{rows[k][-1].kinds.get(kind, 0):>9}" for k in names)
        print(f"{kind:<36}{counts}")
    print()
    ratio = [o.seconds / f.seconds for o, f in zip(rows["ours"], rows["floor"], strict=True)]
    print(
        f"batch --to / floor: {med['ours'] / med['floor']:.2f}x of the medians "
        f"(per round: {', '.join(f'{x:.2f}' for x in ratio)}; target <= 1.15x)"
    )
    if "base" in rows:
        mine = [o.seconds / b.seconds for o, b in zip(rows["ours"], rows["base"], strict=True)]
        own = statistics.median(r.cpu_s for r in rows["ours"])
        own_base = statistics.median(r.cpu_s for r in rows["base"])
        print(
            f"batch --to / --base copy: {med['ours'] / med['base']:.2f}x of the wall medians "
            f"(per round: {', '.join(f'{x:.2f}' for x in mine)}); own CPU {own:.2f} s against "
            f"{own_base:.2f} s ({own / own_base:.2f}x); --base / floor: "
            f"{med['base'] / med['floor']:.2f}x"
        )
    if "skopeo" in rows:
        print(
            f"skopeo sync / batch --to: {med['skopeo'] / med['ours']:.1f}x; skopeo sync / floor: "
            f"{med['skopeo'] / med['floor']:.1f}x (the most any client gets here)"
        )


if __name__ == "__main__":
    sys.exit(main())
