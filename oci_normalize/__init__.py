"""oci-normalize: rewrite Docker media types in registry images to their OCI equivalents.

Python API::

    from oci_normalize import check, convert

    report = check("registry.example/app:1.0")
    if not report.oci:
        result = convert("registry.example/app:1.0", dry_run=True)
        print(result.new_digest, [c.path for c in result.changes])
"""

from __future__ import annotations

from oci_normalize.api import Client, check, convert, plan
from oci_normalize.errors import OciNormalizeError, RefusedError
from oci_normalize.options import ConvertOptions
from oci_normalize.reference import (
    ArchiveRef,
    LayoutRef,
    OciArchiveRef,
    Reference,
    parse_location,
)
from oci_normalize.results import CheckResult, ConvertResult
from oci_normalize.store.registry import ClientOptions
from oci_normalize.version import VERSION

__all__ = [
    "ArchiveRef",
    "CheckResult",
    "Client",
    "ClientOptions",
    "ConvertOptions",
    "ConvertResult",
    "LayoutRef",
    "OciArchiveRef",
    "OciNormalizeError",
    "Reference",
    "RefusedError",
    "check",
    "convert",
    "parse_location",
    "plan",
]
__version__ = VERSION
