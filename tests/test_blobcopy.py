"""A blob streamed from one registry to another (store/registry.py upload, http/body.py reads).

A registry's blob is read into one reused buffer. That may not weaken a check: the real
registry proves that a source whose stored bytes were altered still fails the copy with no
blob and no manifest written. The fake server only plays what a real registry will not (a
body cut short, an encoded body).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from oci_normalize import api
from oci_normalize import mediatypes as mt
from oci_normalize.digest import Digest
from oci_normalize.errors import (
    DeniedError,
    DigestMismatchError,
    NotFoundError,
    TransportError,
)
from oci_normalize.options import NO_RETRY, ClientOptions
from oci_normalize.reference import Reference
from oci_normalize.store.base import chunks_into
from oci_normalize.store.registry import Registry
from tests.support import seed
from tests.support.fake_registry import Answer, FakeRegistry, fake_registry
from tests.support.registry import RegistryFactory, RunningRegistry

BUFFER = 64 * 1024


def _client(host: str) -> Registry:
    return Registry(Reference.parse(f"{host}/x/y:z"), options=ClientOptions(retry=NO_RETRY))


def test_a_body_that_fails_to_open_is_raised_and_nothing_is_stored(
    registry: RunningRegistry,
) -> None:
    repo = f"blobcopy/fails-{os.getpid()}"
    data = b"never sent"
    digest = Digest.of(data)

    @contextlib.contextmanager
    def opener() -> Iterator[Iterable[bytes]]:
        raise NotFoundError("source blob unknown")
        yield [data]  # pragma: no cover - never reached

    with pytest.raises(NotFoundError, match="source blob unknown"):
        _client(registry.host).upload_blob(repo, digest, len(data), opener)
    assert not _client(registry.host).blob_exists(repo, digest)


def test_a_refused_session_closes_the_opened_body_and_says_why(fake: FakeRegistry) -> None:
    fake.route("POST", "/v2/a/b/blobs/uploads/", Answer(403, _errors("DENIED", "no push")))
    closed: list[bool] = []

    @contextlib.contextmanager
    def opener() -> Iterator[Iterable[bytes]]:
        try:
            yield [b"blob"]
        finally:
            closed.append(True)

    with pytest.raises(DeniedError, match="no push"):
        _client(fake.host).upload_blob("a/b", Digest.of(b"blob"), 4, opener)
    assert closed == [True]
    assert not fake.requests("PUT")  # nothing was sent to a session that never opened


def test_a_registry_blob_is_read_into_the_one_buffer(registry: RunningRegistry) -> None:
    repo = f"blobcopy/into-{os.getpid()}"
    data = os.urandom(5 * BUFFER + 123)
    digest, _ = seed.put_blob(registry.url, repo, data)
    buffer = bytearray(BUFFER)
    got = bytearray()
    with _client(registry.host).open_blob(repo, Digest.parse(digest)) as body:
        for view in chunks_into(body, buffer):
            assert isinstance(view, memoryview) and view.obj is buffer  # no bytes per read
            got += view
    assert bytes(got) == data


def test_a_blob_read_to_its_end_leaves_its_connection_to_the_next_request(
    fake: FakeRegistry,
) -> None:
    data = os.urandom(3 * BUFFER)
    fake.route("GET", "/v2/a/b/blobs/*", Answer(200, data))
    reg = _client(fake.host)
    for _ in range(2):
        with reg.open_blob("a/b", Digest.of(data)) as body:
            assert b"".join(bytes(v) for v in chunks_into(body, bytearray(BUFFER))) == data
    assert reg.blob_exists("a/b", Digest.of(data)) is False  # 404: a third request
    first, second, third = (seen.peer for seen in fake.seen)
    assert first == second == third  # one connection, handed back after each full read


def test_a_blob_cut_short_is_a_retryable_broken_answer(fake: FakeRegistry) -> None:
    data = b"x" * 1000
    fake.route(
        "GET",
        "/v2/a/b/blobs/*",
        Answer(200, data[:400], {"Content-Length": str(len(data)), "Connection": "close"}),
    )
    reg = _client(fake.host)
    with (
        pytest.raises(TransportError, match="broke off its answer") as info,
        reg.open_blob("a/b", Digest.of(data)) as body,
    ):
        for _ in chunks_into(body, bytearray(BUFFER)):
            pass
    assert info.value.retryable


def test_an_encoded_blob_answer_is_decoded_as_before(fake: FakeRegistry) -> None:
    data = b"layer bytes " * 500
    fake.route(
        "GET", "/v2/a/b/blobs/*", Answer(200, gzip.compress(data), {"Content-Encoding": "gzip"})
    )
    with _client(fake.host).open_blob("a/b", Digest.of(data)) as body:
        got = b"".join(bytes(view) for view in chunks_into(body, bytearray(BUFFER)))
    assert got == data


def test_a_source_whose_stored_blob_was_altered_fails_the_copy_and_writes_nothing(
    registry: RunningRegistry, registry_factory: RegistryFactory
) -> None:
    """The source registry serves bytes that no longer match their digest (its storage was
    altered behind its back): the copy fails on our hash, the destination registry has
    neither that blob nor any manifest, and the tag does not exist there."""
    repo = f"blobcopy/altered-{os.getpid()}"
    layer, diff_id = seed.make_layer({"big.bin": os.urandom(3 * BUFFER)})
    layer_digest, _ = seed.put_blob(registry.url, repo, layer)
    config = seed.make_config([diff_id])
    seed.put_blob(registry.url, repo, config)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": seed.descriptor(mt.DOCKER_CONFIG, config),
            "layers": [seed.descriptor(mt.DOCKER_LAYER_GZIP, layer)],
        }
    ).encode()
    seed.put_manifest(registry.url, repo, "v1", body, mt.DOCKER_MANIFEST)
    stored = _blob_file(registry.storage_dir, layer_digest)
    altered = bytearray(stored.read_bytes())
    altered[len(altered) // 2] ^= 0xFF  # same length: only the digest can tell
    stored.write_bytes(bytes(altered))
    dest = registry_factory()
    mark = dest.log_mark()

    with pytest.raises(DigestMismatchError, match="does not match its digest"):
        api.convert(f"{registry.host}/{repo}:v1", f"{dest.host}/copy/app:v1")
    entries = dest.access_log_lines(since=mark)
    assert not [e for e in entries if e.method == "PUT" and "/manifests/" in e.path]
    assert not [
        e for e in entries if e.method == "PUT" and e.status == 201 and layer_digest in e.uri
    ]
    assert seed.head_manifest(dest.url, "copy/app", "v1") is None
    assert not Registry(Reference.parse(f"{dest.host}/copy/app:v1")).blob_exists(
        "copy/app", Digest.parse(layer_digest)
    )


def _blob_file(storage: Path, digest: str) -> Path:
    hex_ = digest.split(":", 1)[1]
    path = storage / "docker/registry/v2/blobs/sha256" / hex_[:2] / hex_ / "data"
    assert path.is_file(), path
    return path


def _errors(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    with fake_registry() as server:
        yield server
