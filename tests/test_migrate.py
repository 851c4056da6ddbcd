"""``oci-normalize batch SRC --to DEST``: a fleet migration between two real registries.

The destination is judged without the package: every manifest there is walked with raw HTTP,
validated against the OCI schemas, and its blobs compared with the source's; the registries'
access logs show what was (not) written where.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from oci_normalize.cli.app import app
from tests.support import oci_schema, seed
from tests.support import seed_referrers as sr
from tests.support.bulk_seed import Image, Seeder, docker_manifest_variant
from tests.support.cli import cli, json_lines
from tests.support.interrupt import kill_after_converted
from tests.support.registry import RunningRegistry, registry_factory_at

REPO_ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.registry
WRITES = frozenset({"PUT", "POST", "PATCH", "DELETE"})


def writes(reg: RunningRegistry, since: int) -> list[str]:
    return [f"{e.method} {e.path}" for e in reg.access_log_lines(since=since) if e.method in WRITES]


def walk(reg: RunningRegistry, repo: str, ref: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Every manifest under ``repo:ref`` (raw HTTP): (body, Content-Type)."""
    data, ctype, _ = seed.get_manifest(reg.url, repo, ref)
    doc = json.loads(data)
    yield doc, ctype
    for child in doc.get("manifests", []):
        if child["mediaType"] in (seed.OCI_MANIFEST, seed.DOCKER_MANIFEST, seed.OCI_INDEX):
            yield from walk(reg, repo, child["digest"])


def blob_digests(reg: RunningRegistry, repo: str, ref: str) -> set[str]:
    out = set()
    for doc, _ in walk(reg, repo, ref):
        if "config" in doc:
            out |= {doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])}
    return out


def assert_all_oci(reg: RunningRegistry, repo: str, ref: str) -> None:
    for doc, ctype in walk(reg, repo, ref):
        assert ctype.startswith("application/vnd.oci."), (repo, ref, ctype)
        oci_schema.validate(doc, ctype)
        for desc in doc.get("manifests", []) + doc.get("layers", []) + [doc.get("config", {})]:
            assert "docker" not in desc.get("mediaType", ""), (repo, ref, desc)


def oci_index_of_docker_children(s: Seeder, repo: str, tag: str) -> str:
    """An OCI index whose children are Docker v2s2 manifests (distribution 2.8 takes it)."""
    kids = [
        s.docker_image(repo, None, key=f"mg-idx-{a}", platform=("linux", a))
        for a in ("amd64", "arm64")
    ]
    body = {
        "schemaVersion": 2,
        "mediaType": seed.OCI_INDEX,
        "manifests": [
            seed.descriptor(
                seed.DOCKER_MANIFEST, k.manifest, platform={"architecture": a, "os": "linux"}
            )
            for k, a in zip(kids, ("amd64", "arm64"), strict=True)
        ],
    }
    return s.put_manifest(repo, tag, json.dumps(body).encode(), seed.OCI_INDEX)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningRegistry, ...]]:
    with registry_factory_at(tmp_path_factory.mktemp("migrate")) as start:
        yield start(), start()


@pytest.fixture(scope="module")
def migration(
    pair: tuple[RunningRegistry, RunningRegistry], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    src, dst = pair
    s = Seeder(src.url)
    app_img = s.docker_image("mg/app", "v1", key="mg-app")
    s.copy_image(app_img, "mg/app", "mg/app", "v1-alias")  # two tags, one digest
    s.copy_image(app_img, "mg/app", "mg/twin", "v1")  # same blobs, another repository
    s.docker_image("mg/app", "dev", key="mg-app-dev")  # filtered out by --tag
    oci_index_of_docker_children(s, "mg/idx", "v1")
    s.docker_list("mg/list", "v1", key="mg-list")
    oci = s.oci_image("mg/oci", "v1", key="mg-oci")
    s.docker_image("mg/taken", "v1", key="mg-taken")
    s.close()
    seed.push_mixed_kaniko(src.url, "mg/kaniko", "v1")
    oci_sig = sr.push_cosign_signature(src.url, "mg/oci", oci.digest)  # keeps verifying
    sbom_body = sr.push_docker_image(src.url, "mg/sbom", "v1", seed_text="mg-sbom")
    sbom = sr.push_referrer(src.url, "mg/sbom", sbom_body, seed.DOCKER_MANIFEST)
    # the destination already has a tag of that name, pointing at something else
    d = Seeder(dst.url)
    theirs = d.docker_image("mirror/mg/taken", "v1", key="theirs").digest
    d.close()

    work = tmp_path_factory.mktemp("migration")
    journal = work / "journal.jsonl"
    src_mark, dst_mark = src.log_mark(), dst.log_mark()
    args = ["batch", src.host, "--repo", "mg/*", "--tag", "v*", "--to", f"{dst.host}/mirror"]
    result = cli(*args, "--journal", str(journal), "--json", "--report", str(work / "r.md"))
    return {
        "args": args,
        "result": result,
        "src_log": src.access_log_lines(since=src_mark),
        "dst_log": dst.access_log_lines(since=dst_mark),
        "journal": journal,
        "report": work / "r.md",
        "theirs": theirs,
        "oci_sig": oci_sig,
        "sbom": sbom,
        "refs": ["mg/app:v1", "mg/app:v1-alias", "mg/twin:v1", "mg/idx:v1", "mg/list:v1"]
        + ["mg/oci:v1", "mg/taken:v1", "mg/kaniko:v1", "mg/sbom:v1"],
    }


def test_every_reference_lands_oci_with_its_blobs(
    pair: tuple[RunningRegistry, RunningRegistry], migration: dict[str, Any]
) -> None:
    src, dst = pair
    result = migration["result"]
    assert result.exit_code == 0, result.output
    docs, summary = json_lines(result)
    assert sorted(docs) == sorted(migration["refs"])
    assert {d["status"] for d in docs.values()} == {"converted"}
    assert docs["mg/kaniko:v1"]["kind"] == "mixed" and docs["mg/idx:v1"]["kind"] == "mixed"
    assert (
        summary["summary"]["converted"] == len(docs)
        and summary["summary"]["destination"] == f"{dst.host}/mirror"
    )
    for ref in migration["refs"]:
        repo, tag = ref.split(":")
        doc = docs[ref]
        assert doc["destination"] == f"{dst.host}/mirror/{ref}"
        assert seed.head_manifest(dst.url, f"mirror/{repo}", tag) == doc["new_digest"]
        assert_all_oci(dst, f"mirror/{repo}", tag)
        assert blob_digests(dst, f"mirror/{repo}", tag) == blob_digests(src, repo, tag)
    assert seed.head_manifest(dst.url, "mirror/mg/app", "dev") is None  # filtered out
    # a peer pulls the index whole
    proc = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{dst.host}/mirror/mg/idx:v1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and json.loads(proc.stdout)["mediaType"] == seed.OCI_INDEX


def test_the_source_is_only_read(
    pair: tuple[RunningRegistry, RunningRegistry], migration: dict[str, Any]
) -> None:
    src, _ = pair
    assert migration["src_log"], "the source saw no request at all"
    assert {e.method for e in migration["src_log"]} <= {"GET", "HEAD"}
    app_docker = seed.get_manifest(src.url, "mg/app", "v1")[1]
    assert app_docker == seed.DOCKER_MANIFEST


def test_blobs_go_once_and_are_mounted_where_the_destination_has_them(
    migration: dict[str, Any],
) -> None:
    uploads = Counter(
        e.uri.split("digest=")[1]
        for e in migration["dst_log"]
        if e.method == "PUT" and "/blobs/uploads/" in e.path
    )
    assert uploads and max(uploads.values()) == 1, uploads
    mounts = [e for e in migration["dst_log"] if e.method == "POST" and "mount=" in e.uri]
    # mg/app and mg/twin share a config and a layer: one of them mounts both
    assert len(mounts) == 2 and all(e.status == 201 for e in mounts)


def test_a_tag_already_at_the_destination_is_replaced_and_journalled(
    pair: tuple[RunningRegistry, RunningRegistry], migration: dict[str, Any]
) -> None:
    _, dst = pair
    docs, _ = json_lines(migration["result"])
    taken = docs["mg/taken:v1"]
    assert taken["replaced_digest"] == migration["theirs"]
    assert seed.head_manifest(dst.url, "mirror/mg/taken", "v1") == taken["new_digest"]
    lines = [json.loads(x) for x in migration["journal"].read_text().splitlines()]
    moved = [x for x in lines if x["reference"] == f"{dst.host}/mirror/mg/taken:v1"]
    assert [x["status"] for x in moved] == ["pending", "converted"]
    assert moved[-1]["old_digest"] == migration["theirs"]


def test_referrers_follow_the_in_place_rules(
    pair: tuple[RunningRegistry, RunningRegistry], migration: dict[str, Any]
) -> None:
    src, dst = pair
    docs, _ = json_lines(migration["result"])
    # a signature of a digest that does not change is copied as it is
    sig = migration["oci_sig"]
    assert seed.head_manifest(dst.url, "mirror/mg/oci", sig) == seed.head_manifest(
        src.url, "mg/oci", sig
    )
    # an unsigned referrer of a converted image is re-attached to the new digest
    new = docs["mg/sbom:v1"]["new_digest"]
    fallback = json.loads(seed.get_manifest(dst.url, "mirror/mg/sbom", sr.tag_stem(new))[0])
    (listed,) = fallback["manifests"]
    copy = json.loads(seed.get_manifest(dst.url, "mirror/mg/sbom", listed["digest"])[0])
    assert copy["subject"]["digest"] == new and listed["digest"] != migration["sbom"]
    assert blob_digests(dst, "mirror/mg/sbom", listed["digest"]) == blob_digests(
        src, "mg/sbom", migration["sbom"]
    )


def test_the_report_names_the_destination_and_what_was_already_there(
    pair: tuple[RunningRegistry, RunningRegistry], migration: dict[str, Any]
) -> None:
    _, dst = pair
    _, summary = json_lines(migration["result"])
    report = migration["report"].read_text()
    assert f"**{dst.host}/mirror** destination" in report
    assert f"**{summary['summary']['present']}** already there" in report


def test_a_rerun_finds_everything_present_and_writes_nothing(
    pair: tuple[RunningRegistry, RunningRegistry], migration: dict[str, Any]
) -> None:
    src, dst = pair
    src_mark, dst_mark = src.log_mark(), dst.log_mark()
    again = cli(*migration["args"], "--json")
    assert again.exit_code == 0, again.output
    docs, summary = json_lines(again)
    assert {d["status"] for d in docs.values()} == {"present"}
    assert summary["summary"]["present"] == len(migration["refs"])
    assert writes(dst, dst_mark) == [] and writes(src, src_mark) == []


def test_rollback_cannot_prove_a_replaced_destination_tag_and_leaves_it(
    pair: tuple[RunningRegistry, RunningRegistry], migration: dict[str, Any]
) -> None:
    # The tag the migration replaced held something unrelated to the source: no conversion ties
    # it to what the tag holds now, so rollback refuses to take the journal's word for it (the
    # trust-model rule), says why, and leaves the tag; the replaced manifest stays by digest.
    src, dst = pair
    docs, _ = json_lines(migration["result"])
    src_mark, dst_mark = src.log_mark(), dst.log_mark()
    result = cli("rollback", str(migration["journal"]), "--json")
    assert result.exit_code == 3, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    failed = [x for x in lines if x.get("status") == "failed"]
    assert [x["reference"] for x in failed] == [f"{dst.host}/mirror/mg/taken:v1"]
    assert "refusing to push" in failed[0]["error"]
    assert not [x for x in lines if x.get("status") == "restored"]
    taken = docs["mg/taken:v1"]["new_digest"]
    assert seed.head_manifest(dst.url, "mirror/mg/taken", "v1") == taken
    assert seed.head_manifest(dst.url, "mirror/mg/taken", migration["theirs"]) is not None
    # tags the migration created stay; nothing is written anywhere
    assert seed.head_manifest(dst.url, "mirror/mg/app", "v1") == docs["mg/app:v1"]["new_digest"]
    assert writes(src, src_mark) == []
    assert writes(dst, dst_mark) == []


def test_signatures_that_would_break_refuse_unless_told(
    pair: tuple[RunningRegistry, RunningRegistry],
) -> None:
    src, dst = pair
    body = sr.push_docker_image(src.url, "mg-signed/app", "v1", seed_text="mg-signed")
    sig = sr.push_cosign_signature(src.url, "mg-signed/app", seed.sha256_digest(body))
    args = ["batch", src.host, "--repo", "mg-signed/*", "--tag", "v*", "--to", f"{dst.host}/m"]
    mark = dst.log_mark()
    refused = cli(*args, "--json")
    assert refused.exit_code == 3, refused.output
    docs, _ = json_lines(refused)
    assert docs["mg-signed/app:v1"]["status"] == "failed"
    assert sig in docs["mg-signed/app:v1"]["error"]
    assert writes(dst, mark) == []

    forced = cli(*args, "--json", "--break-signatures")
    assert forced.exit_code == 0, forced.output
    docs, _ = json_lines(forced)
    assert any("left behind" in w for w in docs["mg-signed/app:v1"]["warnings"])
    assert seed.head_manifest(dst.url, "m/mg-signed/app", sig) is None  # would not verify


def test_dry_run_writes_nowhere(pair: tuple[RunningRegistry, RunningRegistry]) -> None:
    src, dst = pair
    s = Seeder(src.url)
    s.docker_list("mg-dry/app", "v1", key="mg-dry")
    s.close()
    src_mark, dst_mark = src.log_mark(), dst.log_mark()
    args = ["batch", src.host, "--repo", "mg-dry/*", "--to", f"{dst.host}/dry", "--dry-run"]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert f"would convert {src.host}/mg-dry/app:v1 into {dst.host}/dry/mg-dry/app:v1" in (
        result.stdout
    )
    assert writes(src, src_mark) == [] and writes(dst, dst_mark) == []


def test_resume_after_a_killed_migration(
    pair: tuple[RunningRegistry, RunningRegistry], tmp_path: Path
) -> None:
    src, dst = pair
    s = Seeder(src.url)
    base: Image = s.docker_image("mg-resume/app", "base", key="mg-resume")
    tags = [f"r{i:02d}" for i in range(40)]
    for i, tag in enumerate(tags):
        s.put_manifest("mg-resume/app", tag, docker_manifest_variant(base, i), seed.DOCKER_MANIFEST)
    s.close()
    journal = tmp_path / "journal.jsonl"
    mark = dst.log_mark()
    args = [sys.executable, "-m", "oci_normalize", "batch", src.host, "--repo", "mg-resume/*"]
    args += ["--tag", "r*", "--to", f"{dst.host}/resume", "--concurrency", "1"]
    args += ["--journal", str(journal)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    kill_after_converted(proc, journal, 5, timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the migration finished before it could be killed"
    first = [json.loads(line) for line in journal.read_text().splitlines() if line.endswith("}")]
    done_first = {d["reference"] for d in first if d["status"] == "converted"}
    assert 5 <= len(done_first) < len(tags)

    result = cli(*args[3:], "--json")
    assert result.exit_code == 0, result.output
    docs, summary = json_lines(result)
    present = {d["destination"] for d in docs.values() if d["status"] == "present"}
    assert present >= done_first and summary["summary"]["failed"] == 0
    for tag in tags:
        assert_all_oci(dst, "resume/mg-resume/app", tag)
    log = dst.access_log_lines(since=mark)
    puts = Counter(e.path for e in log if e.method == "PUT" and "/manifests/" in e.path)
    written = {t: puts[f"/v2/resume/mg-resume/app/manifests/{t}"] for t in tags}
    finished = {ref.rsplit(":", 1)[1] for ref in done_first}
    # What the killed run finished is never written again. The one reference it was writing
    # when killed may be written twice: under load its PUT can land after the resume listed
    # the tag (a SIGKILL does not take back a request already sent).
    assert {written[t] for t in finished} == {1}
    again = [t for t in tags if t not in finished and written[t] != 1]
    assert all(written[t] == 2 for t in again) and len(again) <= 1, written
    uploads = [e for e in log if e.method == "PUT" and "/blobs/uploads/" in e.path]
    assert len(uploads) == len(base.blobs)  # the shared blobs went once, across both runs


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--to", "{src}"], "is the source registry"),
        (["--to", "{dst}/Bad_Prefix"], "bad repository prefix"),
        (["--to", "{dst}/ok", "--backup-tag", "{{tag}}-old"], "in-place conversion only"),
    ],
)
def test_bad_destinations_exit_2_and_write_nothing(
    pair: tuple[RunningRegistry, RunningRegistry], extra: list[str], message: str
) -> None:
    src, dst = pair
    args = [a.format(src=src.host, dst=dst.host) for a in extra]
    mark = dst.log_mark()
    result = CliRunner().invoke(app, ["batch", src.host, "--repo", "mg/*", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert writes(dst, mark) == []


def test_from_file_and_shards_select_as_in_place(
    pair: tuple[RunningRegistry, RunningRegistry], tmp_path: Path
) -> None:
    src, dst = pair
    s = Seeder(src.url)
    imgs = {f"v{i}": s.docker_image("mg-file/app", f"v{i}", key=f"mg-file-{i}") for i in range(6)}
    s.close()
    listing = tmp_path / "refs.txt"
    lines = [f"mg-file/app:{tag}" for tag in imgs] + [f"mg-file/app@{imgs['v0'].digest}"]
    listing.write_text("# the fleet\n" + "\n".join(lines) + "\n")
    to = ["--to", f"{dst.host}/file"]
    slices = []
    for shard in ("0/2", "1/2"):
        result = cli(
            "batch", src.host, "--from-file", str(listing), *to, "--shard", shard, "--json"
        )
        docs, _ = json_lines(result)
        slices.append(docs)
    every = {ref: doc for docs in slices for ref, doc in docs.items()}
    assert sum(len(d) for d in slices) == len(every) == len(lines)  # each in one slice
    digest_ref = f"mg-file/app@{imgs['v0'].digest}"
    assert every.pop(digest_ref)["error"].endswith("--to writes tags; give the reference a tag")
    assert {d["status"] for d in every.values()} == {"converted"}
    for tag in imgs:
        assert_all_oci(dst, "file/mg-file/app", tag)


def test_a_prefix_on_the_source_registry_mounts_every_blob(
    pair: tuple[RunningRegistry, RunningRegistry],
) -> None:
    src, _ = pair
    s = Seeder(src.url)
    s.docker_list("mg-same/app", "v1", key="mg-same")
    s.close()
    mark = src.log_mark()
    result = cli("batch", src.host, "--repo", "mg-same/*", "--to", f"{src.host}/copy", "--json")
    assert result.exit_code == 0, result.output
    log = src.access_log_lines(since=mark)
    assert not [e for e in log if e.method == "PUT" and "/blobs/uploads/" in e.path]
    mounts = [e for e in log if e.method == "POST" and "mount=" in e.uri]
    assert len(mounts) == 4 and all(e.status == 201 for e in mounts)  # 2 configs, 2 layers
    assert not [e for e in log if e.method in WRITES and e.path.startswith("/v2/mg-same/")]
    assert_all_oci(src, "copy/mg-same/app", "v1")
