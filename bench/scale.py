"""Peak memory and time per reference of ``batch`` from 1,000 to 100,000 references.

Not a test: run it by hand (``python bench/scale.py [--sizes 1000,2000,20000,100000]``). The
registries are :mod:`bench.fakeregistry` processes (in-memory, 100 tags a repository, listings
paginated 100 names a page): seeding 100,000 tags into distribution takes longer than the
bench. For each size, a fresh source (and an empty destination) serve:

1. ``batch SOURCE --to DEST`` (every image copied and normalized on the way), then
2. ``batch SOURCE`` (every tag converted in place), then, with ``--modes`` naming them,
3. ``reconcile``: ``serve --registry SOURCE --reconcile-every 1d`` (in place), whose start-up
   sweep runs the batch runner over the whole registry; the sweep's time comes from serve's JSON
   log (its ``reconcile`` lines ``started`` and ``done``), its peak RSS is ``VmHWM`` of the serve
   process itself when the sweep is done; then SIGTERM, and serve must stop with exit 0;
4. ``resume``: ``batch SOURCE --journal J --report R.html --json`` over a source whose tags a
   batch converted already, J written beforehand (:mod:`bench.journals`) with at least
   ``--resume-lines`` lines (default a million): the converting batch's line pair per tag, and
   those of tags deleted since, each vouching for a digest of its own. Every tag must come out
   ``already-oci``. Then, with ``--journal``,
5. ``batch SOURCE --journal J --report R.html`` run twice: the first run writes a journal line
   pair per tag, the second resumes from it (every root digest vouched for by the journal).

Each batch is a child process; its peak RSS is its own, as GNU time reports it
(:func:`bench.child.measured`; ``ru_maxrss`` of a child this bench forks would count the bench).
``--baseline DIR`` runs a checkout of another version (``DIR`` holds its ``oci_normalize``
package) side by side, at the sizes up to ``--baseline-max``. Targets (issue 19): peak RSS at
100,000 references at most 128 MiB; 20,000 within 10 MiB of 2,000; time per reference at the
largest size within 1.1x of the smallest.

``--real`` runs against real CNCF distribution registries (``docker-registry``, started as the
tests start it: :mod:`tests.support.registry`) instead, at ``--sizes 1000,2000,10000`` by
default. Each size gets a fresh source, seeded with raw API calls
(:mod:`tests.support.bulk_seed`): one small v2s2 image's two blobs, mounted once into each
repository of 100 tags, back every manifest, which differ by one annotation. Then
``batch SOURCE --to DEST`` (a second fresh registry) and ``batch SOURCE`` run with ``--json``;
each must report ``converted`` == N and ``failed`` == 0, and every tag, read back without the
package (a HEAD accepting both kinds), must be an OCI manifest at both registries.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.child import Child, measured, require, run_child  # noqa: E402
from bench.installed import byte_compile  # noqa: E402
from bench.journals import write_journal  # noqa: E402
from tests.support import seed  # noqa: E402
from tests.support.bulk_seed import Seeder, docker_manifest_variant  # noqa: E402
from tests.support.registry import free_port, start_registry  # noqa: E402

TAGS_PER_REPO: Final = 100
RSS_TARGET_MIB: Final = 128.0
GROWTH_TARGET_MIB: Final = 10.0
FLAT_TARGET: Final = 1.1
REAL_SIZES: Final = "1000,2000,10000"
SEED_THREADS: Final = 8
BASE_REPO: Final = "base/img"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
#: How often the bench reads serve's log while it sweeps.
POLL_S: Final = 0.5
#: Longest a reconcile sweep may take before the bench gives up (100,000 refs: ~15 min here).
SWEEP_TIMEOUT_S: Final = 3 * 3600.0
RESUME_LINES: Final = 1_000_000
T = TypeVar("T")


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
def fake_registry(repos: int, *, converted: bool = False) -> Iterator[str]:
    """A :mod:`bench.fakeregistry` child serving ``repos`` x 100 tags (``converted``: every
    tag already at its OCI twin, as after a batch); its ``host:port``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.fakeregistry", "--repos", str(repos)]
        + ["--tags", str(TAGS_PER_REPO)]
        + (["--converted"] if converted else []),
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
    if "reconcile" in modes:
        with fake_registry(repos) as source:
            rows.append(reconcile(refs, source, opts, work))
    if "resume" in modes:
        rows.append(resume(refs, repos, opts, work))
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


def vm_hwm_mib(pid: int) -> float:
    """Peak RSS (``VmHWM``) of process ``pid`` so far, its own: exec gives a process a fresh
    address space, so nothing of the bench that forked it counts."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmHWM in /proc/{pid}/status")


def sweep_line(log: Path, proc: subprocess.Popen[bytes]) -> tuple[float, dict[str, Any]]:
    """Follow serve's JSON log ``log`` until its first sweep ends: the ``started`` line's time,
    and the closing ``reconcile`` line (outcome ``done``; SystemExit on anything else)."""
    started: float | None = None
    deadline = time.monotonic() + SWEEP_TIMEOUT_S
    partial = b""
    with log.open("rb") as fh:
        while time.monotonic() < deadline:
            chunk = fh.read()
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()
            for raw in lines:
                if b'"reconcile"' not in raw or b'"reference"' in raw:
                    continue  # one line a converted reference: not the sweep's start or end
                doc = json.loads(raw)
                if doc.get("outcome") == "started":
                    started = float(doc["time"])
                elif doc.get("outcome") == "done" and started is not None:
                    return started, doc
                elif doc.get("outcome") == "sweep-failed":
                    raise SystemExit(f"serve's reconcile failed: {doc}")
            if not chunk:
                if proc.poll() is not None:
                    tail = log.read_bytes()[-2000:].decode(errors="replace")
                    raise SystemExit(f"serve exited ({proc.returncode}) before its sweep: {tail}")
                time.sleep(POLL_S)
    raise SystemExit(f"serve's reconcile did not end within {SWEEP_TIMEOUT_S:.0f} s")


def reconcile(refs: int, source: str, opts: argparse.Namespace, work: Path) -> Row:
    """``serve`` against ``source`` (in place): its start-up sweep's wall time, from the log's
    own timestamps, and the serve process's peak RSS when the sweep is done; then SIGTERM."""
    state, log = work / f"serve-{refs}", work / f"serve-{refs}.log"
    args = [*command(None), "serve", "--registry", source, "--state", str(state)]
    args += ["--listen", f"127.0.0.1:{free_port()}", "--reconcile-every", "1d"]
    args += ["--concurrency", str(opts.concurrency), "--log-format", "json"]
    args += ["--insecure-no-webhook-auth"]
    with log.open("wb") as err:  # a file: no pipe to fill up (a line a converted reference)
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
    try:
        started, done = sweep_line(log, proc)
        rss = vm_hwm_mib(proc.pid)  # the Popen'd python is serve itself, no wrapper
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0 or b'"stopped"' not in log.read_bytes()[-4096:]:
        raise SystemExit(f"serve did not stop cleanly on SIGTERM (exit {code})")
    if done.get("references") != refs or done.get("converted") != refs:
        raise SystemExit(f"reconcile at {refs}: not every reference converted: {done}")
    log.unlink()
    row = Row("serve reconcile (in place)", refs, float(done["time"]) - started, rss)
    print(
        f"  {row.label:<34}{refs:>8}{row.seconds:>9.1f}{row.ms_per_ref:>9.2f}{rss:>10.1f}",
        flush=True,
    )
    return row


def resume(refs: int, repos: int, opts: argparse.Namespace, work: Path) -> Row:
    """``batch --journal J --report R`` over a fake registry whose ``refs`` tags a batch
    converted already, resuming from a journal of at least ``opts.resume_lines`` lines: that
    batch's lines, and those of tags deleted since (each vouching for a digest of its own, the
    most a resume's index can be asked to hold). Every tag must come out ``already-oci``."""
    pairs = max(repos, -(-opts.resume_lines // (2 * TAGS_PER_REPO)))
    journal, report = work / f"resume-{refs}.jsonl", work / f"resume-{refs}.html"
    with fake_registry(repos, converted=True) as source:
        took = time.perf_counter()
        size = write_journal(journal, source, pairs, TAGS_PER_REPO)
        lines = 2 * pairs * TAGS_PER_REPO
        print(
            f"  journal of {lines} lines ({size / 2**20:.0f} MiB) written in"
            f" {time.perf_counter() - took:.0f} s",
            flush=True,
        )
        args = [*command(None), "batch", source, "--concurrency", str(opts.concurrency)]
        args += ["--journal", str(journal), "--report", str(report), "--json"]
        child, summary = run_json(args, work / f"resume-{refs}.out")
    (work / f"resume-{refs}.out").unlink()
    journal.unlink()
    report.unlink()
    if summary.get("already_oci") != refs or summary.get("failed") != 0:
        raise SystemExit(f"resume at {refs}: not every reference already OCI: {summary}")
    row = Row(f"resume ({lines:,}-line journal)", refs, child.seconds, child.rss_mib)
    print(
        f"  {row.label:<34}{refs:>8}{row.seconds:>9.1f}{row.ms_per_ref:>9.2f}{row.rss_mib:>10.1f}",
        flush=True,
    )
    return row


# ---- --real: CNCF distribution registries -----------------------------------------------------


def run_json(args: list[str], out: Path) -> tuple[Child, dict[str, Any]]:
    """Like :func:`bench.child.run_child`, with stdout (``--json`` lines) kept in ``out``: the
    child's peak RSS and wall time, and its closing ``summary``."""
    errors = out.with_suffix(".err")
    start = time.perf_counter()
    with (
        out.open("wb") as sink,  # files: no pipe to fill up
        errors.open("wb") as err,
        measured(args, stdout=sink, stderr=err, cwd=ROOT) as (_, got),
    ):
        pass
    elapsed = time.perf_counter() - start
    status, usage = got.status, got.usage
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = errors.read_text(errors="replace")[-2000:]
        raise SystemExit(f"{' '.join(args)} failed ({code}): {tail}")
    errors.unlink()
    with out.open("rb") as fh:
        fh.seek(max(0, out.stat().st_size - 4096))
        last = fh.read().splitlines()[-1]
    summary: dict[str, Any] = json.loads(last)["summary"]
    child = Child(elapsed, got.rss_kib / 1024, usage.ru_utime + usage.ru_stime)
    return child, summary


def pooled(url: str, job: Callable[[Seeder, int], T], items: range) -> list[T]:
    """``job(seeder, item)`` for every item on SEED_THREADS threads, one keep-alive Seeder each."""
    local = threading.local()
    made: list[Seeder] = []

    def one(item: int) -> T:
        if not hasattr(local, "seeder"):
            local.seeder = Seeder(url)
            made.append(local.seeder)
        return job(local.seeder, item)

    try:
        with ThreadPoolExecutor(SEED_THREADS) as pool:
            return list(pool.map(one, items))
    finally:
        for seeder in made:
            seeder.close()


def seed_real(url: str, repos: int) -> float:
    """``repos`` x 100 v2s2 tags on one image's blobs (mounted once a repository); seconds."""
    start = time.perf_counter()
    first = Seeder(url)
    base = first.docker_image(BASE_REPO, "base", key="scale-real")
    first.close()

    def mount(seeder: Seeder, r: int) -> None:
        for blob in base.blobs:
            seeder.mount_blob(f"scale/r{r:03d}", blob, BASE_REPO)

    def put(seeder: Seeder, i: int) -> None:
        repo, tag = f"scale/r{i // TAGS_PER_REPO:03d}", f"t{i % TAGS_PER_REPO:03d}"
        body = docker_manifest_variant(base, i)
        seeder.put_manifest(repo, tag, body, seed.DOCKER_MANIFEST)

    pooled(url, mount, range(repos))
    pooled(url, put, range(repos * TAGS_PER_REPO))
    return time.perf_counter() - start


def not_oci(url: str, repos: int) -> int:
    """Tags under ``scale/`` whose manifest is not OCI, read back with raw HEADs."""
    accept = f"{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"

    def head(seeder: Seeder, i: int) -> bool:
        repo, tag = f"scale/r{i // TAGS_PER_REPO:03d}", f"t{i % TAGS_PER_REPO:03d}"
        resp = seeder.session.head(
            f"{url}/v2/{repo}/manifests/{tag}", headers={"Accept": accept}, timeout=30
        )
        return bool(resp.status_code != 200 or resp.headers.get("Content-Type") != OCI_MANIFEST)

    return sum(pooled(url, head, range(repos * TAGS_PER_REPO)))


def measure_real(label: str, refs: int, args: list[str], out: Path) -> Row:
    child, summary = run_json(args, out)
    out.unlink()
    row = Row(label, refs, child.seconds, child.rss_mib)
    print(
        f"  {label:<34}{refs:>8}{row.seconds:>9.1f}{row.ms_per_ref:>9.2f}{row.rss_mib:>10.1f}"
        f"  converted {summary['converted']}, failed {summary['failed']},"
        f" load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    if summary["converted"] != refs or summary["failed"] != 0:
        raise SystemExit(f"{label} at {refs}: not every reference converted: {summary}")
    return row


def sweep_real(size: int, opts: argparse.Namespace, work: Path) -> list[Row]:
    repos = max(1, size // TAGS_PER_REPO)
    refs = repos * TAGS_PER_REPO
    conc = ["--concurrency", str(opts.concurrency), "--repo", "scale/*", "--json"]
    rows: list[Row] = []
    modes = opts.modes.split(",")
    source = start_registry(work / f"src-{size}")
    dest = start_registry(work / f"dst-{size}")
    try:
        took = seed_real(source.url, repos)
        print(f"  seeded {refs} tags in {repos} repositories in {took:.1f} s", flush=True)
        out = work / f"out-{size}.jsonl"
        if "to" in modes:
            args = [*command(None), "batch", source.host, "--to", dest.host, *conc]
            rows.append(measure_real("batch --to (distribution)", refs, args, out))
            if (bad := not_oci(dest.url, repos)) != 0:
                raise SystemExit(f"batch --to at {refs}: {bad} destination tags not OCI")
        if "inplace" in modes:
            args = [*command(None), "batch", source.host, *conc]
            rows.append(measure_real("batch (in place, distribution)", refs, args, out))
            if (bad := not_oci(source.url, repos)) != 0:
                raise SystemExit(f"batch at {refs}: {bad} tags not OCI")
    finally:
        dest.stop()
        source.stop()
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
    parser.add_argument("--sizes", help="default 1000,2000,20000,100000 (--real: 1000,2000,10000)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--modes", default="to,inplace", help="comma-separated: to, inplace, reconcile, resume"
    )
    parser.add_argument(
        "--resume-lines",
        type=int,
        default=RESUME_LINES,
        help=f"--modes resume: lines of the journal resumed from (default {RESUME_LINES})",
    )
    parser.add_argument("--journal", action="store_true", help="also journal, report, resume")
    parser.add_argument("--baseline", type=Path, help="a checkout of another version")
    parser.add_argument("--baseline-max", type=int, default=20_000)
    parser.add_argument("--real", action="store_true", help="against docker-registry processes")
    opts = parser.parse_args()
    if opts.real:
        require("docker-registry")
        if opts.baseline or opts.journal:
            parser.error("--real runs neither --baseline nor --journal")
    byte_compile()
    default = REAL_SIZES if opts.real else "1000,2000,20000,100000"
    sizes = [int(s) for s in (opts.sizes or default).split(",") if s.strip()]
    kind = "distribution registries (docker-registry)" if opts.real else "fake registries"
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {kind}, "
        f"{TAGS_PER_REPO} small v2s2 tags a repository, concurrency {opts.concurrency}"
    )
    print(f"  {'run':<34}{'refs':>8}{'wall s':>9}{'ms/ref':>9}{'peak MiB':>10}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for size in sizes:
            rows += sweep_real(size, opts, Path(tmp)) if opts.real else sweep(size, opts, Path(tmp))
    verdicts(rows)


if __name__ == "__main__":
    main()
