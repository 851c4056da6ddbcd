"""Run the tool as an installed copy would start: with its modules byte-compiled.

``pip install`` compiles every module to ``__pycache__`` once, at install time. A source checkout
is compiled at first import instead, and not even then where ``PYTHONDONTWRITEBYTECODE`` is set
(as on the CI machines): each start would then pay for compiling the whole package, about 60 ms
measured, which no user pays. The benchmarks call :func:`byte_compile` before timing anything.
"""

from __future__ import annotations

import compileall
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "oci_normalize"


def byte_compile() -> None:
    if not compileall.compile_dir(PACKAGE, quiet=1):
        raise SystemExit(f"cannot byte-compile {PACKAGE}")
