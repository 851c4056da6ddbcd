"""Peak memory and time per reference of ``batch`` from 1,000 to 100,000 references.

Not a test: run it by hand (``python bench/scale.py [--sizes 1000,2000,20000,100000]``). The
registries are :mod:`bench.fakeregistry` processes (in-memory, 100 tags a repository, listings
paginated 100 names a page): seeding 100,000 tags into distribution takes longer than the
bench. For each size, a fresh source (and an empty destination) serve:

1. ``batch SOURCE --to DEST`` (every image copied and normalized on the way), then
2. ``batch SOURCE`` (every tag converted in place), then, with ``--journal``,
3. ``batch SOURCE --journal J --report R.html`` run twice: the first run writes a journal line
   pair per tag, the second resumes from it (every root digest vouched for by the journal).

Each run is a child process; its peak RSS is ``ru_maxrss`` from ``os.wait4``
(:mod:`bench.child`). ``--baseline DIR`` runs a checkout of another version (``DIR`` holds its
``oci_normalize`` package) side by side, at the sizes up to ``--baseline-max``.
Targets (issue 19): peak RSS at 100,000 references at most 128 MiB; 20,000 within 10 MiB of
2,000; time per reference at the largest size within 1.1x of the smallest.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.child import run_child  # noqa: E402
from bench.installed import byte_compile  # noqa: E402

TAGS_PER_REPO: Final = 100
RSS_TARGET_MIB: Final = 128.0
GROWTH_TARGET_MIB: Final = 10.0
FLAT_TARGET: Final = 1.1


@dataclass
class Row:
    label: str
    refs: int
    seconds: float
    rss_mib: float

    @property
    def ms_per_ref(self) -> float:
        return 1000 * self.seconds / self.refs


@contextmanager
def fake_registry(repos: int) -> Iterator[str]:
    """A :mod:`bench.fakeregistry` child serving ``repos`` x 100 tags; its ``host:port``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.fakeregistry", "--repos", str(repos)]
        + ["--tags", str(TAGS_PER_REPO)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise SystemExit(f"fake registry did not start: {line!r}")
        yield f"127.0.0.1:{line.split()[1]}"
    finally:
        proc.terminate()
        proc.wait()


def command(checkout: Path | None) -> list[str]:
    """How to run ``oci-normalize``: this tree, or the ``oci_normalize`` under ``checkout``."""
    if checkout is None:
        return [sys.executable, "-m", "oci_normalize"]
    boot = (
        f"import sys, runpy; sys.path[0:0] = [{str(checkout)!r}]; "
        "runpy.run_module('oci_normalize', run_name='__main__')"
    )
    return [sys.executable, "-c", boot]


def measure(label: str, refs: int, args: list[str]) -> Row:
    child = run_child(args)
    row = Row(label, refs, child.seconds, child.rss_mib)
    print(
        f"  {label:<34}{refs:>8}{row.seconds:>9.1f}{row.ms_per_ref:>9.2f}{row.rss_mib:>10.1f}",
        flush=True,
    )
    return row


def sweep(size: int, opts: argparse.Namespace, work: Path) -> list[Row]:
    repos = max(1, size // TAGS_PER_REPO)
    refs = repos * TAGS_PER_REPO
    ours = command(None)
    conc = ["--concurrency", str(opts.concurrency)]
    rows: list[Row] = []
    modes = opts.modes.split(",")
    with fake_registry(repos) as source, fake_registry(0) as dest:
        if "to" in modes:
            args = [*ours, "batch", source, "--to", dest, *conc]
            rows.append(measure("batch --to", refs, args))
        if "to" in modes and opts.baseline and size <= opts.baseline_max:
            with fake_registry(0) as dest2:
                old = command(opts.baseline)
                args = [*old, "batch", source, "--to", dest2, *conc]
                rows.append(measure("batch --to (baseline)", refs, args))
        if "inplace" in modes:
            rows.append(measure("batch (in place)", refs, [*ours, "batch", source, *conc]))
    if "inplace" in modes and opts.baseline and size <= opts.baseline_max:
        with fake_registry(repos) as source:
            old = command(opts.baseline)
            rows.append(measure("batch (in place, baseline)", refs, [*old, "batch", source, *conc]))
    if opts.journal:
        with fake_registry(repos) as source:
            journal, report = work / f"j{size}.jsonl", work / f"r{size}.html"
            outputs = ["--journal", str(journal), "--report", str(report)]
            rows.append(
                measure("batch --journal --report", refs, [*ours, "batch", source, *conc, *outputs])
            )
            rows.append(measure("  again: resume", refs, [*ours, "batch", source, *conc, *outputs]))
            journal.unlink()
            report.unlink()
    return rows


def verdicts(rows: list[Row]) -> None:
    for label in dict.fromkeys(r.label for r in rows if "baseline" not in r.label):
        mine = sorted((r for r in rows if r.label == label), key=lambda r: r.refs)
        if len(mine) < 2:
            continue
        small, large = mine[0], mine[-1]
        flat = large.ms_per_ref / small.ms_per_ref
        per_ref = 1024 * (large.rss_mib - small.rss_mib) / (large.refs - small.refs)
        line = (
            f"{label.strip()}: peak {large.rss_mib:.1f} MiB at {large.refs}"
            f" ({'ok' if large.rss_mib <= RSS_TARGET_MIB or large.refs < 100_000 else 'OVER'}"
            f" vs {RSS_TARGET_MIB:.0f} at 100,000); growth {per_ref:.3f} KiB/ref; "
            f"time/ref {flat:.2f}x from {small.refs} to {large.refs}"
            f" ({'ok' if flat <= FLAT_TARGET else 'OVER'} vs {FLAT_TARGET}x)"
        )
        at = {r.refs: r for r in mine}
        if 2000 in at and 20000 in at:
            gap = at[20000].rss_mib - at[2000].rss_mib
            line += f"; 20,000 vs 2,000: {gap:+.1f} MiB"
            line += f" ({'ok' if gap <= GROWTH_TARGET_MIB else 'OVER'})"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,20000,100000")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--modes", default="to,inplace", help="to, inplace or both")
    parser.add_argument("--journal", action="store_true", help="also journal, report, resume")
    parser.add_argument("--baseline", type=Path, help="a checkout of another version")
    parser.add_argument("--baseline-max", type=int, default=20_000)
    opts = parser.parse_args()
    byte_compile()
    sizes = [int(s) for s in opts.sizes.split(",") if s.strip()]
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; fake registries, "
        f"{TAGS_PER_REPO} small v2s2 tags a repository, concurrency {opts.concurrency}"
    )
    print(f"  {'run':<34}{'refs':>8}{'wall s':>9}{'ms/ref':>9}{'peak MiB':>10}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for size in sizes:
            rows += sweep(size, opts, Path(tmp))
    verdicts(rows)


if __name__ == "__main__":
    main()
