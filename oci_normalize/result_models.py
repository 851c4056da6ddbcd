"""The pydantic result models: what the API returns and ``--json``, the journal and the reports
print. Their fields carry the status words' ``Literal`` types from :mod:`.results`, and their keys
are the JSON keys.

Import them from :mod:`.results` (which loads this module on first use) or from here: only a
command that builds a result pays for pydantic.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from oci_normalize.results import (
    BatchStatus,
    ConvertStatus,
    ReferrerAction,
    ReferrerKind,
    RollbackStatus,
    TagRole,
    TreeKind,
)

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
