"""Defaults of ``serve``'s options, in a module light enough for the CLI to import at start."""

from __future__ import annotations

from typing import Final

DEFAULT_LISTEN: Final = "127.0.0.1:8080"
DEFAULT_STATE: Final = ".oci-normalize-serve"
DEFAULT_GRACE: Final = "20s"
DEFAULT_RECONCILE: Final = "1h"
DEFAULT_SERVE_CONCURRENCY: Final = 4
MAX_SERVE_CONCURRENCY: Final = 64
DEFAULT_MAX_ATTEMPTS: Final = 5
