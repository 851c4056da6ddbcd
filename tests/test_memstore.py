"""The in-memory store (tests/support/memstore.py) behaves like a registry and logs in order."""

from __future__ import annotations

import json

import pytest

from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import DigestMismatchError, NotFoundError, RegistryError
from oci_normalize.store.base import Store
from tests.support import memimages
from tests.support.memstore import MemoryStore, RacingStore

BODY = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'


def test_it_is_a_store_and_logs_each_call_in_order() -> None:
    mem = MemoryStore("mem")
    store: Store = mem  # mypy --strict proves the protocol is met
    digest = store.put_manifest("a", "v1", BODY, mt.OCI_MANIFEST)
    assert store.head_manifest("a", "v1") == digest == Digest.of(BODY)
    assert store.head_manifest("a", "v2") is None
    got = store.get_manifest("a", str(digest), expected=digest)
    assert (got.data, got.media_type, got.size) == (BODY, mt.OCI_MANIFEST, len(BODY))
    assert mem.log == [
        ("PUT", "a", "v1"),
        ("HEAD", "a", "v1"),
        ("HEAD", "a", "v2"),
        ("GET", "a", str(digest)),
    ]
    assert store.requests == 4


def test_seeding_is_not_logged_and_unknown_things_are_not_found() -> None:
    mem = MemoryStore()
    mem.add_manifest("a", "v1", BODY, mt.OCI_MANIFEST)
    mem.add_blob("a", b"layer")
    assert (mem.log, mem.requests) == ([], 0)
    with pytest.raises(NotFoundError, match="manifest unknown"):
        mem.get_manifest("a", "nope")
    assert mem.log == [("GET", "a", "nope", "failed")]
    with pytest.raises(NotFoundError, match="blob unknown"):
        mem.open_blob("b", Digest.of(b"layer"))
    with pytest.raises(NotFoundError, match="NAME_UNKNOWN"):
        mem.list_tags("b")
    assert mem.list_tags("a") == ["v1"] and mem.catalog() == ["a"]


def test_a_put_under_the_wrong_digest_is_refused() -> None:
    mem = MemoryStore()
    with pytest.raises(RegistryError, match="DIGEST_INVALID"):
        mem.put_manifest("a", str(Digest.of(b"other")), BODY, mt.OCI_MANIFEST)
    assert mem.manifests == {} and mem.writes() == []


def test_a_lie_is_caught_only_by_the_expected_digest() -> None:
    mem = MemoryStore()
    digest = mem.add_manifest("a", "v1", BODY, mt.OCI_MANIFEST)
    other = BODY.replace(b"}", b',"x":1}')
    mem.lie(digest, other)
    with pytest.raises(DigestMismatchError):
        mem.get_manifest("a", "v1", expected=digest)
    assert mem.get_manifest("a", "v1").data == other  # no digest header to check against


def test_injected_failures_match_op_repository_and_ref_and_are_counted_down() -> None:
    mem = MemoryStore()
    mem.fail("PUT", RegistryError("boom", status=500), repository="a", ref="v1", times=1, skip=1)
    mem.put_manifest("a", "v1", BODY, mt.OCI_MANIFEST)  # skipped
    mem.put_manifest("b", "v1", BODY, mt.OCI_MANIFEST)  # other repository
    with pytest.raises(RegistryError, match="boom"):
        mem.put_manifest("a", "v1", BODY, mt.OCI_MANIFEST)
    mem.put_manifest("a", "v1", BODY, mt.OCI_MANIFEST)  # used up
    assert mem.log == [
        ("PUT", "a", "v1"),
        ("PUT", "b", "v1"),
        ("PUT", "a", "v1", "failed"),
        ("PUT", "a", "v1"),
    ]
    assert mem.requests == 4 and len(mem.writes()) == 3


def test_an_action_runs_before_the_call_it_is_hooked_to() -> None:
    mem = MemoryStore()
    mem.add_manifest("a", "v1", BODY, mt.OCI_MANIFEST)
    other = mem.add_manifest("a", None, b"{}", mt.OCI_MANIFEST)
    mem.before("HEAD", lambda: mem.add_manifest("a", "v1", b"{}", mt.OCI_MANIFEST), ref="v1")
    assert mem.head_manifest("a", "v1") == other  # another writer moved it just before
    assert mem.log == [("HEAD", "a", "v1")]


def test_blobs_upload_verified_and_mount_hits_and_misses_are_told_apart() -> None:
    mem = MemoryStore()
    layer = mem.add_blob("a", b"layer")
    assert mem.mount_blob("b", layer, "a") and not mem.mount_blob("c", layer, "nowhere")
    with pytest.raises(RegistryError, match="DIGEST_INVALID"):
        mem.upload_blob("c", layer, 5, [b"lay", b"eR"])
    mem.upload_blob("c", layer, 5, [b"lay", b"er"])
    assert mem.blob_exists("c", layer)
    with mem.open_blob("c", layer) as blob:
        assert b"".join(blob.iter_content(2)) == b"layer"
    d = str(layer)
    assert mem.log == [
        ("blob-mount", "b", d, "a"),
        ("blob-mount", "c", d, "nowhere", "missed"),
        ("blob-upload", "c", d, "failed"),
        ("blob-upload", "c", d),
        ("blob-head", "c", d),
        ("blob-get", "c", d),
    ]
    assert mem.writes() == [("blob-mount", "b", d, "a"), ("blob-upload", "c", d)]


def test_referrers_need_the_api_and_list_what_names_the_subject() -> None:
    without, with_api = MemoryStore(), MemoryStore(referrers_api=True)
    for mem in (without, with_api):
        image = memimages.docker_image(mem, "app", "v1")
        made = memimages.referrer(mem, "app", image)
        memimages.referrer(mem, "app", memimages.docker_image(mem, "app", "v2", key="other"))
    assert without.referrers("app", image.digest) is None
    fallback = json.loads(
        without.manifests[("app", without.tags[("app", memimages.sig_tag(image.digest))])][0]
    )
    assert [m["digest"] for m in fallback["manifests"]] == [str(made.digest)]
    listed = with_api.referrers("app", image.digest)
    assert listed is not None
    assert json.loads(listed)["manifests"] == [
        {
            **made.descriptor,
            "artifactType": "application/spdx+json",
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        }
    ]
    assert ("app", memimages.sig_tag(image.digest)) not in with_api.tags


def test_seeded_images_have_the_shapes_the_planner_meets() -> None:
    mem = MemoryStore()
    listed = memimages.docker_list(mem, "app", "v1")
    kaniko = memimages.kaniko_image(mem, "app", "mixed")
    sig = memimages.cosign_signature(mem, "app", listed.digest)
    assert mem.get_manifest("app", "v1").media_type == mt.DOCKER_LIST
    for child in listed.children:
        assert mem.get_manifest("app", str(child.digest)).media_type == mt.DOCKER_MANIFEST
        assert all(("app", blob) in mem.blobs for blob in child.blobs)
    layers = json.loads(kaniko.data)["layers"]
    assert [layer["mediaType"] for layer in layers] == [mt.OCI_LAYER_GZIP] * 2 + [
        mt.DOCKER_LAYER_GZIP
    ]
    assert mem.tags[("app", f"sha256-{listed.digest.hex}.sig")] == sig.digest
    assert mem.list_tags("app") == sorted(["v1", "mixed", f"sha256-{listed.digest.hex}.sig"])


def test_the_racing_store_refuses_index_puts_then_takes_them() -> None:
    mem = RacingStore("DIGEST_INVALID", refusals=1)
    index = b'{"schemaVersion":2,"manifests":[]}'
    mem.put_manifest("a", "m", BODY, mt.OCI_MANIFEST)  # not an index: taken
    with pytest.raises(RegistryError, match="DIGEST_INVALID"):
        mem.put_manifest("a", "v1", index, mt.OCI_INDEX)
    mem.put_manifest("a", "v1", index, mt.OCI_INDEX)
    assert mem.log == [("PUT", "a", "m"), ("PUT", "a", "v1", "failed"), ("PUT", "a", "v1")]
