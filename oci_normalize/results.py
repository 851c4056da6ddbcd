"""What the API, ``--json`` lines, the journal and the reports say happened: every status word,
defined once as a ``Literal`` (so a typo fails mypy) with a named constant per word, and the
pydantic result models whose fields carry those types (their keys are the JSON keys).
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

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
#: What happened to a signature, as counted in summaries and reports.
SIGNATURE_ACTIONS: Final = (CARRIED, RESIGNED, LEFT_BEHIND, REFUSED_BY)

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


# ---- results for API callers and --json output -------------------------------------------------


class _Result(BaseModel):
    # Validators are built on first use, not at import: a command pays only for the results it
    # makes (start-up is a large share of a one-image run).
    model_config = ConfigDict(frozen=True, defer_build=True)


class FindingOut(_Result):
    manifest: str
    path: str
    where: str
    media_type: str
    oci_media_type: str | None


class ReferrerOut(_Result):
    """Something that names an old digest: what it is and what happens to it.

    ``kind``: see :data:`ReferrerKind`; ``action``: see :data:`ReferrerAction`. ``new_name`` is
    the re-attached copy's digest or tag.
    """

    subject: str
    new_subject: str | None = None
    kind: ReferrerKind
    name: str
    artifact_type: str | None = None
    signed: bool = False
    action: ReferrerAction
    new_name: str | None = None


class SignRun(_Result):
    """One run of ``--sign-with`` for a manifest whose old digest carried a signature: the
    exact command (shell-quoted, secrets masked; run, or only shown in a dry run) and the
    digests it was given."""

    path: str
    old_digest: str
    new_digest: str
    command: str
    ran: bool = False


class TagMove(_Result):
    """A tag written by a conversion: ``old_digest`` None when the tag is new."""

    tag: str
    role: TagRole
    old_digest: str | None = None
    new_digest: str


class CheckResult(_Result):
    reference: str
    digest: str | None = None
    media_type: str | None = None
    oci: bool = False
    manifests: int = 0
    findings: list[FindingOut] = []
    warnings: list[str] = []
    referrers: list[ReferrerOut] = []
    error: str | None = None
    #: Why REF is an artifact, not an image (Helm chart, signature, plugin…): left alone.
    artifact: str | None = None


class ManifestChange(_Result):
    path: str
    old_digest: str
    new_digest: str
    old_media_type: str
    new_media_type: str
    diff: str


class ConvertResult(_Result):
    source: str
    destination: str
    status: ConvertStatus
    dry_run: bool
    old_digest: str | None = None
    new_digest: str | None = None
    changes: list[ManifestChange] = []
    warnings: list[str] = []
    pushed_manifests: int = 0
    pushed_blobs: int = 0
    mounted_blobs: int = 0
    requests: int = 0
    referrers: list[ReferrerOut] = []
    #: The signed subset of ``referrers``: carried, re-signed, left behind or refused.
    signatures: list[ReferrerOut] = []
    signing: list[SignRun] = []  # --sign-with runs (dry run: what would run)
    tags: list[TagMove] = []
    backup_tag: str | None = None
    error: str | None = None
    artifact: str | None = None  # why SRC is not an image (then nothing is rewritten)


# ---- batch and rollback --------------------------------------------------------------------------


class ManifestMove(_Result):
    path: str
    old_digest: str
    new_digest: str


class RefResult(_Result):
    """The outcome for one batch reference (one ``--json`` line)."""

    reference: str
    repository: str
    tag: str | None = None
    status: BatchStatus
    kind: TreeKind | None = None
    old_digest: str | None = None
    new_digest: str | None = None
    old_media_type: str | None = None
    new_media_type: str | None = None
    moved: list[ManifestMove] = []  # every manifest whose digest changes, root last
    same_digest: list[str] = []  # other tags of the repository that pointed at old_digest
    pushed_manifests: int = 0
    warnings: list[str] = []
    error: str | None = None
    destination: str | None = None  # --to: where the reference was written
    replaced_digest: str | None = None  # --to: what the destination tag held before
    signatures: list[ReferrerOut] = []  # carried, re-signed, left behind or refused
    referrers: list[ReferrerOut] = []  # unsigned ones: reattached, carried, left
    signing: list[SignRun] = []


class BatchSummary(_Result):
    """The final batch ``--json`` line."""

    references: int
    repositories: int
    converted: int
    already_oci: int
    would_convert: int
    failed: int
    artifacts: int = 0
    pushed_manifests: int
    requests: int
    seconds: float
    dry_run: bool
    shard: str | None = None
    journal: str | None = None
    present: int = 0  # --to: already at the destination
    destination: str | None = None
    #: Signatures by what happened to them: carried, re-signed, left-behind, refused.
    signatures: dict[str, int] = {}


class RollbackResult(_Result):
    reference: str
    status: RollbackStatus
    digest: str | None = None  # where the tag points now (after a restore: the original)
    expected: str | None = None  # for a conflict: the digest the batch wrote
    steps: int = 0  # moves undone (several when re-runs converted the tag more than once)
    error: str | None = None
    #: Signatures that name a digest this rollback took the tag off (``--sign-with`` made them):
    #: left in place (``left-behind``), they name a digest no tag points at any more.
    signatures: list[ReferrerOut] = []
