"""Peak memory of ``rollback`` as its journal grows: 10,000 and 100,000 moves.

Not a test: run it by hand (``python bench/rollback.py [--sizes 10000,100000]``). For each
size, a :mod:`bench.fakeregistry` child serves N tags (100 a repository) already converted: each
tag holds the OCI twin a batch makes of its v2s2 image, the original is kept by digest. The
bench writes the journal such a batch would have written (a ``pending`` and a ``converted`` line
a tag, each with the original manifest in base64), then runs, each as a child process:

1. ``rollback J --dry-run --json``: every move proved (its original hashed, the normalizer run
   over its tree, children fetched), nothing pushed; it must report N ``would-restore``;
2. ``rollback J``: every original put back; it must report N restored (the human output, sorted
   by reference, read back from disk).

Peak RSS is the child's own, from GNU time (:func:`bench.child.measured`). Target (issue 19):
peak RSS grows by at most 0.5 KiB a move from the smallest size to the largest.
``--baseline DIR`` runs another checkout (``DIR`` holds its ``oci_normalize``) side by side;
``--dry-run-only`` skips step 2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.child import measured  # noqa: E402
from bench.installed import byte_compile  # noqa: E402
from bench.journals import write_journal  # noqa: E402
from bench.scale import TAGS_PER_REPO, command, fake_registry  # noqa: E402

GROWTH_TARGET_KIB: Final = 0.5


@dataclass
class Row:
    label: str
    moves: int
    seconds: float
    rss_mib: float


def measure(label: str, moves: int, args: list[str], out: Path) -> tuple[Row, str]:
    """Run ``args`` as a child, its stdout to ``out``: the row, and the stdout's last line."""
    start = time.perf_counter()
    with (
        out.open("wb") as stdout,
        measured(args, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT) as (proc, got),
    ):
        assert proc.stderr is not None
        err = proc.stderr.read()  # never more than a line a failed tag; none expected
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(got.status)
    last = out.read_text().rstrip("\n").rsplit("\n", 1)[-1]
    if code != 0:
        raise SystemExit(f"{label}: exit {code}: {err.decode()[-2000:]}\n{last}")
    row = Row(label, moves, seconds, got.rss_kib / 1024)
    print(f"  {label:<34}{moves:>8}{seconds:>9.1f}{row.rss_mib:>10.1f}", flush=True)
    return row, last


def check_dry(last: str, moves: int) -> None:
    summary = json.loads(last)["summary"]
    if summary["would-restore"] != moves or summary["tags"] != moves:
        raise SystemExit(f"dry run did not prove every move: {summary}")


def check_real(last: str, moves: int) -> None:
    if f": {moves} tag(s): {moves} restored, 0 already original" not in last:
        raise SystemExit(f"rollback did not restore every tag: {last}")


def sweep(size: int, opts: argparse.Namespace, work: Path) -> list[Row]:
    repos = max(1, size // TAGS_PER_REPO)
    moves = repos * TAGS_PER_REPO
    rows = []
    contenders: list[tuple[str, Path | None]] = [("", None)]
    if opts.baseline is not None:
        contenders.append((", baseline", opts.baseline))
    for suffix, checkout in contenders:
        with fake_registry(repos, converted=True) as host:
            journal = work / f"journal-{moves}.jsonl"
            size_mib = write_journal(journal, host, repos, TAGS_PER_REPO) / 1024 / 1024
            if not suffix:
                print(f"  journal of {moves} moves: {size_mib:.1f} MiB", flush=True)
            ours = command(checkout)
            row, last = measure(
                f"rollback --dry-run{suffix}",
                moves,
                [*ours, "rollback", str(journal), "--dry-run", "--json"],
                work / "out.txt",
            )
            check_dry(last, moves)
            rows.append(row)
            if not opts.dry_run_only:
                row, last = measure(
                    f"rollback{suffix}", moves, [*ours, "rollback", str(journal)], work / "out.txt"
                )
                check_real(last, moves)
                rows.append(row)
            journal.unlink()
    return rows


def verdict(rows: list[Row]) -> None:
    for label in dict.fromkeys(r.label for r in rows):
        mine = sorted((r for r in rows if r.label == label), key=lambda r: r.moves)
        if len(mine) < 2:
            continue
        small, large = mine[0], mine[-1]
        growth = (large.rss_mib - small.rss_mib) * 1024 / (large.moves - small.moves)
        ok = "ok" if growth <= GROWTH_TARGET_KIB else "OVER"
        print(
            f"{label}: peak {small.rss_mib:.1f} MiB at {small.moves}, {large.rss_mib:.1f} MiB at "
            f"{large.moves}; growth {growth:.3f} KiB/move ({ok} vs {GROWTH_TARGET_KIB})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="moves, comma-separated")
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout")
    parser.add_argument("--dry-run-only", action="store_true", help="skip the real rollback")
    opts = parser.parse_args()
    byte_compile()
    sizes = [int(s) for s in opts.sizes.split(",")]
    print(f"  {'run':<34}{'moves':>8}{'wall s':>9}{'peak MiB':>10}")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-rollback-") as tmp:
        for size in sizes:
            rows += sweep(size, opts, Path(tmp))
    verdict(rows)


if __name__ == "__main__":
    main()
