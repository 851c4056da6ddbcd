"""oci-normalize: rewrite Docker media types in registry images to their OCI equivalents.

Python API::

    from oci_normalize import check, convert

    report = check("registry.example/app:1.0")
    if not report.oci:
        result = convert("registry.example/app:1.0", dry_run=True)
        print(result.new_digest, [c.path for c in result.changes])

Each name below is loaded on first use: importing a submodule (``python -m oci_normalize``, the
command line) does not load the whole API with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # the same names at run time, through __getattr__ below
    from oci_normalize.api import Client, check, convert, plan
    from oci_normalize.errors import OciNormalizeError, RefusedError
    from oci_normalize.options import ClientOptions, ConvertOptions
    from oci_normalize.reference import (
        ArchiveRef,
        LayoutRef,
        OciArchiveRef,
        Reference,
        parse_location,
    )
    from oci_normalize.result_models import CheckResult, ConvertResult

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

#: Where each public name lives (``__version__``: the installed package's version).
_HOMES: Final = {
    "ArchiveRef": "oci_normalize.reference",
    "CheckResult": "oci_normalize.result_models",
    "Client": "oci_normalize.api",
    "ClientOptions": "oci_normalize.options",
    "ConvertOptions": "oci_normalize.options",
    "ConvertResult": "oci_normalize.result_models",
    "LayoutRef": "oci_normalize.reference",
    "OciArchiveRef": "oci_normalize.reference",
    "OciNormalizeError": "oci_normalize.errors",
    "Reference": "oci_normalize.reference",
    "RefusedError": "oci_normalize.errors",
    "check": "oci_normalize.api",
    "convert": "oci_normalize.api",
    "parse_location": "oci_normalize.reference",
    "plan": "oci_normalize.api",
}

# The function convert shares its name with the subpackage convert, which an import binds here
# as an attribute when it first loads it: load it now (it is empty) and drop that attribute, so
# that this module's convert is always the function.
importlib.import_module("oci_normalize.convert")
del globals()["convert"]

if TYPE_CHECKING:
    __version__: str
else:

    def __getattr__(name: str) -> Any:
        if name == "__version__":
            from oci_normalize.version import VERSION as value
        elif name in _HOMES:
            value = getattr(importlib.import_module(_HOMES[name]), name)
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value  # later look-ups are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__, "__version__"})
