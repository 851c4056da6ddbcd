"""Sweeping a registry: targets, the concurrent run, the journal, rollback and reports."""

from __future__ import annotations

from typing import Final

#: References worked on at once (a light module: the CLI reads these without the batch stack).
DEFAULT_CONCURRENCY: Final = 8
MAX_CONCURRENCY: Final = 64
