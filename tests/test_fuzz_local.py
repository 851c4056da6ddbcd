"""Property-based fuzzing of what comes from local files: journal lines and docker-archive tars.

Whatever hypothesis writes, nothing escapes but the tool's own error tree
(:class:`~oci_normalize.errors.OciNormalizeError`), every message is one printable line, and
nothing is written outside the work directory the archive store was given.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oci_normalize import mediatypes as mt
from oci_normalize.batch.journal import JournalEntry, read_journal
from oci_normalize.batch.rollback import prove, undo_chains
from oci_normalize.digest import Digest
from oci_normalize.errors import NotFoundError, OciNormalizeError
from oci_normalize.manifest import BodyOpener, VerifiedManifest
from oci_normalize.reference import ArchiveRef, Reference
from oci_normalize.store import archive
from oci_normalize.store.base import StreamBlob
from tests.support.hostile_local import Member, a_layer, sha256, snapshot, write_tar

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
digests = st.sampled_from(
    ["sha256:" + "a" * 64, "sha256:../../etc", "sha512:" + "b" * 128, "md5:x", "", "sha256:"]
) | st.text(max_size=80)
media_types = st.sampled_from(sorted(mt.MANIFEST_TYPES)) | st.text(max_size=40)
manifest_bodies = st.builds(
    lambda body: json.dumps(body).encode(),
    st.fixed_dictionaries(
        {"schemaVersion": st.sampled_from([1, 2, "2", None])},
        optional={
            "mediaType": media_types,
            "config": json_values,
            "layers": json_values,
            "manifests": json_values,
            "fsLayers": json_values,
        },
    ),
) | st.binary(max_size=200)
line_docs = st.fixed_dictionaries(
    {},
    optional={
        "v": st.sampled_from([1, 2, "1", None]),
        "run": json_values,
        "reference": st.sampled_from(["localhost/a:1", "a:1@sha256:" + "c" * 64, "::"])
        | json_values,
        "status": st.sampled_from(["pending", "converted", "failed", "already-oci"]) | json_values,
        "old_digest": digests | json_values,
        "old_media_type": media_types | json_values,
        "old_manifest": st.builds(lambda b: base64.b64encode(b).decode(), manifest_bodies)
        | json_values,
        "new_digest": digests | json_values,
        "new_media_type": media_types | json_values,
        "error": json_values,
    },
)


def _consistent(body: bytes, media_type: str, new: str, status: str) -> bytes:
    """A line that passes every shape check: only the proof can refuse it."""
    doc = {
        "v": 1,
        "run": "r",
        "reference": "localhost/fuzz:1",
        "status": status,
        "old_digest": sha256(body),
        "old_media_type": media_type,
        "old_manifest": base64.b64encode(body).decode(),
        "new_digest": new,
    }
    return json.dumps(doc).encode()


docker_image = st.builds(
    lambda layers: json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": {"mediaType": mt.DOCKER_CONFIG, "digest": "sha256:" + "c" * 64, "size": 1},
            "layers": layers,
        }
    ).encode(),
    st.lists(
        st.fixed_dictionaries(
            {
                "mediaType": st.sampled_from([mt.DOCKER_LAYER_GZIP, mt.OCI_LAYER_GZIP, "x/y"]),
                "digest": st.sampled_from(["sha256:" + "d" * 64, "sha256:" + "e" * 64]),
                "size": st.integers(min_value=-1, max_value=9),
            },
            optional={"urls": json_values, "annotations": json_values},
        ),
        max_size=3,
    ),
)
consistent_lines = st.builds(
    _consistent,
    docker_image | manifest_bodies,
    media_types,
    st.sampled_from(["sha256:" + "a" * 64, "sha256:" + "b" * 64]),
    st.sampled_from(["pending", "converted"]),
)
raw_lines = (
    st.builds(lambda d: json.dumps(d).encode(), line_docs)
    | consistent_lines
    | st.binary(max_size=120)
    | st.integers(min_value=1, max_value=5000).map(lambda n: b'{"v":1,"run":' + b"[" * n)
)


class NothingThere:
    """A registry that holds nothing: every read is NotFound (as a wiped registry would say)."""

    name = "fuzz.invalid"
    requests = 0

    def get_manifest(
        self, repository: str, ref: str, *, expected: Digest | None = None, what: str = ""
    ) -> VerifiedManifest:
        raise NotFoundError(f"{what}: not found")

    def head_manifest(self, repository: str, ref: str) -> Digest | None:
        return None

    def put_manifest(self, repository: str, ref: str, data: bytes, media_type: str) -> Digest:
        raise AssertionError("prove() must never write")

    def put_manifest_confirmed(
        self, repository: str, ref: str, data: bytes, media_type: str
    ) -> tuple[Digest, bool]:
        raise AssertionError("prove() must never write")

    def blob_exists(self, repository: str, digest: Digest) -> bool:
        return False

    def mount_blob(self, repository: str, digest: Digest, from_repository: str) -> bool:
        return False

    def open_blob(self, repository: str, digest: Digest) -> StreamBlob:
        raise NotFoundError("no blob")

    def upload_blob(
        self, repository: str, digest: Digest, size: int, chunks: Iterable[bytes] | BodyOpener
    ) -> None:
        raise AssertionError("prove() must never write")


def _one_line(exc: BaseException) -> None:
    assert isinstance(exc, OciNormalizeError), repr(exc)
    assert "\n" not in str(exc) and "\x1b" not in str(exc)


@FUZZ
@given(st.lists(raw_lines, max_size=6))
def test_journal_lines_raise_only_our_errors(lines: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "journal.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        try:
            entries = read_journal(path)
        except Exception as exc:  # noqa: BLE001 - the property under test
            _one_line(exc)
            return
    for entry in entries:
        assert isinstance(entry, JournalEntry)
        assert all(isinstance(v, str) for v in (entry.run, entry.reference, entry.status))
    for reference, chain in undo_chains(entries).items():
        for undo in chain:
            try:
                prove(NothingThere(), Reference.parse("localhost/fuzz:1"), undo)
            except Exception as exc:  # noqa: BLE001
                _one_line(exc)
            else:  # a proof from nothing is possible only for a tree this tool would not change
                raise AssertionError(f"{reference}: proved without a registry")


LAYER = a_layer({"f": b"fuzz\n"})
CONFIG = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha256(LAYER)]}}).encode()
names = st.sampled_from(
    [
        "cfg.json",
        "l1/layer.tar",
        "./l1/layer.tar",
        "l1/../l1/layer.tar",
        "../x",
        "/etc/passwd",
        "",
        ".",
        "l1",
        "a/b/c",
        "manifest.json",
        "l1//layer.tar",
        "x\x00y",
    ]
) | st.text(max_size=16)
member_names = st.sampled_from(["cfg.json", "l1/layer.tar", "l2/layer.tar", "x", "l1"])
members = st.lists(
    st.builds(
        Member,
        name=member_names,
        data=st.sampled_from([LAYER, CONFIG, b"", b"junk"]),
        kind=st.sampled_from(
            ["symlink", "hardlink", "symlink", "hardlink", "file", "dir", "fifo", "chr"]
        ),
        link=names,
    ),
    min_size=1,
    max_size=4,
)
entries = st.fixed_dictionaries(
    {"Config": names | json_values, "Layers": st.lists(names, max_size=3) | json_values},
    optional={"RepoTags": st.lists(st.text(max_size=12), max_size=2) | json_values},
)
plausible = st.builds(
    lambda config, layers, tags: json.dumps(
        [{"Config": config, "Layers": layers, "RepoTags": tags}]
    ).encode(),
    member_names | names,
    st.lists(member_names | names, min_size=1, max_size=2),
    st.sampled_from([["a:1"], [], None]),
)
manifest_json = (
    plausible
    | plausible
    | plausible
    | st.lists(entries, max_size=3).map(lambda x: json.dumps(x).encode())
    | st.builds(lambda v: json.dumps(v).encode(), json_values)
    | st.binary(max_size=60)
)


@FUZZ
@given(manifest=manifest_json, extra=members, image=st.sampled_from([None, "@0", "@1", "a:1"]))
def test_docker_archive_manifest_json_raises_only_our_errors(
    manifest: bytes, extra: list[Member], image: str | None
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        work = root / "work"
        work.mkdir()
        base = [Member("cfg.json", CONFIG), Member("l1/layer.tar", LAYER)]
        tarball = write_tar(root / "img.tar", [*base, *extra, Member("manifest.json", manifest)])
        before = snapshot(root)
        ref = ArchiveRef(str(tarball), image)
        for attempt in (lambda: archive.inspect(ref), lambda: _build(ref, work)):
            try:
                attempt()
            except Exception as exc:  # noqa: BLE001 - the property under test
                _one_line(exc)
        assert snapshot(root) == before  # the store cleaned up; nothing written beside it


def _build(ref: ArchiveRef, work: Path) -> Any:
    with archive.ArchiveStore(ref, workdir=work) as store:
        got = store.get_manifest("", "")
        assert hashlib.sha256(got.data).hexdigest() == got.digest.hex
        return got
