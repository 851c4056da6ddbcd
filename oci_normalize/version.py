"""The installed package's version, read once from its metadata (pyproject.toml is the source)."""

from __future__ import annotations

from importlib import metadata
from typing import Final


def _installed_version() -> str:
    try:
        return metadata.version("oci-normalize")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


VERSION: Final = _installed_version()
