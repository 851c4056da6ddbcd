"""Validate manifests and indexes against the official OCI image-spec v1.1.1 JSON schemas.

They are read from ``$OCI_SCHEMA_DIR``, else the team's shared copy beside the checkout
(``../shared/oci-image-spec-v1.1.1``), else the unchanged copy vendored under ``fixtures/``
(Apache-2.0, with its LICENSE), so a bare clone validates too.

The schemas are draft-04 and refer to each other by relative file names under several
``id`` bases; every such reference is resolved to the local file of the same name.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from oci_normalize import mediatypes as mt

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = [
    Path(os.environ["OCI_SCHEMA_DIR"]) if os.environ.get("OCI_SCHEMA_DIR") else None,
    ROOT.parent / "shared" / "oci-image-spec-v1.1.1",
    ROOT / "fixtures" / "oci-image-spec-v1.1.1",
]
SCHEMA_FOR = {
    mt.OCI_MANIFEST: "image-manifest-schema.json",
    mt.OCI_INDEX: "image-index-schema.json",
    mt.OCI_CONFIG: "config-schema.json",
}


def schema_dir() -> Path | None:
    for cand in CANDIDATES:
        if cand is not None and (cand / "image-manifest-schema.json").is_file():
            return cand
    return None


@cache
def _registry() -> Registry:
    base = schema_dir()
    assert base is not None, "OCI schemas not found (set OCI_SCHEMA_DIR)"

    def retrieve(uri: str) -> Resource:
        name = uri.rstrip("/").rsplit("/", 1)[-1].split("#", 1)[0]
        return Resource.from_contents(json.loads((base / name).read_text()), DRAFT4)

    return Registry(retrieve=retrieve)  # type: ignore[call-arg]


def validate(doc: dict[str, Any], media_type: str) -> None:
    """Raise jsonschema.ValidationError when ``doc`` breaks the schema for ``media_type``."""
    base = schema_dir()
    assert base is not None, "OCI schemas not found (set OCI_SCHEMA_DIR)"
    name = SCHEMA_FOR[media_type]
    schema = json.loads((base / name).read_text())
    validator = jsonschema.Draft4Validator(schema, registry=_registry())
    validator.validate(doc)
