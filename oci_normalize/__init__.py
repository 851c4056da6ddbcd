"""oci-normalize: rewrite Docker media types in registry images to their OCI equivalents.

Python API::

    from oci_normalize import check, convert
    report = check("registry.example/app:1.0")
    if not report.oci:
        result = convert("registry.example/app:1.0", dry_run=True)
        print(result.new_digest, [c.path for c in result.changes])
"""

from __future__ import annotations

from .api import Client, check, convert, plan
from .errors import OciNormalizeError, RefusedError
from .inplace import ConvertOptions
from .models import CheckResult, ConvertResult
from .reference import ArchiveRef, LayoutRef, Reference, parse_location
from .registry import ClientOptions

__all__ = [
    "ArchiveRef",
    "CheckResult",
    "Client",
    "ClientOptions",
    "ConvertOptions",
    "ConvertResult",
    "LayoutRef",
    "OciNormalizeError",
    "Reference",
    "RefusedError",
    "check",
    "convert",
    "parse_location",
    "plan",
]
__version__ = "0.1.0"
