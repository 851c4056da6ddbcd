"""``oci-normalize batch`` against a real registry; skopeo judges the converted images."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support import seed, seed_referrers
from tests.support.bulk_seed import Seeder, docker_manifest_variant
from tests.support.cli import cli, json_lines
from tests.support.interrupt import kill_after_converted
from tests.support.registry import RunningRegistry

REPO_ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.registry


def media_type(registry: RunningRegistry, repo: str, ref: str) -> str:
    return seed.get_manifest(registry.url, repo, ref)[1]


@pytest.fixture(scope="module")
def sweep(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One filtered batch run over a mixed set of repositories, shared by the tests below."""
    s = Seeder(registry.url)
    app_img = s.docker_image("tb/app", "v1", key="tb-app")
    s.copy_image(app_img, "tb/app", "tb/app", "v1-alias")  # two tags, one digest
    dev = s.docker_image("tb/app", "dev", key="tb-app-dev")  # tag filtered out
    lst = s.docker_list("tb/list", "v2", key="tb-list")
    oci = s.oci_image("tb/oci", "v1", key="tb-oci")
    kaniko = seed.push_mixed_kaniko(registry.url, "tb/kaniko", "v1")
    other = s.docker_image("tb-other/app", "v1", key="tb-other")  # repository filtered out
    s.close()
    work = tmp_path_factory.mktemp("sweep")
    journal = work / "journal.jsonl"
    mark = registry.log_mark()
    result = cli(
        "batch",
        registry.host,
        "--repo",
        "tb/*",
        "--tag",
        "v*",
        "--journal",
        str(journal),
        "--json",
        "--report",
        str(work / "report.md"),
    )
    return {
        "result": result,
        "log": registry.access_log_lines(since=mark),
        "journal": journal,
        "work": work,
        "before": {
            "tb/app:v1": app_img.digest,
            "tb/app:v1-alias": app_img.digest,
            "tb/list:v2": lst.digest,
            "tb/oci:v1": oci.digest,
            "tb/kaniko:v1": kaniko,
        },
        "untouched": {"tb/app:dev": dev.digest, "tb-other/app:v1": other.digest},
        "list_children": [c.digest for c in lst.children],
    }


def test_batch_converts_what_the_globs_select(
    registry: RunningRegistry, sweep: dict[str, Any]
) -> None:
    result = sweep["result"]
    assert result.exit_code == 0, result.output
    results, summary = json_lines(result)
    assert {k: v["status"] for k, v in results.items()} == {
        "tb/app:v1": "converted",
        "tb/app:v1-alias": "converted",
        "tb/list:v2": "converted",
        "tb/kaniko:v1": "converted",
        "tb/oci:v1": "already-oci",
    }
    assert {k: v["kind"] for k, v in results.items()} == {
        "tb/app:v1": "docker",
        "tb/app:v1-alias": "docker",
        "tb/list:v2": "docker",
        "tb/kaniko:v1": "mixed",
        "tb/oci:v1": "oci",
    }
    assert summary["summary"] | {"seconds": 0} == summary["summary"] | {
        "references": 5,
        "repositories": 4,
        "converted": 4,
        "already_oci": 1,
        "failed": 0,
        "seconds": 0,
    }
    for ref, doc in results.items():
        repo, tag = ref.split(":")
        assert doc["old_digest"] == sweep["before"][ref]
        assert seed.head_manifest(registry.url, repo, tag) == doc["new_digest"]
        assert media_type(registry, repo, tag).startswith("application/vnd.oci.image.")
    for ref, digest in sweep["untouched"].items():
        repo, tag = ref.split(":")
        assert seed.head_manifest(registry.url, repo, tag) == digest


def test_tags_sharing_a_digest_are_converted_once_and_both_move(
    sweep: dict[str, Any], registry: RunningRegistry
) -> None:
    results = json_lines(sweep["result"])[0]
    assert results["tb/app:v1"]["new_digest"] == results["tb/app:v1-alias"]["new_digest"]
    assert results["tb/app:v1"]["same_digest"] == ["v1-alias"]
    puts = Counter(e.path for e in sweep["log"] if e.method == "PUT")
    assert puts["/v2/tb/app/manifests/v1"] == 1 and puts["/v2/tb/app/manifests/v1-alias"] == 1
    # the list's two converted children are pushed once each, by digest
    new_children = [m["new_digest"] for m in results["tb/list:v2"]["moved"][:-1]]
    assert len(new_children) == 2
    assert [puts[f"/v2/tb/list/manifests/{d}"] for d in new_children] == [1, 1]
    gets = Counter(e.path for e in sweep["log"] if e.method == "GET")
    assert gets["/v2/tb/app/manifests/v1"] == 1 and gets["/v2/tb/app/manifests/v1-alias"] == 1


def test_at_most_three_requests_per_manifest_plus_a_few_per_repository(
    sweep: dict[str, Any],
) -> None:
    log = [e for e in sweep["log"] if e.path != "/v2/"]
    manifest_requests = [e for e in log if "/manifests/" in e.path]
    listing = [e for e in log if e.path.endswith(("/tags/list", "/_catalog"))]
    # manifests: app (1, two tags) + list (3) + kaniko (1) + oci (1) = 6 read; 5 tags
    assert len(manifest_requests) <= 3 * 6 + 2  # the alias tag costs GET + guard + PUT too
    assert len(listing) <= 1 + 4  # catalog page + one tag list per selected repository
    # one referrers-API probe per registry (distribution 2.8 answers 404: no API)
    probes = [e for e in log if "/referrers/" in e.path]
    assert len(probes) == 1
    assert len(log) == len(manifest_requests) + len(listing) + 1  # no blob traffic at all
    assert not [e for e in log if e.status >= 400 and e not in probes]


def test_journal_holds_undo_information_for_every_move(
    sweep: dict[str, Any], registry: RunningRegistry
) -> None:
    lines = [json.loads(line) for line in sweep["journal"].read_text().splitlines()]
    assert len({d["run"] for d in lines}) == 1
    by_status: dict[str, list[str]] = {}
    for d in lines:
        by_status.setdefault(d["status"], []).append(d["reference"].split("/", 1)[1])
    assert sorted(by_status["pending"]) == sorted(by_status["converted"])
    assert sorted(by_status["converted"]) == [
        "tb/app:v1",
        "tb/app:v1-alias",
        "tb/kaniko:v1",
        "tb/list:v2",
    ]
    assert by_status["already-oci"] == ["tb/oci:v1"]
    for d in lines:
        if d["status"] in ("pending", "converted"):
            old = base64.b64decode(d["old_manifest"])
            assert seed.sha256_digest(old) == d["old_digest"]
            repo, tag = d["reference"].split("/", 1)[1].split(":")
            got, _, _ = seed.get_manifest(registry.url, repo, d["old_digest"])
            assert got == old  # the original is still there, by digest
            assert d["old_media_type"] in (
                seed.DOCKER_MANIFEST,
                seed.DOCKER_LIST,
                seed.OCI_MANIFEST,
            )
            assert d["new_digest"] == seed.head_manifest(registry.url, repo, tag)


def test_skopeo_copies_the_converted_kaniko_image(
    registry: RunningRegistry, sweep: dict[str, Any]
) -> None:
    # Before the batch, skopeo refuses this image (tests/test_registry_infra.py proves it).
    out = sweep["work"] / "kaniko-layout"
    proc = subprocess.run(
        [
            "skopeo",
            "copy",
            "--src-tls-verify=false",
            f"docker://{registry.host}/tb/kaniko:v1",
            f"oci:{out}:v1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_markdown_report_lists_moves(sweep: dict[str, Any]) -> None:
    text = (sweep["work"] / "report.md").read_text()
    for ref in ("tb/app:v1", "tb/list:v2", "tb/kaniko:v1"):
        assert ref in text
    assert sweep["before"]["tb/list:v2"] in text  # old digests are listed …
    assert all(child in text for child in sweep["list_children"])  # … children too


def test_rerun_costs_one_read_per_tag_and_writes_nothing(
    registry: RunningRegistry, sweep: dict[str, Any]
) -> None:
    mark = registry.log_mark()
    result = cli(
        "batch",
        registry.host,
        "--repo",
        "tb/*",
        "--tag",
        "v*",
        "--journal",
        str(sweep["journal"]),
        "--json",
    )
    assert result.exit_code == 0, result.output
    docs, summary = json_lines(result)
    assert {d["status"] for d in docs.values()} == {"already-oci"}
    log = registry.access_log_lines(since=mark)
    manifest = [e for e in log if "/manifests/" in e.path]
    assert [e.method for e in manifest] == ["GET"] * 5  # the list's children are not re-read
    assert summary["summary"]["requests"] == 5 + 1 + 4  # + catalog + tag lists


def test_dry_run_changes_nothing_and_tells_what_each_would_become(
    registry: RunningRegistry,
) -> None:
    s = Seeder(registry.url)
    one = s.docker_image("tb-dry/a", "v1", key="tb-dry-a")
    lst = s.docker_list("tb-dry/b", "v1", key="tb-dry-b")
    s.close()
    mark = registry.log_mark()
    result = cli("batch", registry.host, "--repo", "tb-dry/*", "--dry-run")
    assert result.exit_code == 0, result.output
    assert not [e for e in registry.access_log_lines(since=mark) if e.method not in ("GET", "HEAD")]
    assert seed.head_manifest(registry.url, "tb-dry/a", "v1") == one.digest
    assert seed.head_manifest(registry.url, "tb-dry/b", "v1") == lst.digest
    lines = result.stdout.splitlines()
    assert any(
        line.startswith(f"would convert {registry.host}/tb-dry/a:v1: {one.digest} -> sha256:")
        for line in lines
    )
    assert any(
        f"tb-dry/b:v1: {lst.digest} -> " in line and "3 manifest(s)" in line for line in lines
    )
    assert "2 would convert" in lines[-1]


def test_from_file_and_stdin_with_failures_that_stop_nothing(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    s = Seeder(registry.url)
    a = s.docker_image("tb-file/a", "v1", key="tb-file-a")
    b = s.docker_image("tb-file/b", "v1", key="tb-file-b")
    s.docker_image("tb-file/c", "v1", key="tb-file-c")
    s.close()
    listing = tmp_path / "refs.txt"
    listing.write_text(
        "# references, one a line\n"
        f"{registry.host}/tb-file/a:v1\n"
        f"{registry.host}/tb-file/missing:v1\n"  # unknown repository: fails alone
        "not a reference\n"
        "\n"
    )
    result = cli("batch", "--from-file", str(listing), "--json")
    assert result.exit_code == 3, result.output
    docs, summary = json_lines(result)
    statuses = {d["reference"]: d["status"] for d in docs.values()}
    assert statuses == {
        f"{registry.host}/tb-file/a:v1": "converted",
        f"{registry.host}/tb-file/missing:v1": "failed",
        "not a reference": "failed",
    }
    assert summary["summary"]["failed"] == 2 and summary["exit_code"] == 3
    assert seed.head_manifest(registry.url, "tb-file/a", "v1") != a.digest
    # stdin, short references resolved against REGISTRY; c is not listed and stays Docker
    result = cli("batch", registry.host, "--from-file", "-", stdin="tb-file/b:v1\n")
    assert result.exit_code == 0, result.output
    assert "1 converted" in result.stdout
    assert seed.head_manifest(registry.url, "tb-file/b", "v1") != b.digest
    assert media_type(registry, "tb-file/c", "v1") == seed.DOCKER_MANIFEST
    human = cli("batch", "--from-file", str(listing))
    assert (
        human.exit_code == 3 and "failed (2):" in human.stdout and "not a reference" in human.stdout
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a REGISTRY"),
        (["127.0.0.1:1", "--shard", "4/4"], "invalid shard"),
        (["127.0.0.1:1", "--report", "r.pdf"], ".html or .md"),
        (["127.0.0.1:1", "--timeout", "1"], "cannot reach"),
        (["--from-file", "/nonexistent/refs.txt"], "no such file"),
    ],
)
def test_cannot_start_exits_2(args: list[str], message: str) -> None:
    result = cli("batch", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_shards_split_the_registry_exactly(registry: RunningRegistry) -> None:
    s = Seeder(registry.url)
    image = s.docker_image("tb-shard/r0", "seed", key="tb-shard")
    for r in range(3):
        for t in range(8):
            s.copy_image(image, "tb-shard/r0", f"tb-shard/r{r}", f"t{t}")
    s.close()

    def refs(*extra: str) -> list[str]:
        result = cli(
            "batch",
            registry.host,
            "--repo",
            "tb-shard/*",
            "--tag",
            "t*",
            "--dry-run",
            "--json",
            *extra,
        )
        assert result.exit_code == 0, result.output
        return [d["reference"] for d in json_lines(result)[0].values()]

    everything = refs()
    assert len(everything) == 24
    slices = [refs("--shard", f"{i}/3") for i in range(3)]
    assert sorted(r for s in slices for r in s) == sorted(everything)
    assert all(s for s in slices)


def test_resume_after_a_killed_run(registry: RunningRegistry, tmp_path: Path) -> None:
    s = Seeder(registry.url)
    base = s.docker_image("tb-resume/app", "base", key="tb-resume")
    tags = [f"r{i:02d}" for i in range(40)]
    for i, tag in enumerate(tags):
        s.put_manifest("tb-resume/app", tag, docker_manifest_variant(base, i), seed.DOCKER_MANIFEST)
    s.close()
    journal = tmp_path / "journal.jsonl"
    mark = registry.log_mark()
    args = [
        sys.executable,
        "-m",
        "oci_normalize",
        "batch",
        registry.host,
        "--repo",
        "tb-resume/*",
        "--tag",
        "r*",
    ]
    args += ["--concurrency", "1", "--journal", str(journal)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    kill_after_converted(proc, journal, 5, timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the batch finished before it could be killed"
    first = [json.loads(line) for line in journal.read_text().splitlines() if line.endswith("}")]
    done_first = {d["reference"] for d in first if d["status"] == "converted"}
    assert 5 <= len(done_first) < len(tags)

    result = cli(
        "batch",
        registry.host,
        "--repo",
        "tb-resume/*",
        "--tag",
        "r*",
        "--journal",
        str(journal),
        "--json",
    )
    assert result.exit_code == 0, result.output
    docs, summary = json_lines(result)
    again = {d["reference"]: d["status"] for d in docs.values()}
    assert {r for r, st in again.items() if st == "already-oci"} >= done_first
    assert summary["summary"]["failed"] == 0
    for tag in tags:  # everything ends converted …
        assert media_type(registry, "tb-resume/app", tag) == seed.OCI_MANIFEST
    # Writes that landed: a PUT the kill cut off mid-request is logged too, with an error status.
    puts = Counter(
        e.path
        for e in registry.access_log_lines(since=mark)
        if e.method == "PUT" and e.status == 201
    )
    assert {puts[f"/v2/tb-resume/app/manifests/{t}"] for t in tags} == {1}  # … nothing twice


def test_each_tag_gets_the_in_place_safety_of_convert(registry: RunningRegistry) -> None:
    """Signed images are refused (the others go on); --backup-tag keeps each original."""
    s = Seeder(registry.url)
    plain = s.docker_image("tb-safe/app", "plain", key="tb-safe-plain")
    signed = s.docker_image("tb-safe/app", "signed", key="tb-safe-signed")
    s.close()
    seed_referrers.push_cosign_signature(registry.url, "tb-safe/app", signed.digest)
    args = ["batch", registry.host, "--repo", "tb-safe/*", "--tag", "plain", "--tag", "signed"]
    dry = cli(*args, "--dry-run", "--json")
    assert dry.exit_code == 3, dry.output
    assert "would refuse" in json_lines(dry)[0]["tb-safe/app:signed"]["error"]
    result = cli(*args, "--backup-tag", "{tag}-docker", "--json")
    assert result.exit_code == 3, result.output
    results = json_lines(result)[0]
    assert results["tb-safe/app:plain"]["status"] == "converted"
    assert results["tb-safe/app:signed"]["status"] == "failed"
    assert "signature" in results["tb-safe/app:signed"]["error"]
    assert seed.head_manifest(registry.url, "tb-safe/app", "signed") == signed.digest
    assert seed.head_manifest(registry.url, "tb-safe/app", "plain-docker") == plain.digest
    assert seed.head_manifest(registry.url, "tb-safe/app", "plain") != plain.digest
