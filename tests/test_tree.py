"""The tree walk (convert/tree.py) on the in-memory store: each digest once, bounds, checks."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from oci_normalize import limits
from oci_normalize import mediatypes as mt
from oci_normalize.convert.tree import MAX_DEPTH, fetch_tree
from oci_normalize.errors import DigestMismatchError, MalformedManifestError
from oci_normalize.reference import Reference
from tests.support import memimages
from tests.support.memimages import Image
from tests.support.memstore import MemoryStore

REPO = "app"


def nest(store: MemoryStore, tag: str | None, *children: Image, size_off_by: int = 0) -> Image:
    """An OCI index naming ``children`` in order (a descriptor's size may be made wrong)."""
    entries = [{**child.descriptor, "size": len(child.data) + size_off_by} for child in children]
    data = memimages.oci_index(*entries)
    digest = store.add_manifest(REPO, tag, data, mt.OCI_INDEX)
    return Image(REPO, digest, data, mt.OCI_INDEX, children=children)


def ref(tag: str) -> Reference:
    return Reference.parse(f"mem.test/{REPO}:{tag}")


def gets(store: MemoryStore) -> Counter[str]:
    return Counter(op[2] for op in store.log if op[0] == "GET")


def test_each_distinct_digest_is_fetched_once_however_many_indexes_name_it() -> None:
    store = MemoryStore()
    a = memimages.docker_image(store, REPO, None, key="a")
    b = memimages.docker_image(store, REPO, None, key="b")
    left, right = nest(store, None, a, b), nest(store, None, b, a, a)  # a diamond, a twice
    root = nest(store, "v1", left, right, a)
    tree = fetch_tree(store, ref("v1"))
    assert gets(store) == Counter(["v1", *(str(i.digest) for i in (left, right, a, b))])
    assert [c.digest for c in tree.children] == [left.digest, right.digest, a.digest]
    assert [c.digest for c in tree.children[1].children] == [b.digest, a.digest]  # deduped
    assert tree.digest == root.digest and tree.data == root.data
    assert {n.digest for n in tree.walk()} == {
        root.digest,
        left.digest,
        right.digest,
        a.digest,
        b.digest,
    }
    assert [blob.digest for blob in tree.children[2].blobs] == list(a.blobs)  # config, layers


def test_a_child_whose_bytes_do_not_match_its_digest_is_refused() -> None:
    store = MemoryStore()
    listed = memimages.docker_list(store, REPO, "v1")
    amd64, arm64 = listed.children
    store.lie(amd64.digest, arm64.data)  # a well-formed manifest, just not the one named
    with pytest.raises(DigestMismatchError, match=amd64.digest.hex):
        fetch_tree(store, ref("v1"))


def test_a_child_whose_size_differs_from_its_descriptor_is_refused() -> None:
    store = MemoryStore()
    child = memimages.docker_image(store, REPO, None)
    nest(store, "v1", child, size_off_by=1)
    with pytest.raises(DigestMismatchError, match="its descriptor says"):
        fetch_tree(store, ref("v1"))


def test_without_a_body_mediatype_the_descriptor_names_the_type() -> None:
    store = MemoryStore()
    body = dict(json.loads(memimages.docker_image(store, REPO, None).data))
    del body["mediaType"]
    data = json.dumps(body).encode()
    untyped = Image(
        REPO,
        store.add_manifest(REPO, None, data, "application/octet-stream"),
        data,
        mt.DOCKER_MANIFEST,
    )
    nest(store, "v1", untyped)
    (child,) = fetch_tree(store, ref("v1")).children
    assert child.media_type == mt.DOCKER_MANIFEST and len(child.blobs) == 2


def _chain(store: MemoryStore, below_root: int) -> None:
    """An image under ``below_root`` nested indexes, the outermost tagged v1."""
    node = memimages.docker_image(store, REPO, None)
    for level in range(below_root):
        node = nest(store, "v1" if level == below_root - 1 else None, node)


def test_nesting_is_followed_to_the_bound_and_refused_beyond_it() -> None:
    store = MemoryStore()
    _chain(store, MAX_DEPTH)  # root + MAX_DEPTH levels below it
    assert len(fetch_tree(store, ref("v1")).walk()) == MAX_DEPTH + 1
    deeper = MemoryStore()
    _chain(deeper, MAX_DEPTH + 1)
    with pytest.raises(MalformedManifestError, match=f"nested deeper than {MAX_DEPTH}"):
        fetch_tree(deeper, ref("v1"))
    assert sum(gets(deeper).values()) == MAX_DEPTH + 1  # the last level is never fetched


def test_more_manifests_than_the_bound_are_refused_before_they_are_fetched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = MemoryStore()
    kids = [memimages.docker_image(store, REPO, None, key=str(i)) for i in range(3)]
    nest(store, "v1", *kids)
    monkeypatch.setenv(limits.ENV_MAX_TREE_MANIFESTS, "4")
    assert len(fetch_tree(store, ref("v1")).children) == 3
    store.log.clear()
    monkeypatch.setenv(limits.ENV_MAX_TREE_MANIFESTS, "3")
    with pytest.raises(MalformedManifestError, match="names more than 3 manifests"):
        fetch_tree(store, ref("v1"))
    assert gets(store) == Counter(["v1"])


def test_a_digest_reference_is_checked_against_what_the_store_serves() -> None:
    store = MemoryStore()
    image = memimages.docker_image(store, REPO, "v1")
    store.lie(image.digest, memimages.docker_image(store, REPO, None, key="other").data)
    pinned = Reference.parse(f"mem.test/{REPO}@{image.digest}")
    with pytest.raises(DigestMismatchError):
        fetch_tree(store, pinned)
