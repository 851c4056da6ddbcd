"""The journal a batch converting a :mod:`bench.fakeregistry` in place would have written.

Shared by the benches that need one without running that batch first: :mod:`bench.rollback`
(every move to undo) and :mod:`bench.scale` (a resume from a journal of a million lines).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from bench.fakeregistry import OCI_MANIFEST, V2S2, images, oci_twin, sha256


def write_journal(path: Path, host: str, repos: int, tags: int) -> int:
    """The journal of a batch that converted every tag of a fake registry of ``repos`` x
    ``tags`` at ``host`` in place (a ``pending`` and a ``converted`` line a tag, each with the
    original manifest in base64, in :mod:`oci_normalize.batch.journal`'s format); its size."""
    with path.open("w") as fh:
        for image in images(repos, tags):
            line = {
                "v": 1,
                "run": "bench",
                "time": "2026-12-02T00:00:00.000+00:00",
                "reference": f"{host}/{image.repo}:{image.tag}",
                "old_digest": sha256(image.manifest),
                "old_media_type": V2S2,
                "old_manifest": base64.b64encode(image.manifest).decode(),
                "new_digest": sha256(oci_twin(image.manifest)),
                "new_media_type": OCI_MANIFEST,
                "error": None,
            }
            for status in ("pending", "converted"):
                fh.write(json.dumps({**line, "status": status}, separators=(",", ":")) + "\n")
    return path.stat().st_size
