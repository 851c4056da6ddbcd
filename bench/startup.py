#!/usr/bin/env python3
"""Start-up: this checkout against an older one, side by side, run by the same interpreter.

    .venv/bin/python bench/startup.py [--runs 21] [--base-rev 0a79ecc | --base DIR]

Times two commands whose cost is almost all start-up, as child processes: ``--version``, and
``check`` of a reference on a loopback port where nothing listens (``--retries 0``: refused at
once). The older copy is ``git archive BASE_REV`` unpacked into a temporary folder (or ``--base``,
a checkout such as ``git worktree add /tmp/startup-base 0a79ecc``), put first on ``PYTHONPATH``
for ``python -m oci_normalize``; both are byte-compiled first (``bench/installed.py``). The runs
alternate between the two copies, so a busy machine weighs on both alike. It prints the median
wall time and CPU of each, and their ratio, next to a floor no version of this CLI can go under:
the interpreter importing typer and requests, and nothing else. No timing is a test
(``tests/test_imports.py`` guards what gets imported instead).
"""

from __future__ import annotations

import argparse
import compileall
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.child import run_child  # noqa: E402
from bench.installed import byte_compile  # noqa: E402

#: The last main before issue 19's start-up work.
DEFAULT_BASE_REV: Final = "0a79ecc"
MIN_RUNS: Final = 15
#: Issue 19's targets, seconds (medians).
TARGETS: Final = {"--version": 0.15, "check (unreachable)": 0.2}
EXIT_ERROR: Final = 2
#: What any start of the CLI pays: the interpreter, typer (every command) and requests (every
#: command that talks to a registry).
FLOOR: Final = "import typer, requests"


@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def base_tree(base: Path | None, rev: str) -> Iterator[Path]:
    """The older copy's root: ``base`` as given, or ``rev``'s package unpacked in a temp dir."""
    if base is not None:
        yield base
        return
    with tempfile.TemporaryDirectory(prefix="startup-base-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "oci_normalize"],
            capture_output=True,
            check=True,
        ).stdout
        tar_path = Path(tmp) / "base.tar"
        tar_path.write_bytes(archive)
        with tarfile.open(tar_path) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp)


def child_env(tree: Path, home: Path) -> dict[str, str]:
    """The environment for a run of ``tree``'s package: it first on the path, an empty HOME
    (no credential file to read), nothing else that could change what gets imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "PYTHON"))}
    env.pop("REGISTRY_AUTH_FILE", None)
    env.pop("XDG_RUNTIME_DIR", None)
    env.update(PYTHONPATH=str(tree), HOME=str(home))
    return env


def imported_from(env: dict[str, str], cwd: Path) -> Path:
    code = "import oci_normalize; print(oci_normalize.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip()).parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help=f"runs of each (>= {MIN_RUNS})")
    parser.add_argument("--base-rev", default=DEFAULT_BASE_REV, help="the older commit")
    parser.add_argument("--base", type=Path, help="an existing checkout to compare with instead")
    args = parser.parse_args()
    if args.runs < MIN_RUNS:
        parser.error(f"--runs must be at least {MIN_RUNS}")
    unreachable = f"127.0.0.1:{closed_port()}/bench/nothing:1"
    commands = {
        "--version": (["--version"], 0),
        "check (unreachable)": (["check", "--retries", "0", unreachable], EXIT_ERROR),
    }
    byte_compile()
    # Run from an empty folder: python puts the current one first on the path.
    with base_tree(args.base, args.base_rev) as base, tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        if not compileall.compile_dir(base / "oci_normalize", quiet=1):
            raise SystemExit(f"cannot byte-compile {base}")
        trees = {"base": base, "this": ROOT}
        envs = {name: child_env(tree, home) for name, tree in trees.items()}
        for name, tree in trees.items():  # PYTHONPATH must win over an editable install
            found = imported_from(envs[name], home)
            if found.resolve() != tree.resolve():
                raise SystemExit(f"{name}: python imports oci_normalize from {found}, not {tree}")
        samples = {(c, t): Samples() for c in commands for t in trees}
        floor = Samples()
        for i in range(args.runs):
            order = list(trees) if i % 2 == 0 else list(reversed(trees))
            for command, (argv, code) in commands.items():
                for name in order:
                    run = run_child(
                        [sys.executable, "-m", "oci_normalize", *argv],
                        env=envs[name],
                        cwd=home,
                        expect=code,
                    )
                    samples[command, name].wall.append(run.seconds)
                    samples[command, name].cpu.append(run.cpu_s)
            run = run_child([sys.executable, "-c", FLOOR], env=envs["this"], cwd=home)
            floor.wall.append(run.seconds)
            floor.cpu.append(run.cpu_s)
    load = os.getloadavg()[0]
    print(f"start-up, median of {args.runs} alternating runs; load average {load:.2f}")
    print(f"base: {args.base or args.base_rev}; this: {ROOT}; python {sys.version.split()[0]}")
    print(f"{'command':<22}{'base s':>9}{'this s':>9}{'ratio':>8}{'target':>9}  cpu base/this")
    for command in commands:
        old, new = samples[command, "base"], samples[command, "this"]
        old_s, new_s = statistics.median(old.wall), statistics.median(new.wall)
        cpu = f"{statistics.median(old.cpu):.3f}/{statistics.median(new.cpu):.3f}"
        print(
            f"{command:<22}{old_s:>9.3f}{new_s:>9.3f}{new_s / old_s:>7.2f}×"
            f"{TARGETS[command]:>8.2f}s  {cpu}"
        )
    cpu = f"{statistics.median(floor.cpu):.3f}"
    label = f"floor: {FLOOR}"
    print(f"{label:<31}{statistics.median(floor.wall):>9.3f}{'':>17}  {cpu}")


if __name__ == "__main__":
    main()
