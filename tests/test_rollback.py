"""``oci-normalize rollback`` against a real registry: originals back, conflicts left alone."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support import seed
from tests.support.bulk_seed import Seeder
from tests.support.cli import cli, json_lines
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry


def convert(registry: RunningRegistry, repo_glob: str, journal: Path) -> None:
    result = cli("batch", registry.host, "--repo", repo_glob, "--journal", str(journal))
    assert result.exit_code == 0, result.output


def test_rollback_restores_the_original_digests(registry: RunningRegistry, tmp_path: Path) -> None:
    s = Seeder(registry.url)
    one = s.docker_image("rb-ok/one", "v1", key="rb-ok-one")
    s.copy_image(one, "rb-ok/one", "rb-ok/one", "v1-alias")
    lst = s.docker_list("rb-ok/list", "v1", key="rb-ok-list")
    oci = s.oci_image("rb-ok/oci", "v1", key="rb-ok-oci")
    s.close()
    original = {
        ("rb-ok/one", "v1"): one.digest,
        ("rb-ok/one", "v1-alias"): one.digest,
        ("rb-ok/list", "v1"): lst.digest,
        ("rb-ok/oci", "v1"): oci.digest,
    }
    journal = tmp_path / "journal.jsonl"
    convert(registry, "rb-ok/*", journal)
    converted = {k: seed.head_manifest(registry.url, *k) for k in original}
    assert [k for k in original if converted[k] != original[k]] == list(original)[:3]

    mark = registry.log_mark()
    dry = cli("rollback", str(journal), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert {ref: d["status"] for ref, d in json_lines(dry)[0].items()} == {
        "rb-ok/one:v1": "would-restore",
        "rb-ok/one:v1-alias": "would-restore",
        "rb-ok/list:v1": "would-restore",
    }
    assert {e.method for e in registry.access_log_lines(since=mark)} <= {"GET", "HEAD"}
    assert {k: seed.head_manifest(registry.url, *k) for k in original} == converted

    result = cli("rollback", str(journal), "--json")
    assert result.exit_code == 0, result.output
    docs, summary = json_lines(result)
    assert {d["status"] for d in docs.values()} == {"restored"} and summary["summary"][
        "restored"
    ] == 3
    assert {k: seed.head_manifest(registry.url, *k) for k in original} == original
    # a peer sees Docker media types again, and the list's platforms resolve
    raw = subprocess.run(
        [
            "skopeo",
            "inspect",
            "--raw",
            "--tls-verify=false",
            f"docker://{registry.host}/rb-ok/list:v1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert raw.returncode == 0, raw.stderr
    assert json.loads(raw.stdout)["mediaType"] == seed.DOCKER_LIST

    again = cli("rollback", str(journal))
    assert again.exit_code == 0, again.output
    assert "0 restored, 3 already original, 0 conflict(s)" in again.stdout


def test_rollback_leaves_a_moved_tag_alone_and_reports_a_conflict(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    s = Seeder(registry.url)
    a = s.docker_image("rb-conflict/app", "a", key="rb-conflict-a")
    b = s.docker_image("rb-conflict/app", "b", key="rb-conflict-b")
    journal = tmp_path / "journal.jsonl"
    convert(registry, "rb-conflict/*", journal)
    newer = s.docker_image("rb-conflict/app", "b", key="rb-conflict-newer")  # someone pushed
    s.close()

    result = cli("rollback", str(journal))
    assert result.exit_code == 3, result.output
    assert f"conflict {registry.host}/rb-conflict/app:b: now at {newer.digest}" in result.stdout
    assert "1 restored, 0 already original, 1 conflict(s)" in result.stdout
    assert seed.head_manifest(registry.url, "rb-conflict/app", "a") == a.digest
    assert seed.head_manifest(registry.url, "rb-conflict/app", "b") == newer.digest != b.digest


def test_rollback_undoes_several_runs_newest_first(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    s = Seeder(registry.url)
    first = s.docker_image("rb-runs/app", "v1", key="rb-runs-1")
    journal = tmp_path / "journal.jsonl"
    convert(registry, "rb-runs/*", journal)
    second = s.docker_image("rb-runs/app", "v1", key="rb-runs-2")  # Docker pushed over it …
    s.close()
    convert(registry, "rb-runs/*", journal)  # … and converted by a second run
    result = cli("rollback", str(journal))
    assert result.exit_code == 0, result.output
    # back to what the tag held before the latest run; the first run's move was superseded
    assert seed.head_manifest(registry.url, "rb-runs/app", "v1") == second.digest != first.digest


def test_unreadable_journal_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n{}\n")
    result = cli("rollback", str(bad))
    assert result.exit_code == 2 and "not a journal line" in result.stderr
    assert cli("rollback", str(tmp_path / "missing")).exit_code == 2
