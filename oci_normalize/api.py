"""The Python API the CLI is a thin layer over: :func:`check`, :func:`plan`, :func:`convert`.

Each call takes a location as a string (a registry reference, ``oci:PATH[:TAG]``,
``oci-archive:PATH[:REF]``, ``docker-archive:PATH[:REF]``) or a parsed one, and returns a
typed result; failures raise :class:`~oci_normalize.errors.OciNormalizeError`. Pass one
:class:`Client` to several calls to share connections and tokens; without one, each call makes
its own and closes it.

The result models (pydantic) and the layout and archive stores are imported where they are
used: a call that fails before it has a result, or reads a registry only, loads neither. The
planner, pipeline and writer are imported by the calls that plan: ``check`` loads them only once
it has read a tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

from oci_normalize import mediatypes as mt
from oci_normalize.convert.normalize import (
    artifact_reason,
    find_docker_types,
    normalize,
    require_image,
)
from oci_normalize.convert.tree import fetch_tree
from oci_normalize.digest import Digest
from oci_normalize.errors import (
    OciNormalizeError,
    RefusedError,
    RegistryError,
    UnsupportedMediaTypeError,
)
from oci_normalize.options import DEFAULT_CONVERT_OPTIONS, ConvertOptions
from oci_normalize.reference import (
    ArchiveRef,
    LayoutRef,
    Location,
    OciArchiveRef,
    Reference,
    parse_location,
    same_repository,
)
from oci_normalize.results import (
    ALREADY_OCI,
    ARTIFACT,
    CONVERTED,
    COPIED,
    WOULD_CONVERT,
    WOULD_REFUSE,
    ConvertStatus,
    preload_result_models,
)

# Client is part of this API; it lives in its own module (the batch modules import it there).
from oci_normalize.store.client import Client as Client

if TYPE_CHECKING:
    from oci_normalize.convert.planner import Outcome, Source
    from oci_normalize.manifest import VerifiedManifest
    from oci_normalize.models import Node, Plan
    from oci_normalize.result_models import CheckResult, ConvertResult, ReferrerOut

#: The tag an untagged ``oci:PATH`` destination gets, as a registry reference would.
DEFAULT_LAYOUT_TAG: Final = "latest"


@contextmanager
def _client_for(client: Client | None) -> Iterator[Client]:
    """The caller's client as it is, or a fresh one closed (temp files and all) afterwards."""
    if client is not None:
        yield client
        return
    with Client() as own:
        yield own


def _as_ref(ref: str | Location) -> Location:
    return parse_location(ref) if isinstance(ref, str) else ref


def check(ref: str | Location, *, client: Client | None = None) -> CheckResult:
    """Walk the whole tree under ``ref`` and list every Docker media type in it."""
    reference = _as_ref(ref)
    if isinstance(reference, ArchiveRef):
        return _check_archive(reference)
    with _client_for(client) as c:
        return _check(reference, c)


def _check(reference: Location, client: Client) -> CheckResult:
    tree = fetch_tree(client.store(reference), reference)
    from oci_normalize.result_models import CheckResult, FindingOut  # a tree was read: a result

    require_image(tree)
    artifact = artifact_reason(tree)
    if artifact is not None:
        return CheckResult(
            reference=str(reference),
            digest=str(tree.digest),
            media_type=tree.media_type,
            manifests=len(tree.walk()),
            artifact=artifact,
        )
    findings = find_docker_types(tree)
    warnings: list[str] = []
    referrers: list[ReferrerOut] = []
    schema1 = [n for n in tree.walk() if mt.is_schema1(n.media_type)]
    try:
        p = normalize(tree)
        warnings = list(p.warnings)
    except UnsupportedMediaTypeError as exc:
        warnings = [str(exc)]
        if schema1 and "schema1" in str(exc):
            warnings = [
                f"{n.path} {n.digest.short}: Docker schema1 manifest; convert rebuilds it as "
                "OCI (a new config from its history; every layer is streamed for its diff_id)"
                for n in schema1
            ]
    else:
        if isinstance(reference, Reference):
            try:
                referrers = _seen_referrers(client, reference, tree, p)
            except RegistryError as exc:
                warnings.append(f"could not list what points at the image's digests: {exc}")
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
        referrers=referrers,
    )


def _seen_referrers(client: Client, reference: Reference, tree: Node, p: Plan) -> list[ReferrerOut]:
    """Everything that names a manifest of the tree, and what a conversion would do to it
    (with the default options: a signature whose digest changes would be invalidated)."""
    from oci_normalize.convert import pipeline, planner  # a tree was read

    options = DEFAULT_CONVERT_OPTIONS
    source = planner.Source(reference, tree, p)
    found = pipeline.attach(client, source, same_repo=False, options=options, dry_run=True)
    return list(planner.seen(found, options))


def _check_archive(ref: ArchiveRef) -> CheckResult:
    """A docker-archive is Docker's format by definition: name its config and layers."""
    from oci_normalize.result_models import CheckResult, FindingOut
    from oci_normalize.store import archive

    image, config = archive.inspect(ref)
    docker_findings = [("config", mt.DOCKER_CONFIG, mt.OCI_CONFIG)] + [
        (f"layers[{i}]", mt.DOCKER_LAYER_TAR, mt.OCI_LAYER_GZIP) for i in range(len(image.layers))
    ]
    image_id = str(Digest.of(config))
    return CheckResult(
        reference=str(ref),
        digest=image_id,
        media_type="docker-archive",
        oci=False,
        manifests=1,
        findings=[
            FindingOut(manifest=image_id, path="@", where=w, media_type=m, oci_media_type=o)
            for w, m, o in docker_findings
        ],
        warnings=[f"{ref}: convert builds an OCI image (layers gzipped, config kept)"],
    )


def plan(ref: str | Location, *, client: Client | None = None) -> Source:
    """Fetch ``ref``'s tree and plan its OCI-pure version (no writes).

    Schema1 manifests are planned too: their layers are streamed once for their diff_ids.
    """
    from oci_normalize.convert import pipeline

    reference = _as_ref(ref)
    with _client_for(client) as c:
        return pipeline.read(c.store(reference), reference)


def _in_place_target(source: Location, client: Client) -> Location:
    if isinstance(source, ArchiveRef):
        raise OciNormalizeError(f"{source}: a docker-archive is read-only; give a DEST")
    if isinstance(source, LayoutRef | OciArchiveRef) and source.tag is None:
        from oci_normalize.store.layout import Layout
        from oci_normalize.store.ociarchive import OciArchiveStore

        layout = client.store(source)
        assert isinstance(layout, Layout | OciArchiveStore)
        tag = layout.sole_tag()
        if tag is None:
            raise OciNormalizeError(
                f"{source}: the layout's only image has no tag to move; give DEST oci:PATH:TAG"
            )
        return source.with_tag(tag)
    if source.tag is None:
        raise OciNormalizeError(
            f"{source}: converting in place needs a tag to move; give a DEST reference"
        )
    return source


def convert(
    src: str | Location,
    dest: str | Location | None = None,
    *,
    dry_run: bool = False,
    client: Client | None = None,
    options: ConvertOptions = DEFAULT_CONVERT_OPTIONS,
    root: VerifiedManifest | None = None,
) -> ConvertResult:
    """Rewrite ``src`` as OCI, in place or into ``dest``; ``dry_run`` pushes nothing.

    ``src`` and ``dest`` are registry references, ``oci:PATH[:TAG]`` layouts (an untagged
    destination layout gets ``latest``) or, as a source only, ``docker-archive:PATH[:REF]``.

    What names the image's manifests follows the planner's rules
    (:mod:`oci_normalize.convert.planner`), the same on every path: a signature whose digest
    changes makes it refuse (:class:`~oci_normalize.errors.RefusedError`) unless
    ``options.sign_with`` re-signs the new digest before the tag moves or
    ``options.break_signatures`` leaves it behind; what keeps its digest travels with the
    image; unsigned referrers follow the new digest unless ``not options.referrers``;
    ``options.backup_tag`` (in place) tags the original first.

    ``root``: ``src``'s root manifest as the caller already read it from that registry (a
    :class:`~oci_normalize.manifest.VerifiedManifest`, so its bytes match its digest), which
    saves reading it again; it must be what ``src`` names (for a digest reference, that digest).
    The tag is still moved only from that digest (the guard), as if it had been read here.
    """
    source = _as_ref(src)
    if root is not None and (
        not isinstance(source, Reference)
        or (source.digest is not None and root.digest != source.digest)
    ):
        raise OciNormalizeError(f"{source}: the root given is not what it names")
    with _client_for(client) as c:
        try:
            return _convert(source, dest, dry_run=dry_run, client=c, options=options, root=root)
        finally:
            c.release(source)


def _convert(
    source: Location,
    dest: str | Location | None,
    *,
    dry_run: bool,
    client: Client,
    options: ConvertOptions,
    root: VerifiedManifest | None = None,
) -> ConvertResult:
    if dest is None:
        source = target = _in_place_target(source, client)
    else:
        target = _as_ref(dest)
        if isinstance(target, ArchiveRef):
            raise OciNormalizeError(
                f"{target}: cannot write a docker-archive; use oci:PATH or oci-archive:PATH"
            )
        if isinstance(target, LayoutRef | OciArchiveRef) and target.tag is None:
            target = target.with_tag(DEFAULT_LAYOUT_TAG)
    if target.digest is not None:
        raise OciNormalizeError(
            f"{target}: DEST must name a tag (the converted image gets a new digest)"
        )
    from oci_normalize.convert import diff, pipeline, planner
    from oci_normalize.convert.push import PushStats

    before = client.requests
    in_place = same_repository(source, target) and (target.tag == source.tag)
    if options.backup_tag is not None and not in_place:
        raise OciNormalizeError(f"{source}: --backup-tag applies to in-place conversion only")
    signer = pipeline.Signer.of(options)
    src = pipeline.read(client.store(source), source, root)
    same = same_repository(source, target)
    src = pipeline.attach(client, src, same_repo=same, options=options, dry_run=dry_run)
    tgt = pipeline.read_target(client, src, target, options=options, read_tag=False)
    outcome = planner.plan(src, tgt, options, dry_run=dry_run)
    p = src.plan
    if outcome.refusal and not dry_run:
        raise RefusedError(
            outcome.refusal, details=tuple(r.model_dump() for r in outcome.referrers)
        )
    warnings = list(p.warnings)
    nothing_to_do = not p.changed and in_place
    status: ConvertStatus
    stats = PushStats()
    if p.artifact is not None and (dry_run or nothing_to_do):
        status = ARTIFACT
    elif dry_run or nothing_to_do:
        rebuilt = p.changed or isinstance(source, ArchiveRef)  # an archive is Docker's format
        status = WOULD_CONVERT if rebuilt else ALREADY_OCI
        if outcome.refusal:
            status = WOULD_REFUSE
            warnings.append(outcome.refusal)
    else:
        stats = pipeline.write(
            client,
            outcome,
            source=source,
            target=target,
            options=options,
            signer=signer,
            # The result models load while the blobs stream: off the first request's path,
            # and not fighting the blob threads for the interpreter while they set up.
            streaming=preload_result_models,
        )
        if isinstance(target, OciArchiveRef):  # the one store that writes at the end
            from oci_normalize.store.ociarchive import OciArchiveStore

            dest_store = client.store(target)
            assert isinstance(dest_store, OciArchiveStore)
            dest_store.commit()  # the new tar replaces PATH only now, whole
        status = CONVERTED if p.changed or isinstance(source, ArchiveRef) else COPIED
        status = ARTIFACT if p.artifact is not None else status
    from oci_normalize.result_models import ConvertResult, ManifestChange

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
    warnings += _left_behind(outcome)
    # A docker-archive holds no manifest: the one served was built from it, so no old digest.
    old_digest = None if isinstance(source, ArchiveRef) else str(p.root.old_digest)
    return ConvertResult(
        source=str(source),
        destination=str(target),
        status=status,
        dry_run=dry_run,
        old_digest=old_digest,
        new_digest=str(p.root.new_digest),
        changes=changes,
        warnings=warnings,
        pushed_manifests=stats.manifests,
        pushed_blobs=stats.blobs_uploaded,
        mounted_blobs=stats.blobs_mounted,
        requests=client.requests - before,
        referrers=list(outcome.referrers),
        signatures=list(outcome.signatures),
        signing=pipeline.sign_runs(outcome, signer, ran=not dry_run and status != ARTIFACT),
        tags=list(outcome.tags),
        backup_tag=tgt.backup_tag,
        artifact=p.artifact,
    )


def _left_behind(outcome: Outcome) -> list[str]:
    left = [r.name for r in outcome.signatures if r.action == "left-behind"]
    if not left:
        return []
    return [
        f"{len(left)} signature(s) left behind on the old digest (they no longer verify for "
        f"the new one): {', '.join(left)}"
    ]
