"""The one planner, in process: the rule table for what names an image, on every path, and the
write list it returns (order, guard, sign runs, refusals). Pure: trees from the golden fixtures,
no store, no network."""

from __future__ import annotations

import json

from oci_normalize import mediatypes as mt
from oci_normalize.convert import planner
from oci_normalize.convert.normalize import normalize
from oci_normalize.convert.planner import Attached, Source, Target
from oci_normalize.digest import Digest
from oci_normalize.manifest import VerifiedManifest
from oci_normalize.models import Blob, Node
from oci_normalize.options import ConvertOptions
from oci_normalize.reference import Reference
from oci_normalize.results import COSIGN_SBOM, COSIGN_SIGNATURE, OCI_REFERRER
from oci_normalize.store.referrers import Referrer, cosign_tag, fallback_tag
from tests.test_normalize import case_tree

SRC = Reference.parse("src.example/team/app:v1")
DEST = Reference.parse("dest.example/mirror/app:v1")
SIGN = ConvertOptions(sign_with="signer --key k {ref}")


def _manifest(extra: dict[str, object]) -> VerifiedManifest:
    body = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": str(Digest.of(b"{}")),
            "size": 2,
        },
        "layers": [],
        **extra,
    }
    data = json.dumps(body).encode()
    return VerifiedManifest(data, mt.OCI_MANIFEST, Digest.of(data))


EMPTY = Blob(Digest.of(b"{}"), 2, "application/vnd.oci.empty.v1+json")


def cosign_sig(subject: Digest) -> Attached:
    got = _manifest({"annotations": {"for": str(subject)}})
    ref = Referrer(subject, COSIGN_SIGNATURE, cosign_tag(subject, COSIGN_SIGNATURE), signed=True)
    return Attached(ref, got, Node(got.digest, got.media_type, got.data, blobs=(EMPTY,)))


def cosign_sbom(subject: Digest) -> Attached:
    got = _manifest({"annotations": {"sbom": str(subject)}})
    ref = Referrer(subject, COSIGN_SBOM, cosign_tag(subject, COSIGN_SBOM), signed=False)
    return Attached(ref, got, Node(got.digest, got.media_type, got.data))


def oci_referrer(subject: Digest, artifact_type: str, *, signed: bool) -> Attached:
    got = _manifest(
        {
            "artifactType": artifact_type,
            "subject": {"mediaType": mt.OCI_MANIFEST, "digest": str(subject), "size": 1},
        }
    )
    ref = Referrer(
        subject, OCI_REFERRER, str(got.digest), signed, artifact_type, got.digest, mt.OCI_MANIFEST
    )
    return Attached(ref, got, Node(got.digest, got.media_type, got.data))


def source(case: str, *attached_for: object) -> Source:
    tree = case_tree(case)
    return Source(SRC, tree, normalize(tree))


def with_attached(src: Source, *attached: Attached) -> Source:
    return Source(src.location, src.tree, src.plan, tuple(attached))


def in_place(src: Source, **kw: object) -> Target:
    return Target(SRC, in_place=True, tag_now=src.plan.root.old_digest, tag_read=True, **kw)  # type: ignore[arg-type]


def elsewhere(**kw: object) -> Target:
    return Target(DEST, in_place=False, **kw)  # type: ignore[arg-type]


def actions(outcome: planner.Outcome) -> list[tuple[str, str]]:
    return [(r.name, r.action) for r in outcome.referrers]


# ---- the rule table ---------------------------------------------------------------------------


def test_in_place_a_signature_on_a_digest_that_changes_refuses_and_writes_nothing() -> None:
    src = source("docker-v2s2")
    sig = cosign_sig(src.plan.root.old_digest)
    out = planner.plan(with_attached(src, sig), in_place(src), ConvertOptions())
    assert out.refusal is not None and sig.referrer.name in out.refusal
    assert actions(out) == [(sig.referrer.name, "refused")]
    assert out.writes.tag is None and not out.writes.children and not out.writes.hooks


def test_sign_with_stands_in_for_refusing_and_runs_before_the_tag() -> None:
    src = source("docker-v2s2")
    root = src.plan.root
    out = planner.plan(with_attached(src, cosign_sig(root.old_digest)), in_place(src), SIGN)
    assert out.refusal is None
    assert [a for _, a in actions(out)] == ["re-signed"]
    [step] = out.writes.hooks
    assert (step.old_digest, step.new_digest) == (root.old_digest, root.new_digest)
    assert (step.registry, step.repository, step.tag) == ("src.example", "team/app", "v1")
    # the root is pushed by digest before the hook can sign it, and the guard re-reads the tag
    assert [p.ref for p in out.writes.children] == [str(root.new_digest)]
    assert out.writes.guard is not None and out.writes.guard.expected == root.old_digest
    assert out.writes.tag is not None and out.writes.tag.ref == "v1"
    # the old signature is not copied anywhere: it stays valid on the old digest
    assert not out.writes.referrers


def test_sign_runs_go_children_before_parents_once_per_signed_manifest() -> None:
    src = source("docker-list")
    nodes = src.plan.nodes
    attached = [cosign_sig(n.old_digest) for n in reversed(nodes)]  # listed parents first
    attached.append(cosign_sig(nodes[0].old_digest))  # twice for one child: one run
    out = planner.plan(with_attached(src, *attached), in_place(src), SIGN)
    assert [s.old_digest for s in out.writes.hooks] == [n.old_digest for n in nodes]
    assert out.writes.hooks[-1].path == "@"


def test_break_signatures_leaves_them_behind_and_says_so() -> None:
    src = source("docker-v2s2")
    sig = cosign_sig(src.plan.root.old_digest)
    options = ConvertOptions(break_signatures=True)
    out = planner.plan(with_attached(src, sig), in_place(src), options)
    assert out.refusal is None and actions(out) == [(sig.referrer.name, "left-behind")]
    assert not out.writes.hooks and not out.writes.referrers
    assert [s.action for s in out.signatures] == ["left-behind"]


def test_elsewhere_a_signature_whose_digest_stays_is_carried_with_its_blobs() -> None:
    src = source("already-oci")
    sig = cosign_sig(src.plan.root.old_digest)
    out = planner.plan(with_attached(src, sig), elsewhere(), ConvertOptions())
    assert actions(out) == [(sig.referrer.name, "carried")]
    [put] = out.writes.referrers
    assert (put.ref, put.data) == (sig.referrer.name, sig.manifest.data if sig.manifest else b"")
    # the image's blobs and the signature's config travel in one blob list
    assert EMPTY in out.writes.blobs


def test_elsewhere_a_signature_already_at_the_destination_is_not_written_again() -> None:
    src = source("already-oci")
    sig = cosign_sig(src.plan.root.old_digest)
    out = planner.plan(
        with_attached(src, sig), elsewhere(tags=frozenset({sig.referrer.name})), ConvertOptions()
    )
    assert actions(out) == [(sig.referrer.name, "carried")] and not out.writes.referrers


def test_elsewhere_a_signature_whose_digest_changes_refuses_as_in_place() -> None:
    src = source("docker-v2s2")
    sig = cosign_sig(src.plan.root.old_digest)
    out = planner.plan(with_attached(src, sig), elsewhere(), ConvertOptions())
    assert out.refusal is not None and out.writes.tag is None and not out.writes.blobs


def test_elsewhere_an_index_with_an_unchanged_signed_child_carries_it_and_resigns_the_rest() -> (
    None
):
    src = source("docker-list-oci-children")
    unchanged = [n for n in src.plan.nodes if not n.changed]
    changed = [n for n in src.plan.nodes if n.changed]
    assert unchanged and changed  # the fixture: OCI children under a Docker list
    sigs = [cosign_sig(n.old_digest) for n in src.plan.nodes]
    out = planner.plan(with_attached(src, *sigs), elsewhere(), SIGN)
    by_subject = {r.subject: r.action for r in out.referrers}
    assert {by_subject[str(n.old_digest)] for n in unchanged} == {"carried"}
    assert {by_subject[str(n.old_digest)] for n in changed} == {"re-signed"}
    assert [s.old_digest for s in out.writes.hooks] == [n.old_digest for n in changed]


def test_an_unsigned_referrer_follows_the_new_digest_with_a_fallback_index() -> None:
    src = source("docker-v2s2")
    root = src.plan.root
    sbom = oci_referrer(root.old_digest, "application/spdx+json", signed=False)
    out = planner.plan(with_attached(src, sbom), in_place(src), ConvertOptions())
    copy, fallback = out.writes.referrers
    assert json.loads(copy.data)["subject"]["digest"] == str(root.new_digest)
    assert fallback.ref == fallback_tag(root.new_digest) and fallback.role == "referrers-fallback"
    listed = json.loads(fallback.data)["manifests"]
    assert [m["digest"] for m in listed] == [copy.ref]
    assert actions(out) == [(sbom.referrer.name, "reattached")]
    # the new root is there by digest before a copy names it as its subject
    assert [p.ref for p in out.writes.children] == [str(root.new_digest)]


def test_with_the_referrers_api_no_fallback_tag_is_written() -> None:
    src = source("docker-v2s2")
    sbom = oci_referrer(src.plan.root.old_digest, "application/spdx+json", signed=False)
    out = planner.plan(
        with_attached(src, sbom), in_place(src, referrers_api=True), ConvertOptions()
    )
    assert len(out.writes.referrers) == 1


def test_a_signed_oci_referrer_is_a_signature_too() -> None:
    src = source("docker-v2s2")
    notation = oci_referrer(
        src.plan.root.old_digest, "application/vnd.cncf.notary.signature", signed=True
    )
    out = planner.plan(with_attached(src, notation), in_place(src), ConvertOptions())
    assert out.refusal is not None and [s.action for s in out.signatures] == ["refused"]


def test_no_referrers_leaves_unsigned_ones_on_the_old_digest() -> None:
    src = source("docker-v2s2")
    sbom = cosign_sbom(src.plan.root.old_digest)
    out = planner.plan(with_attached(src, sbom), in_place(src), ConvertOptions(referrers=False))
    assert actions(out) == [(sbom.referrer.name, "left")] and not out.writes.referrers


def test_a_cosign_sbom_moves_by_its_tag_name_unless_already_there() -> None:
    src = source("docker-v2s2")
    root = src.plan.root
    sbom = cosign_sbom(root.old_digest)
    out = planner.plan(with_attached(src, sbom), in_place(src), ConvertOptions())
    [put] = out.writes.referrers
    assert put.ref == cosign_tag(root.new_digest, COSIGN_SBOM) and put.data == sbom.manifest.data  # type: ignore[union-attr]
    again = planner.plan(
        with_attached(src, sbom), in_place(src, tags=frozenset({put.ref})), ConvertOptions()
    )
    assert not again.writes.referrers


def test_a_dry_run_plans_the_same_rules_and_writes_nothing() -> None:
    src = source("docker-v2s2")
    sig = cosign_sig(src.plan.root.old_digest)
    out = planner.plan(with_attached(src, sig), in_place(src), SIGN, dry_run=True)
    assert [a for _, a in actions(out)] == ["would-re-sign"] and len(out.signing) == 1
    assert out.writes.tag is None and not out.writes.hooks


# ---- the write list ---------------------------------------------------------------------------


def test_in_place_a_lone_manifest_needs_no_guard_an_index_does() -> None:
    lone = source("docker-v2s2")
    assert planner.plan(lone, in_place(lone), ConvertOptions()).writes.guard is None
    index = source("docker-list")
    guard = planner.plan(index, in_place(index), ConvertOptions()).writes.guard
    assert guard is not None and guard.expected == index.plan.root.old_digest
    assert planner.plan(index, in_place(index), ConvertOptions(force=True)).writes.guard is None


def test_elsewhere_the_guard_expects_what_the_tag_held_when_read() -> None:
    src = source("docker-v2s2")
    held = Digest.of(b"old")
    out = planner.plan(src, elsewhere(tag_now=held, tag_read=True), ConvertOptions())
    assert out.writes.guard is not None and out.writes.guard.expected == held
    absent = planner.plan(src, elsewhere(tag_read=True), ConvertOptions())
    assert absent.writes.guard is not None and absent.writes.guard.expected is None


def test_a_new_tag_in_a_repository_this_run_creates_needs_no_guard() -> None:
    """The reader marks ``fresh`` only for a tag no other reference of the run creates."""
    src = source("docker-v2s2")
    fresh = planner.plan(src, elsewhere(tag_read=True, fresh=True), ConvertOptions())
    assert fresh.writes.guard is None and fresh.writes.fresh
    assert fresh.writes.tag is not None and fresh.writes.tag.ref == "v1"


def test_elsewhere_the_whole_tree_goes_in_place_only_what_changed() -> None:
    src = source("oci-index-docker-children")
    there = planner.plan(src, elsewhere(), ConvertOptions()).writes
    here = planner.plan(src, in_place(src), ConvertOptions()).writes
    assert len(there.children) == len(src.plan.nodes) - 1
    assert list(there.blobs) == [b for n in src.plan.nodes for b in n.blobs]
    assert len(here.children) == len(src.plan.changed) - 1 and not here.blobs


def test_a_destination_already_at_the_new_digest_is_present() -> None:
    src = source("docker-v2s2")
    out = planner.plan(
        src, elsewhere(tag_now=src.plan.root.new_digest, tag_read=True), ConvertOptions()
    )
    assert out.present and out.writes.tag is None


def test_a_tree_already_written_by_this_run_moves_only_the_tag() -> None:
    src = source("docker-list")
    sig = cosign_sig(src.plan.root.old_digest)
    out = planner.plan(with_attached(src, sig), in_place(src, tree_present=True), SIGN)
    w = out.writes
    assert not w.children and not w.hooks and not w.referrers and not w.blobs
    assert w.tag is not None and w.guard is not None


def test_a_backup_tag_elsewhere_refuses_and_one_in_place_is_not_written_again() -> None:
    src = source("docker-v2s2")
    old = src.plan.root.old_digest
    out = planner.plan(src, in_place(src, backup_tag="v1-docker"), ConvertOptions())
    assert out.writes.backup is not None and out.writes.backup.data == src.plan.root.old_data
    there = planner.plan(
        src, in_place(src, backup_tag="v1-docker", backup_now=old), ConvertOptions()
    )
    assert there.writes.backup is None and there.writes.tag is not None
    other = planner.plan(
        src, in_place(src, backup_tag="v1-docker", backup_now=Digest.of(b"x")), ConvertOptions()
    )
    assert other.refusal is not None and "v1-docker" in other.refusal and other.writes.tag is None


def test_in_place_an_image_already_oci_writes_nothing() -> None:
    src = source("already-oci")
    out = planner.plan(src, in_place(src), ConvertOptions())
    assert out.writes.tag is None and not out.tags


def test_a_new_tag_in_the_same_repository_copies_nothing_that_is_there() -> None:
    src = source("docker-list-oci-children")
    unchanged = next(n for n in src.plan.nodes if not n.changed)
    sig = cosign_sig(unchanged.old_digest)
    retag = Target(SRC.with_tag("v1-oci"), in_place=False)
    out = planner.plan(with_attached(src, sig), retag, ConvertOptions())
    w = out.writes
    assert not w.blobs and not w.referrers  # every blob and the signature are there already
    assert [p.ref for p in w.children] == [
        str(n.new_digest) for n in src.plan.nodes[:-1] if n.changed
    ]
    assert out.referrers == () and w.tag is not None and w.tag.ref == "v1-oci"


def test_sign_runs_need_a_registry_to_sign_in() -> None:
    from oci_normalize.reference import parse_location

    src = source("docker-v2s2")
    layout = Target(parse_location("oci:/tmp/out:v1"), in_place=False)
    out = planner.plan(with_attached(src, cosign_sig(src.plan.root.old_digest)), layout, SIGN)
    assert out.refusal is not None and "--sign-with" in out.refusal and out.writes.tag is None
