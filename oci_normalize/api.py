"""The Python API the CLI is a thin layer over: :func:`check`, :func:`plan`, :func:`convert`.

Each call takes references as strings or :class:`~oci_normalize.reference.Reference` and
returns typed results; failures raise :class:`~oci_normalize.errors.OciNormalizeError`
(``convert`` and ``check`` also return them as ``error`` for batch-style callers that pass
``raise_errors=False``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import requests

from . import diff
from .auth import ANONYMOUS, Credential
from .errors import OciNormalizeError, UnsupportedMediaTypeError
from .models import (
    CheckResult,
    ConvertResult,
    FindingOut,
    ManifestChange,
    Node,
    Plan,
)
from .normalize import find_docker_types, normalize, require_image
from .push import PushStats, push_plan
from .reference import Reference
from .registry import DEFAULT_OPTIONS, ClientOptions, Registry
from .tree import fetch_tree

CredentialLookup = Callable[[str], Credential]


def _anonymous(_registry: str) -> Credential:
    return ANONYMOUS


class Client:
    """Registry clients per host sharing one pooled session; safe to share between threads."""

    def __init__(
        self,
        *,
        options: ClientOptions = DEFAULT_OPTIONS,
        credentials: CredentialLookup = _anonymous,
        pool_size: int = 16,
    ) -> None:
        self.options = options
        self._credentials = credentials
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._registries: dict[str, Registry] = {}
        self._lock = threading.Lock()

    def registry(self, ref: Reference) -> Registry:
        with self._lock:
            reg = self._registries.get(ref.registry)
            if reg is None:
                reg = Registry(
                    ref,
                    options=self.options,
                    credential=self._credentials(ref.registry),
                    session=self._session,
                )
                self._registries[ref.registry] = reg
            return reg

    @property
    def requests(self) -> int:
        with self._lock:
            return sum(r.requests for r in self._registries.values())

    def close(self) -> None:
        self._session.close()


def _as_ref(ref: str | Reference) -> Reference:
    return ref if isinstance(ref, Reference) else Reference.parse(ref)


@dataclass(frozen=True)
class Planned:
    """A fetched tree with its plan (``plan`` is None when the tree cannot be converted)."""

    reference: Reference
    tree: Node
    plan: Plan


def check(ref: str | Reference, *, client: Client | None = None) -> CheckResult:
    """Walk the whole tree under ``ref`` and list every Docker media type in it."""
    reference = _as_ref(ref)
    client = client or Client()
    tree = fetch_tree(client.registry(reference), reference)
    require_image(tree)
    findings = find_docker_types(tree)
    warnings: list[str] = []
    try:
        warnings = list(normalize(tree).warnings)
    except UnsupportedMediaTypeError as exc:
        warnings = [str(exc)]
    return CheckResult(
        reference=str(reference),
        digest=str(tree.digest),
        media_type=tree.media_type,
        oci=not findings,
        manifests=len(tree.walk()),
        findings=[
            FindingOut(
                manifest=str(f.manifest),
                path=f.path,
                where=f.where,
                media_type=f.media_type,
                oci_media_type=f.oci_media_type,
            )
            for f in findings
        ],
        warnings=warnings,
    )


def plan(ref: str | Reference, *, client: Client | None = None) -> Planned:
    """Fetch ``ref``'s tree and plan its OCI-pure version (no writes)."""
    reference = _as_ref(ref)
    client = client or Client()
    tree = fetch_tree(client.registry(reference), reference)
    return Planned(reference=reference, tree=tree, plan=normalize(tree))


def convert(
    src: str | Reference,
    dest: str | Reference | None = None,
    *,
    dry_run: bool = False,
    client: Client | None = None,
) -> ConvertResult:
    """Rewrite ``src`` as OCI, in place or into ``dest``; ``dry_run`` pushes nothing."""
    source = _as_ref(src)
    target = _as_ref(dest) if dest is not None else source
    if dest is None and source.tag is None:
        raise OciNormalizeError(
            f"{source}: converting in place needs a tag to move; give a DEST reference"
        )
    if target.digest is not None:
        raise OciNormalizeError(
            f"{target}: DEST must name a tag (the converted image gets a new digest)"
        )
    client = client or Client()
    before = client.requests
    planned = plan(source, client=client)
    p = planned.plan
    in_place = source.same_repository(target) and (target.tag == source.tag)
    changes = [
        ManifestChange(
            path=n.path,
            old_digest=str(n.old_digest),
            new_digest=str(n.new_digest),
            old_media_type=n.old_media_type,
            new_media_type=n.new_media_type,
            diff=diff.unified(n),
        )
        for n in p.changed
    ]
    nothing_to_do = not p.changed and in_place
    if dry_run or nothing_to_do:
        status = "already-oci" if not p.changed else "would-convert"
        stats = PushStats()
    else:
        guard = p.root.old_digest if (in_place and source.digest is None) else None
        stats = push_plan(
            p,
            source=client.registry(source),
            src=source,
            dest_registry=client.registry(target),
            dest=target,
            guard=guard,
        )
        status = "converted" if p.changed else "copied"
    return ConvertResult(
        source=str(source),
        destination=str(target),
        status=status,
        dry_run=dry_run,
        old_digest=str(p.root.old_digest),
        new_digest=str(p.root.new_digest),
        changes=changes,
        warnings=list(p.warnings),
        pushed_manifests=stats.manifests,
        pushed_blobs=stats.blobs_uploaded,
        mounted_blobs=stats.blobs_mounted,
        requests=client.requests - before,
    )
