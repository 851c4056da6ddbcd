"""Orchestration in process: ``convert`` and the batch runner (in place and ``--to``) driven
through the one planner and writer against in-memory registries (:class:`Client.mount`), so
the order of writes, the guard, refusals and what happens to signatures are seen request by
request, without a server. The real registry proves the same paths in the registry tests."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from oci_normalize import api
from oci_normalize.batch.destination import Destination
from oci_normalize.batch.run import BatchOptions, run
from oci_normalize.convert import push
from oci_normalize.digest import Digest
from oci_normalize.errors import HookError, OciNormalizeError, RefusedError, TagMovedError
from oci_normalize.options import ConvertOptions
from oci_normalize.reference import Reference
from oci_normalize.store.client import Client
from tests.support import memimages as mi
from tests.support.memstore import MemoryStore, mounted

SRC = "src.test:5000"
DEST = "dest.test:5000"


@pytest.fixture
def src() -> MemoryStore:
    return MemoryStore(SRC)


@pytest.fixture
def dest() -> MemoryStore:
    return MemoryStore(DEST)


@pytest.fixture
def client(src: MemoryStore, dest: MemoryStore) -> Client:
    return mounted(src, dest)


def ref(repo: str, tag: str = "v1", registry: str = SRC) -> Reference:
    return Reference.parse(f"{registry}/{repo}:{tag}")


def hook(tmp_path: Path, code: int = 0) -> str:
    """A --sign-with command that records the ref it was given and exits ``code``."""
    script = tmp_path / "hook.py"
    script.write_text(
        "import sys\n"
        f"open({str(tmp_path / 'signed.txt')!r}, 'a').write(sys.argv[1] + '\\n')\n"
        f"sys.exit({code})\n"
    )
    return f"{sys.executable} {script} {{ref}}"


def sig_of(digest: Digest) -> str:
    return f"{mi.sig_tag(digest)}.sig"


def signed_refs(tmp_path: Path) -> list[str]:
    path = tmp_path / "signed.txt"
    return path.read_text().split() if path.exists() else []


# ---- in place -----------------------------------------------------------------------------------


def test_a_lone_docker_manifest_costs_its_get_and_one_put(client: Client, src: MemoryStore) -> None:
    image = mi.docker_image(src, "app", "v1")
    result = api.convert(str(ref("app")), client=client)
    assert result.status == "converted" and result.old_digest == str(image.digest)
    # tags listed once (referrers), the root read, the tag moved: no guard, no blob request
    assert src.writes() == [("PUT", "app", "v1")]
    assert src.head_manifest("app", "v1") == Digest.parse(result.new_digest or "")


def test_an_index_writes_children_before_the_guard_and_the_tag(
    client: Client, src: MemoryStore
) -> None:
    image = mi.docker_list(src, "app", "v1")
    api.convert(str(ref("app")), client=client)
    puts = [op for op in src.log if op[0] in ("PUT", "HEAD")]
    # children by digest, the guard, the tag (whose answer echoed our digest: nothing to re-read)
    assert [op[0] for op in puts] == ["PUT", "PUT", "HEAD", "PUT"]
    assert puts[2:] == [("HEAD", "app", "v1"), ("PUT", "app", "v1")]
    assert all(op[2].startswith("sha256:") for op in puts[:2])
    assert len(image.children) == 2


@pytest.mark.parametrize("path", ["in place", "convert SRC DEST", "batch", "batch --to"])
def test_the_tag_is_read_back_when_the_registry_does_not_echo_the_digest(path: str) -> None:
    # One write rule on every path: a tag PUT whose answer does not echo our digest is
    # confirmed by a HEAD; one that does needs none.
    copies = path in ("convert SRC DEST", "batch --to")
    for echo in (True, False):
        src = MemoryStore(SRC, echo_digest=echo or copies)
        dest = MemoryStore(DEST, echo_digest=echo) if copies else src
        mi.docker_image(src, "app", "v1")
        client = mounted(src, dest) if copies else mounted(src)
        if path == "in place":
            api.convert(str(ref("app")), client=client)
        elif path == "convert SRC DEST":
            api.convert(str(ref("app")), str(ref("app", registry=DEST)), client=client)
        else:
            to = Destination.parse(DEST) if copies else None
            [r] = list(run([ref("app")], client=client, options=BatchOptions(destination=to)))
            assert r.status == "converted", r.error
        written = [op[0] for op in dest.log if op[1:3] == ("app", "v1") and op[0] != "GET"]
        assert written == (["PUT"] if echo else ["PUT", "HEAD"]), (path, echo)


def test_the_guard_stops_before_the_tag_when_another_writer_moved_it(
    client: Client, src: MemoryStore
) -> None:
    mi.docker_list(src, "app", "v1")
    other = mi.docker_image(src, "app", None, key="someone-else")
    src.before(
        "HEAD", lambda: src.add_manifest("app", "v1", other.data, other.media_type), ref="v1"
    )
    with pytest.raises(TagMovedError, match="tag moved"):
        api.convert(str(ref("app")), client=client)
    assert ("PUT", "app", "v1") not in src.writes()
    assert src.head_manifest("app", "v1") == other.digest


def test_a_signed_image_is_refused_and_nothing_is_written(client: Client, src: MemoryStore) -> None:
    image = mi.docker_image(src, "app", "v1")
    mi.cosign_signature(src, "app", image.digest)
    before = src.writes()
    with pytest.raises(RefusedError, match=sig_of(image.digest)):
        api.convert(str(ref("app")), client=client)
    assert src.writes() == before


def test_sign_with_signs_the_new_digest_after_it_is_pushed_and_before_the_tag(
    client: Client, src: MemoryStore, tmp_path: Path
) -> None:
    image = mi.docker_image(src, "app", "v1")
    mi.cosign_signature(src, "app", image.digest)
    seen_at_tag: list[list[str]] = []
    src.before("PUT", lambda: seen_at_tag.append(signed_refs(tmp_path)), ref="v1")
    options = ConvertOptions(sign_with=hook(tmp_path))
    result = api.convert(str(ref("app")), client=client, options=options)
    new = result.new_digest
    assert seen_at_tag == [[f"{SRC}/app@{new}"]]  # signed before the tag moved
    puts = [op[2] for op in src.writes() if op[0] == "PUT"]
    assert puts == [new, "v1"]  # the new manifest by digest first, the tag last
    assert [(s.name, s.action) for s in result.signatures] == [(sig_of(image.digest), "re-signed")]
    assert [r.ran for r in result.signing] == [True]


def test_a_failing_sign_command_leaves_the_tag_where_it_was(
    client: Client, src: MemoryStore, tmp_path: Path
) -> None:
    image = mi.docker_image(src, "app", "v1")
    mi.cosign_signature(src, "app", image.digest)
    options = ConvertOptions(sign_with=hook(tmp_path, code=3))
    with pytest.raises(HookError):
        api.convert(str(ref("app")), client=client, options=options)
    assert src.head_manifest("app", "v1") == image.digest
    assert ("PUT", "app", "v1") not in src.writes()


def test_break_signatures_leaves_them_behind_on_the_old_digest(
    client: Client, src: MemoryStore
) -> None:
    image = mi.docker_image(src, "app", "v1")
    sig = mi.cosign_signature(src, "app", image.digest)
    result = api.convert(
        str(ref("app")), client=client, options=ConvertOptions(break_signatures=True)
    )
    assert [s.action for s in result.signatures] == ["left-behind"]
    assert src.head_manifest("app", sig_of(image.digest)) == sig.digest
    assert any("left behind" in w for w in result.warnings)


# ---- batch and --to -----------------------------------------------------------------------------


def test_batch_in_place_moves_each_tag_and_writes_children_once(
    client: Client, src: MemoryStore
) -> None:
    mi.docker_list(src, "app", "v1")
    src.add_manifest("app", "latest", *_bytes_of(src, "app", "v1"))
    results = list(run([ref("app", "latest"), ref("app", "v1")], client=client))
    assert sorted(r.status for r in results) == ["converted", "converted"]
    child_puts = [op for op in src.writes() if op[2].startswith("sha256:")]
    assert len(child_puts) == 2  # two children, pushed once for both tags


def test_batch_to_carries_a_signature_whose_digest_does_not_change(
    client: Client, src: MemoryStore, dest: MemoryStore
) -> None:
    pure = mi.oci_image(src, "pure", "v1").digest
    sig = mi.cosign_signature(src, "pure", pure)
    options = BatchOptions(destination=Destination.parse(DEST))
    results = list(run([ref("pure")], client=client, options=options))
    [r] = results
    assert r.status == "converted", r
    assert [(s.name, s.action) for s in r.signatures] == [(sig_of(pure), "carried")]
    assert dest.head_manifest("pure", sig_of(pure)) == sig.digest
    assert dest.head_manifest("pure", "v1") == pure


def test_batch_to_writes_nothing_for_a_refused_image(
    client: Client, src: MemoryStore, dest: MemoryStore
) -> None:
    image = mi.docker_image(src, "app", "v1")
    mi.cosign_signature(src, "app", image.digest)
    options = BatchOptions(destination=Destination.parse(DEST))
    [r] = list(run([ref("app")], client=client, options=options))
    assert r.status == "failed" and "refusing" in (r.error or "")
    assert [s.action for s in r.signatures] == ["refused"]
    assert dest.writes() == []


def test_batch_to_a_new_repository_sends_no_guard_and_no_blob_head(
    client: Client, src: MemoryStore, dest: MemoryStore
) -> None:
    images = [mi.kaniko_image(src, "app", f"v{i}", key=f"k{i}") for i in range(4)]
    options = BatchOptions(destination=Destination.parse(DEST), concurrency=4)
    results = list(run([ref("app", f"v{i}") for i in range(4)], client=client, options=options))
    assert [r.status for r in results] == ["converted"] * 4, results
    kinds = [op[0] for op in dest.log]
    assert kinds.count("tags") == 1  # one listing for the repository, which did not exist
    assert "HEAD" not in kinds and "blob-head" not in kinds  # nothing there to look for
    assert kinds.count("blob-upload") == sum(len(i.blobs) for i in images)


def test_batch_to_keeps_the_guard_where_the_repository_existed(
    client: Client, src: MemoryStore, dest: MemoryStore
) -> None:
    mi.kaniko_image(src, "app", "v1")
    mi.docker_image(dest, "app", "other")  # the repository exists; v1 does not
    options = BatchOptions(destination=Destination.parse(DEST))
    [r] = list(run([ref("app")], client=client, options=options))
    assert r.status == "converted", r
    assert ("HEAD", "app", "v1") in dest.log  # the guard, on "absent"
    assert [op for op in dest.log if op[0] == "blob-head"]


def test_two_sources_that_map_to_one_new_tag_guard_the_second(
    client: Client, src: MemoryStore, dest: MemoryStore
) -> None:
    other = MemoryStore("other.test:5000")
    client.mount("other.test:5000", other)
    mi.kaniko_image(src, "app", "v1", key="one")
    mi.kaniko_image(other, "app", "v1", key="two")
    refs = [ref("app"), ref("app", registry="other.test:5000")]
    options = BatchOptions(destination=Destination.parse(DEST), concurrency=2)
    results = list(run(refs, client=client, options=options))
    assert "converted" in [r.status for r in results], results
    # Only the reference that claimed the new tag goes unguarded; the other re-reads the tag
    # before it moves (and fails if the first wrote it meanwhile: "tag moved").
    assert dest.log.count(("HEAD", "app", "v1")) == 1


def test_many_images_share_a_blob_pool_smaller_than_the_batch_without_deadlock(
    src: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 workers, each streaming 4 blobs of an image at once, over a pool of 2 threads."""
    monkeypatch.setattr(push, "BLOB_POOL", push.BlobPool(2))
    dest = MemoryStore(DEST, upload_delay=0.01)
    client = Client()
    client.mount(SRC, src)
    client.mount(DEST, dest)
    for i in range(16):
        mi.kaniko_image(src, f"r{i % 4}", f"v{i}", key=f"k{i}", layers=4)
    refs = sorted((ref(f"r{i % 4}", f"v{i}") for i in range(16)), key=str)
    options = BatchOptions(
        destination=Destination.parse(DEST),
        concurrency=8,
        convert_options=ConvertOptions(blob_concurrency=4),
    )
    results: list[str] = []
    worker = threading.Thread(
        target=lambda: results.extend(r.status for r in run(refs, client=client, options=options))
    )
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "deadlocked"
    assert results == ["converted"] * 16
    assert 1 < dest.max_in_flight <= 8 + 2  # streams: the workers and the pool's threads


def _bytes_of(store: MemoryStore, repo: str, tag: str) -> tuple[bytes, str]:
    got = store.get_manifest(repo, tag)
    return got.data, got.media_type


def test_a_referrer_whose_bytes_lie_about_its_digest_is_refused_before_any_write(
    client: Client, src: MemoryStore, dest: MemoryStore
) -> None:
    image = mi.oci_image(src, "pure", "v1")
    sbom = mi.referrer(src, "pure", image)
    src.lie(sbom.digest, sbom.data.replace(b"2024", b"1999"))  # listed digest, other bytes
    options = BatchOptions(destination=Destination.parse(DEST))
    [r] = list(run([ref("pure")], client=client, options=options))
    assert r.status == "failed" and str(sbom.digest) in (r.error or "")
    assert dest.writes() == []


def test_serve_follows_the_same_signature_rules(
    client: Client, src: MemoryStore, tmp_path: Path
) -> None:
    from oci_normalize.serve.queue import WorkItem
    from oci_normalize.serve.worker import Mode, Processor
    from oci_normalize.serve.written import WrittenDigests

    image = mi.docker_image(src, "app", "v1")
    mi.cosign_signature(src, "app", image.digest)
    refusing = Processor(client, Mode(registry=SRC), WrittenDigests())
    with pytest.raises(RefusedError):
        refusing.process(WorkItem("app", "v1", 0.0))
    assert ("PUT", "app", "v1") not in src.writes()
    signing = Mode(registry=SRC, options=ConvertOptions(sign_with=hook(tmp_path)))
    done = Processor(client, signing, WrittenDigests()).process(WorkItem("app", "v1", 0.0))
    assert done.status == "converted" and signed_refs(tmp_path) == [f"{SRC}/app@{done.new_digest}"]


def test_serve_reads_the_tag_once_per_conversion_and_journals_what_it_converted(
    client: Client, src: MemoryStore, tmp_path: Path
) -> None:
    from oci_normalize.batch.journal import Journal, read_journal
    from oci_normalize.serve.queue import WorkItem
    from oci_normalize.serve.worker import Mode, Processor
    from oci_normalize.serve.written import WrittenDigests

    image = mi.docker_image(src, "app", "v1")
    with Journal(tmp_path / "serve.journal") as journal:
        processor = Processor(client, Mode(registry=SRC), WrittenDigests(), journal=journal)
        done = processor.process(WorkItem("app", "v1", 0.0))
    assert done.status == "converted" and done.old_digest == str(image.digest)
    # Its own read of the root is the conversion's: one GET of the tag, not two.
    assert src.log.count(("GET", "app", "v1")) == 1
    [line] = [e for e in read_journal(tmp_path / "serve.journal") if e.status == "converted"]
    assert line.old_digest == image.digest and str(line.new_digest) == done.new_digest


def test_a_root_given_for_another_digest_is_refused_before_any_request(
    client: Client, src: MemoryStore
) -> None:
    image = mi.docker_image(src, "app", "v1")
    other = mi.docker_image(src, "app", "v2", key="other")
    given = src.get_manifest("app", "v2")
    before = len(src.log)
    with pytest.raises(OciNormalizeError, match="the root given is not what it names"):
        api.convert(f"{SRC}/app@{image.digest}", f"{DEST}/app:v1", client=client, root=given)
    assert src.log[before:] == [] and given.digest == other.digest
