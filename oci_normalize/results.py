"""What the API, ``--json`` lines, the journal and the reports say happened: every status word,
defined once as a ``Literal`` (so a typo fails mypy) with a named constant per word. The
pydantic result models whose fields carry those types are in :mod:`.result_models`.

The words cost nothing to import. The models live in :mod:`.result_models`, imported where a
result is built: a command that builds no result (``--version``, a ``check`` that cannot reach
its registry) never loads pydantic. A conversion that copies blobs starts loading them on a
thread of their own once every blob is streaming (:func:`preload_result_models`, called through
``push.execute(streaming=…)``), so that import overlaps the writes' waits on the network instead
of coming before its first request or after its last.
"""

from __future__ import annotations

import sys
import threading
from typing import Final, Literal

_MODELS: Final = "oci_normalize.result_models"

# ---- status words -------------------------------------------------------------------------------

CONVERTED: Final = "converted"
ALREADY_OCI: Final = "already-oci"
COPIED: Final = "copied"  # convert SRC DEST of an image that needed no rewrite
WOULD_CONVERT: Final = "would-convert"
WOULD_REFUSE: Final = "would-refuse"
ARTIFACT: Final = "artifact"  # not an image (Helm chart, signature, plugin…): left alone
FAILED: Final = "failed"
PENDING: Final = "pending"  # journal only: about to move the tag
PRESENT: Final = "present"  # --to: the destination tag already holds the converted digest
RESTORED: Final = "restored"
WOULD_RESTORE: Final = "would-restore"
UNCHANGED: Final = "unchanged"
CONFLICT: Final = "conflict"

#: ``convert``'s outcome (``refused`` and ``error`` are the CLI's ``--json`` line on failure).
ConvertStatus = Literal[
    "converted", "already-oci", "copied", "would-convert", "would-refuse", "refused", "artifact",
    "error",
]  # fmt: skip
#: One batch reference's outcome; also the journal's ``status`` (``pending`` before a move).
BatchStatus = Literal[
    "converted", "already-oci", "would-convert", "failed", "artifact", "pending", "present"
]
RollbackStatus = Literal["restored", "would-restore", "unchanged", "conflict", "failed"]
#: Journal statuses that mean "this run may have moved the tag": rollback candidates.
MOVED: Final[frozenset[BatchStatus]] = frozenset({PENDING, CONVERTED})

# ---- what happens to something that points at an old digest ------------------------------------

REFUSED_BY: Final = "refused"  # signed, subject changes: the reference is refused
LEFT_BEHIND: Final = "left-behind"  # signed, subject changes, --break-signatures: stays behind
RESIGNED: Final = "re-signed"  # signed, subject changes: --sign-with signed the new digest
WOULD_RESIGN: Final = "would-re-sign"
CARRIED: Final = "carried"  # subject unchanged: travels with the image to its destination
WOULD_CARRY: Final = "would-carry"
WOULD_REATTACH: Final = "would-reattach"
REATTACHED: Final = "reattached"  # unsigned: a copy names the new digest
LEFT: Final = "left"  # unsigned but --no-referrers
ANNOTATION_UPDATED: Final = "annotation-updated"  # a buildkit index entry follows the digest
ReferrerAction = Literal[
    "refused", "left-behind", "re-signed", "would-re-sign", "carried", "would-carry",
    "would-reattach", "reattached", "left", "annotation-updated",
]  # fmt: skip

# ---- what points at a digest (the ``kind`` of a referrer) -------------------------------------

COSIGN_SIGNATURE: Final = "cosign-signature"
COSIGN_ATTESTATION: Final = "cosign-attestation"
COSIGN_SBOM: Final = "cosign-sbom"  # also the role of the tag a cosign sbom is re-attached by
OCI_REFERRER: Final = "referrer"
BUILDKIT_ATTESTATION: Final = "buildkit-attestation"
ReferrerKind = Literal[
    "cosign-signature", "cosign-attestation", "cosign-sbom", "referrer", "buildkit-attestation"
]

# ---- tags a conversion writes --------------------------------------------------------------------

TAG: Final = "tag"  # the converted tag itself
BACKUP: Final = "backup"
REFERRERS_FALLBACK: Final = "referrers-fallback"
TagRole = Literal[
    "tag", "backup", "referrers-fallback", "cosign-signature", "cosign-attestation", "cosign-sbom"
]

# ---- what a tree was ----------------------------------------------------------------------------

KIND_OCI: Final = "oci"
KIND_DOCKER: Final = "docker"  # no OCI type anywhere
KIND_MIXED: Final = "mixed"  # both kinds in one tree
KIND_ARTIFACT: Final = "artifact"
TreeKind = Literal["oci", "docker", "mixed", "artifact"]


def preload_result_models() -> None:
    """Import :mod:`.result_models` (and pydantic) on a background thread, unless it is
    loaded already. A later ``import`` of it waits for that thread to finish the module (the
    import system's per-module lock), so nothing ever sees it half-built. The thread is not a
    daemon: a process that exits early waits for the import to end rather than being cut off
    inside it. A failed import is left for that later import to report."""
    if _MODELS in sys.modules:
        return

    def load() -> None:
        import contextlib
        import importlib

        with contextlib.suppress(Exception):  # the import where the models are used raises it
            importlib.import_module(_MODELS)

    threading.Thread(target=load, name="preload-results").start()
