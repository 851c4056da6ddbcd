"""The reading steps of the one pipeline, in process on in-memory registries: what ``attach``
lists and reads of what names an image, and what ``read_target`` reads at the target, per path.
The planner itself is tested pure in test_planner.py; whole runs in test_orchestration.py."""

from __future__ import annotations

import pytest

from oci_normalize.convert import pipeline
from oci_normalize.convert.planner import Source
from oci_normalize.options import ConvertOptions
from oci_normalize.reference import Reference
from oci_normalize.store.client import Client
from tests.support import memimages as mi
from tests.support.memstore import MemoryStore, mounted

SRC = "src.test:5000"
DEST = "dest.test:5000"
OPTIONS = ConvertOptions()


@pytest.fixture
def src() -> MemoryStore:
    return MemoryStore(SRC)


@pytest.fixture
def dest() -> MemoryStore:
    return MemoryStore(DEST)


@pytest.fixture
def client(src: MemoryStore, dest: MemoryStore) -> Client:
    return mounted(src, dest)


def at(registry: str, repo: str, tag: str = "v1") -> Reference:
    return Reference.parse(f"{registry}/{repo}:{tag}")


def source(client: Client, repo: str) -> Source:
    loc = at(SRC, repo)
    return pipeline.read(client.registry(loc), loc)


def test_in_place_lists_only_what_names_a_manifest_that_changes(
    client: Client, src: MemoryStore
) -> None:
    lst = mi.docker_list(src, "app", "v1")
    mi.cosign_signature(src, "app", lst.digest)
    s = source(client, "app")
    found = pipeline.attach(client, s, same_repo=True, options=OPTIONS, dry_run=False)
    assert [a.referrer.name for a in found.attached] == [f"{mi.sig_tag(lst.digest)}.sig"]
    # a signature is never read in place: it is not copied anywhere
    assert found.attached[0].manifest is None


def test_elsewhere_every_manifest_is_listed_and_each_copy_read_with_its_tree(
    client: Client, src: MemoryStore
) -> None:
    lst = mi.docker_list(src, "app", "v1")
    child = lst.children[0]
    sbom = mi.referrer(src, "app", child)
    s = source(client, "app")
    found = pipeline.attach(client, s, same_repo=False, options=OPTIONS, dry_run=False)
    [a] = found.attached
    assert a.referrer.digest == sbom.digest and a.manifest is not None and a.tree is not None
    assert {b.digest for b in a.tree.blobs} == set(sbom.blobs)
    # one tag list for the repository, one referrers probe for the registry (no API: the
    # fallback tags are looked up in the list), one GET for the fallback index that exists
    # (the two are asked at once: their order in the log is the threads')
    listing = [op for op in src.log if op[0] in ("tags", "referrers")]
    assert ("tags", "app") in listing and sorted(op[0] for op in listing) == ["referrers", "tags"]


def test_a_dry_run_reads_no_referrer_bytes(client: Client, src: MemoryStore) -> None:
    image = mi.docker_image(src, "app", "v1")
    mi.referrer(src, "app", image)
    s = source(client, "app")
    before = len(src.log)
    found = pipeline.attach(client, s, same_repo=True, options=OPTIONS, dry_run=True)
    assert [a.manifest for a in found.attached] == [None]
    gets = [op for op in src.log[before:] if op[0] == "GET"]
    assert gets == [("GET", "app", mi.sig_tag(image.digest))]  # the fallback index only


def test_an_image_already_oci_in_place_lists_nothing(client: Client, src: MemoryStore) -> None:
    image = mi.oci_image(src, "app", "v1")
    mi.cosign_signature(src, "app", image.digest)
    s = source(client, "app")
    assert not s.plan.changed
    before = len(src.log)
    found = pipeline.attach(client, s, same_repo=True, options=OPTIONS, dry_run=False)
    assert found.attached == () and src.log[before:] == []  # not even a tag list


def test_read_target_in_place_reads_the_backup_tag_only_when_listed(
    client: Client, src: MemoryStore
) -> None:
    image = mi.docker_image(src, "app", "v1")
    s = source(client, "app")
    options = ConvertOptions(backup_tag="{tag}-docker")
    t = pipeline.read_target(client, s, at(SRC, "app"), options=options, read_tag=False)
    assert t.in_place and t.backup_tag == "v1-docker" and t.backup_now is None
    assert not [op for op in src.log if op[0] == "HEAD"]  # absent from the list: no HEAD
    src.add_manifest("app", "v1-docker", image.data, image.media_type)
    client.referrers.note_tag(SRC, "app", "v1-docker")
    t = pipeline.read_target(client, s, at(SRC, "app"), options=options, read_tag=False)
    assert t.backup_now == image.digest


def test_read_target_elsewhere_knows_a_fresh_repository_and_what_a_tag_held(
    client: Client, src: MemoryStore, dest: MemoryStore
) -> None:
    mi.docker_image(src, "app", "v1")
    s = source(client, "app")
    fresh = pipeline.read_target(client, s, at(DEST, "app"), options=OPTIONS, read_tag=True)
    assert fresh.fresh and fresh.tag_read and fresh.tag_now is None and fresh.replaced is None
    held = mi.docker_image(dest, "app2", "v1", key="held")
    there = pipeline.read_target(client, s, at(DEST, "app2"), options=OPTIONS, read_tag=True)
    assert not there.fresh and there.tag_now == held.digest
    assert there.replaced is not None and there.replaced.data == held.data  # the journal's undo


def test_read_target_for_convert_src_dest_reads_nothing_it_does_not_need(
    client: Client, src: MemoryStore, dest: MemoryStore
) -> None:
    mi.docker_image(src, "app", "v1")
    s = source(client, "app")
    t = pipeline.read_target(client, s, at(DEST, "app"), options=OPTIONS, read_tag=False)
    assert not t.tag_read and dest.log == []  # no referrer to copy: not even a tag list
