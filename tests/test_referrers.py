"""The pure referrer rules: names from digests, signature types, subject rewrite, fallback index."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from oci_normalize import mediatypes as mt
from oci_normalize.convert import referrers as plan_rf
from oci_normalize.convert.normalize import normalize
from oci_normalize.convert.planner import render_backup_tag
from oci_normalize.digest import Digest
from oci_normalize.errors import InvalidReferenceError, MalformedManifestError
from oci_normalize.results import (
    BUILDKIT_ATTESTATION,
    COSIGN_ATTESTATION,
    COSIGN_SBOM,
    COSIGN_SIGNATURE,
    OCI_REFERRER,
)
from oci_normalize.store import referrers as rf
from tests.support.memimages import oci_index
from tests.test_normalize import case_tree

if TYPE_CHECKING:
    from tests.support.memstore import MemoryStore

HEX = "ab" * 32
D = Digest("sha256", HEX)
OTHER = Digest("sha256", "cd" * 32)


def test_cosign_tag_names_from_digest() -> None:
    assert rf.cosign_tags(D) == {
        f"sha256-{HEX}.sig": COSIGN_SIGNATURE,
        f"sha256-{HEX}.att": COSIGN_ATTESTATION,
        f"sha256-{HEX}.sbom": COSIGN_SBOM,
    }


@pytest.mark.parametrize(
    ("digest", "tag"),
    [
        (D, f"sha256-{HEX}"),
        (Digest("sha512", "e" * 128), "sha512-" + "e" * 121),  # a tag holds at most 128 chars
    ],
)
def test_fallback_tag(digest: Digest, tag: str) -> None:
    assert rf.fallback_tag(digest) == tag
    assert len(rf.fallback_tag(digest)) <= 128


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (set(), []),
        ({f"sha256-{HEX}.sig"}, [(COSIGN_SIGNATURE, True)]),
        ({f"sha256-{HEX}.att"}, [(COSIGN_ATTESTATION, True)]),
        ({f"sha256-{HEX}.sbom"}, [(COSIGN_SBOM, False)]),
        ({f"sha256-{HEX}", "latest", f"sha256-{'cd' * 32}.sig"}, []),  # fallback tag, other digest
        (
            {f"sha256-{HEX}.sig", f"sha256-{HEX}.sbom"},
            [(COSIGN_SIGNATURE, True), (COSIGN_SBOM, False)],
        ),
    ],
)
def test_cosign_referrers_from_tag_list(tags: set[str], expected: list[tuple[str, bool]]) -> None:
    found = rf.cosign_referrers(D, tags)
    assert [(r.kind, r.signed) for r in found] == expected
    assert all(r.subject == D for r in found)


@pytest.mark.parametrize(
    ("artifact_type", "signed"),
    [
        ("application/vnd.dev.cosign.artifact.sig.v1+json", True),
        ("application/vnd.cncf.notary.signature", True),
        ("application/vnd.dev.sigstore.bundle.v0.3+json", True),
        ("application/vnd.dev.sigstore.bundle+json;version=0.2", True),
        ("application/vnd.dsse.envelope.v1+json", True),
        ("APPLICATION/VND.CNCF.NOTARY.SIGNATURE", True),
        ("application/spdx+json", False),
        ("application/vnd.cyclonedx+json", False),
        ("application/vnd.in-toto+json", False),
        ("application/vnd.oci.empty.v1+json", False),
        ("", False),
        (None, False),
    ],
)
def test_signature_artifact_types(artifact_type: str | None, signed: bool) -> None:
    assert rf.is_signature(artifact_type) is signed


def test_referrers_from_index_classifies_and_dedupes() -> None:
    sig = {"mediaType": mt.OCI_MANIFEST, "digest": str(OTHER), "size": 10}
    data = oci_index(
        {**sig, "artifactType": "application/vnd.cncf.notary.signature"},
        {**sig},  # duplicate digest: listed once
        {
            "mediaType": mt.OCI_MANIFEST,
            "digest": "sha256:" + "ef" * 32,
            "size": 20,
            "artifactType": "application/spdx+json",
        },
    )
    found = rf.referrers_from_index(D, data, "t")
    assert [(r.name, r.signed, r.artifact_type) for r in found] == [
        (str(OTHER), True, "application/vnd.cncf.notary.signature"),
        ("sha256:" + "ef" * 32, False, "application/spdx+json"),
    ]
    assert {r.kind for r in found} == {OCI_REFERRER}


@pytest.mark.parametrize(
    "data",
    [b"[]", b'{"manifests": {}}', b'{"manifests": [{"digest": 1}]}', b"not json"],
)
def test_referrers_from_index_rejects_bad_shapes(data: bytes) -> None:
    with pytest.raises(MalformedManifestError):
        rf.referrers_from_index(D, data, "t")


def test_retarget_replaces_only_subject_and_keeps_order() -> None:
    original = (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        b'"artifactType":"application/spdx+json","config":{"mediaType":"x","digest":"sha256:'
        + b"0" * 64
        + b'","size":2},"layers":[],"subject":{"mediaType":"old","digest":"sha256:'
        + b"1" * 64
        + b'","size":1},"annotations":{"a":"b"},"x-vendor":[1,2]}'
    )
    new_subject = plan_rf.subject_descriptor(mt.OCI_MANIFEST, OTHER, 99)
    out = plan_rf.retarget(original, new_subject, "t")
    body = json.loads(out)
    assert body["subject"] == {"mediaType": mt.OCI_MANIFEST, "digest": str(OTHER), "size": 99}
    assert list(body) == list(json.loads(original))
    assert {k: v for k, v in body.items() if k != "subject"} == {
        k: v for k, v in json.loads(original).items() if k != "subject"
    }
    assert plan_rf.retarget(out, new_subject, "t") == out  # idempotent


def test_retarget_refuses_a_manifest_without_subject() -> None:
    with pytest.raises(MalformedManifestError, match="subject"):
        plan_rf.retarget(b'{"schemaVersion":2}', plan_rf.subject_descriptor("x", D, 1), "t")


@pytest.mark.parametrize(
    ("body", "artifact_type"),
    [
        (
            {"artifactType": "application/spdx+json", "config": {"mediaType": "c"}},
            "application/spdx+json",
        ),
        ({"config": {"mediaType": "application/vnd.example.sbom"}}, "application/vnd.example.sbom"),
        ({}, None),
    ],
)
def test_referrer_descriptor_artifact_type(
    body: dict[str, object], artifact_type: str | None
) -> None:
    data = json.dumps({"schemaVersion": 2, **body, "annotations": {"k": "v"}}).encode()
    desc = plan_rf.referrer_descriptor(data, mt.OCI_MANIFEST, "t")
    assert desc["digest"] == str(Digest.of(data)) and desc["size"] == len(data)
    assert desc.get("artifactType") == artifact_type
    assert desc["annotations"] == {"k": "v"}


def test_merge_fallback_index_creates_appends_and_dedupes() -> None:
    a = {"mediaType": mt.OCI_MANIFEST, "digest": str(D), "size": 1}
    b = {"mediaType": mt.OCI_MANIFEST, "digest": str(OTHER), "size": 2}
    fresh = plan_rf.merge_fallback_index(None, [a], "t")
    assert fresh is not None
    assert json.loads(fresh) == {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [a]}
    assert plan_rf.merge_fallback_index(fresh, [a], "t") is None  # nothing new: no write
    both = plan_rf.merge_fallback_index(fresh, [a, b], "t")
    assert both is not None and json.loads(both)["manifests"] == [a, b]


def test_buildkit_attestations_follow_changed_children() -> None:
    tree = case_tree("index-attestation")
    plan = normalize(tree)
    found = plan_rf.buildkit_attestations(tree, plan)
    moved = plan.digest_map
    assert len(found) == 2
    assert all(r.subject in moved and r.kind == BUILDKIT_ATTESTATION for r in found)
    assert not any(r.signed for r in found)
    # the attestation manifests themselves are already OCI: their digests stay
    assert all(r.digest is not None and r.digest not in moved for r in found)


def test_buildkit_attestations_none_when_nothing_moves() -> None:
    tree = case_tree("already-oci")
    assert plan_rf.buildkit_attestations(tree, normalize(tree)) == []


@pytest.mark.parametrize(
    ("template", "tag", "expected"),
    [
        ("{tag}-docker", "v1", "v1-docker"),
        ("backup-{tag}", "1.2.3", "backup-1.2.3"),
        ("docker-original", "v1", "docker-original"),
    ],
)
def test_render_backup_tag(template: str, tag: str, expected: str) -> None:
    assert render_backup_tag(template, tag) == expected


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ("{digest}", "only {tag}"),
        ("{0}", "only {tag}"),
        ("{tag", "only {tag}"),
        ("{tag}/x", "not a valid tag"),
        ("-{tag}", "not a valid tag"),
        ("{tag}", "names the tag being converted"),
        ("{tag}" + "x" * 130, "not a valid tag"),
    ],
)
def test_render_backup_tag_rejects(template: str, match: str) -> None:
    with pytest.raises(InvalidReferenceError, match=match):
        render_backup_tag(template, "v1")


# ---- per-run tag memory -----------------------------------------------------------------------


def test_a_repository_absent_when_listed_stays_new_after_this_run_writes_there() -> None:
    from tests.support.memstore import MemoryStore

    store, memory = MemoryStore("dest"), rf.Referrers()
    assert memory.listed(store, "new") is None and not memory.exists(store, "new")
    memory.note_tag("dest", "new", "v1")
    assert memory.listed(store, "new") == frozenset({"v1"})  # its own writes are seen
    assert not memory.exists(store, "new")  # and it is still the run's own repository
    store.add_manifest("old", "v0", b'{"schemaVersion":2}', mt.OCI_MANIFEST)
    assert memory.exists(store, "old")
    assert store.log.count(("tags", "new", "failed")) == 1  # listed once: the 404 is remembered


def test_absent_repositories_are_remembered_within_the_bound_oldest_forgotten_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support.memstore import MemoryStore

    monkeypatch.setattr(rf, "MAX_REMEMBERED_REPOSITORIES", 3)
    store, memory = MemoryStore("dest"), rf.Referrers()
    for n in range(5):
        assert not memory.exists(store, f"new{n}")  # each absent when first listed
    assert len(memory._absent) == 3
    for n in range(5):  # the run writes into each
        store.add_manifest(f"new{n}", "v1", b'{"schemaVersion":2}', mt.OCI_MANIFEST)
    # The newest are still the run's own; the oldest were forgotten, and count as existing
    # (the safe side: their writes are guarded and their blobs checked again).
    assert [memory.exists(store, f"new{n}") for n in range(5)] == [True, True, False, False, False]


def test_a_new_tag_is_claimed_once_whoever_asks() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.support.memstore import MemoryStore

    store, memory = MemoryStore("dest"), rf.Referrers()
    memory.listed(store, "new")
    with ThreadPoolExecutor(8) as pool:
        claims = list(pool.map(lambda _: memory.claim_new_tag("dest", "new", "v1"), range(32)))
    assert claims.count(True) == 1
    assert memory.claim_new_tag("dest", "new", "v2")
    assert not memory.claim_new_tag("dest", "never-listed", "v1")  # nothing known: no claim


def _image_store() -> tuple[MemoryStore, Digest]:
    from tests.support.memstore import MemoryStore

    store = MemoryStore("src")
    digest = store.add_manifest("app", "v1", b'{"schemaVersion":2}', mt.OCI_MANIFEST)
    return store, digest


def test_the_tag_list_and_the_first_probe_are_asked_at_once() -> None:
    # A first conversion knows what names its image after one round trip, not two: the tag
    # list is read while the referrers probe waits (each waits at a barrier for the other, so
    # asking them one after the other breaks it).
    import threading

    store, digest = _image_store()
    both = threading.Barrier(2, timeout=10)
    store.before("tags", both.wait)
    store.before("referrers", both.wait)
    memory = rf.Referrers()
    assert memory.of(store, "app", [digest]) == []
    assert sorted(op[0] for op in store.log) == ["referrers", "tags"]
    assert memory.tags(store, "app") == {"v1"}  # listed once, remembered
    assert not memory.has_api("src")  # the probe's verdict too
    memory.of(store, "app", [digest])
    assert len(store.log) == 2  # a second image asks nothing


def test_a_failed_tag_list_is_raised_before_the_probes_answer() -> None:
    from oci_normalize.errors import RegistryError

    store, digest = _image_store()
    store.fail("tags", RegistryError("tags/list answered 500", status=500))
    store.fail("referrers", RegistryError("referrers answered 503", status=503))
    with pytest.raises(RegistryError, match="tags/list answered 500"):
        rf.Referrers().of(store, "app", [digest])
    store.fail("tags", RegistryError("tags/list answered 500", status=500))
    with pytest.raises(RegistryError, match="tags/list answered 500"):  # probe fine, list not
        rf.Referrers().of(store, "app", [digest])
    store.fail("referrers", RegistryError("referrers answered 503", status=503))
    memory = rf.Referrers()
    with pytest.raises(RegistryError, match="referrers answered 503"):  # list fine, probe not
        memory.of(store, "app", [digest])
    assert memory.tags(store, "app") == {"v1"}  # the list read beside it is kept


def test_a_listed_repository_is_not_listed_again_beside_the_probe() -> None:
    store, digest = _image_store()
    memory = rf.Referrers()
    memory.prime("src", "app", ["v1"])  # batch read the tags while enumerating
    memory.of(store, "app", [digest])
    assert [op[0] for op in store.log] == ["referrers"]
