"""Human-readable diffs of manifest changes (pure)."""

from __future__ import annotations

import difflib
import json

from oci_normalize.models import PlannedNode


def pretty(data: bytes) -> list[str]:
    """Manifest bytes as indented JSON lines, key order kept, for reading and diffing."""
    try:
        text = json.dumps(json.loads(data), indent=2, ensure_ascii=False)
    except ValueError:
        text = data.decode("utf-8", "replace")
    return text.splitlines(keepends=False)


def unified(node: PlannedNode) -> str:
    """A unified diff of the node's old and new JSON, labelled with both digests."""
    lines = difflib.unified_diff(
        pretty(node.old_data),
        pretty(node.new_data),
        fromfile=f"{node.path} {node.old_digest} ({node.old_media_type})",
        tofile=f"{node.path} {node.new_digest} ({node.new_media_type})",
        lineterm="",
        n=2,
    )
    return "\n".join(lines)
