"""Safe in-place rewrites against a real registry: signatures refuse, referrers follow, the tag
guard holds against another writer, and the backup tag keeps the original reachable."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oci_normalize import api
from oci_normalize.cli import exits
from oci_normalize.cli.app import app
from oci_normalize.errors import PushError, RefusedError
from oci_normalize.options import ConvertOptions
from tests.support import seed
from tests.support import seed_referrers as sr
from tests.support.bulk_seed import Seeder
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry


def _writes(reg: RunningRegistry, since: int) -> list[str]:
    return [
        f"{e.method} {e.path}"
        for e in reg.access_log_lines(since=since)
        if e.method in ("PUT", "POST", "PATCH", "DELETE")
    ]


def _manifest(reg: RunningRegistry, repo: str, ref: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(seed.get_manifest(reg.url, repo, ref)[0])
    return data


def test_signature_tag_refuses_then_break_signatures_converts(registry: RunningRegistry) -> None:
    repo = "inplace/signed"
    body = sr.push_docker_image(registry.url, repo, "v1", seed_text="signed")
    old = seed.sha256_digest(body)
    sig_tag = sr.push_cosign_signature(registry.url, repo, old)
    sig_digest = seed.head_manifest(registry.url, repo, sig_tag)
    tags_before = seed.list_tags(registry.url, repo)
    mark = registry.log_mark()

    result = CliRunner().invoke(app, ["convert", f"{registry.host}/{repo}:v1"])
    assert result.exit_code == exits.ERROR
    assert sig_tag in result.output and "--sign-with" in result.output
    with pytest.raises(RefusedError, match=sig_tag):
        api.convert(f"{registry.host}/{repo}:v1")
    assert _writes(registry, mark) == []  # nothing moved, nothing written
    assert seed.head_manifest(registry.url, repo, "v1") == old
    assert seed.list_tags(registry.url, repo) == tags_before

    out = api.convert(f"{registry.host}/{repo}:v1", options=ConvertOptions(break_signatures=True))
    assert out.status == "converted" and out.new_digest != old
    (sig,) = out.referrers
    assert (sig.kind, sig.name, sig.signed, sig.action) == (
        "cosign-signature",
        sig_tag,
        True,
        "left-behind",
    )
    assert [s.name for s in out.signatures] == [sig_tag]
    assert any("left behind" in w and sig_tag in w for w in out.warnings)
    assert seed.head_manifest(registry.url, repo, "v1") == out.new_digest
    assert seed.head_manifest(registry.url, repo, sig_tag) == sig_digest  # left as it was
    assert [(t.tag, t.old_digest, t.new_digest) for t in out.tags] == [("v1", old, out.new_digest)]


def test_sbom_referrer_and_cosign_sbom_follow_the_new_digest(registry: RunningRegistry) -> None:
    repo = "inplace/sbom"
    body = sr.push_docker_image(registry.url, repo, "v1", seed_text="sbom")
    old = seed.sha256_digest(body)
    referrer = sr.push_referrer(registry.url, repo, body, seed.DOCKER_MANIFEST)
    sbom_tag, sbom_digest = sr.push_cosign_sbom(registry.url, repo, old)
    old_fallback = seed.get_manifest(registry.url, repo, sr.tag_stem(old))[0]
    old_referrer = seed.get_manifest(registry.url, repo, referrer)[0]

    out = api.convert(f"{registry.host}/{repo}:v1")
    new = out.new_digest
    assert out.status == "converted" and new is not None and new != old
    actions = {(r.kind, r.action) for r in out.referrers}
    assert actions == {("referrer", "reattached"), ("cosign-sbom", "reattached")}

    # the new digest's fallback tag lists a copy whose subject is the new manifest
    new_body = seed.get_manifest(registry.url, repo, new)[0]
    listed = _manifest(registry, repo, sr.tag_stem(new))["manifests"]
    assert isinstance(listed, list) and len(listed) == 1
    assert listed[0]["artifactType"] == sr.SPDX
    copy = _manifest(registry, repo, listed[0]["digest"])
    assert copy["subject"] == {
        "mediaType": seed.OCI_MANIFEST,
        "digest": new,
        "size": len(new_body),
    }
    original = json.loads(old_referrer)
    assert {k: v for k, v in copy.items() if k != "subject"} == {
        k: v for k, v in original.items() if k != "subject"
    }
    # old referrer and old fallback tag untouched
    assert seed.get_manifest(registry.url, repo, referrer)[0] == old_referrer
    assert seed.get_manifest(registry.url, repo, sr.tag_stem(old))[0] == old_fallback
    # cosign's sbom: same bytes under the new digest's tag name, old tag kept
    assert seed.head_manifest(registry.url, repo, f"{sr.tag_stem(new)}.sbom") == sbom_digest
    assert seed.head_manifest(registry.url, repo, sbom_tag) == sbom_digest
    roles = {t.role: t for t in out.tags}
    assert set(roles) == {"tag", "referrers-fallback", "cosign-sbom"}
    assert roles["referrers-fallback"].old_digest is None
    # a peer reads the re-attached copy
    proc = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false",
         f"docker://{registry.host}/{repo}@{listed[0]['digest']}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["subject"]["digest"] == new


def test_no_referrers_leaves_them_on_the_old_digest(registry: RunningRegistry) -> None:
    repo = "inplace/noref"
    body = sr.push_docker_image(registry.url, repo, "v1", seed_text="noref")
    sr.push_referrer(registry.url, repo, body, seed.DOCKER_MANIFEST)
    out = api.convert(f"{registry.host}/{repo}:v1", options=ConvertOptions(referrers=False))
    assert [r.action for r in out.referrers] == ["left"]
    assert out.new_digest is not None
    assert sr.tag_stem(out.new_digest) not in seed.list_tags(registry.url, repo)


def test_buildkit_attestations_follow_new_child_digests(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    repo = "inplace/buildkit"
    seeded = sr.push_buildkit_index(registry.url, repo, "v1")
    out = api.convert(f"{registry.host}/{repo}:v1")
    assert out.status == "converted"
    index = _manifest(registry, repo, "v1")
    entries = index["manifests"]
    assert isinstance(entries, list)
    images = {e["platform"]["architecture"]: e for e in entries if e["platform"]["os"] == "linux"}
    atts = [e for e in entries if e["platform"]["os"] == "unknown"]
    assert {e["digest"] for e in atts} == set(seeded["attestations"].values())  # bytes kept
    for arch, old_child in seeded["children"].items():
        new_child = images[arch]["digest"]
        assert new_child != old_child and images[arch]["mediaType"] == seed.OCI_MANIFEST
        (att,) = [e for e in atts if e["annotations"]["vnd.docker.reference.digest"] == new_child]
        assert att["digest"] == seeded["attestations"][arch]
    kinds = {(r.kind, r.action) for r in out.referrers}
    assert kinds == {("buildkit-attestation", "annotation-updated")}
    # a peer copies the whole index, attestations included
    proc = subprocess.run(
        ["skopeo", "copy", "--all", "--quiet", "--src-tls-verify=false",
         f"docker://{registry.host}/{repo}:v1", f"oci:{tmp_path / 'copy'}:v1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_tag_moved_by_another_writer_aborts(registry: RunningRegistry) -> None:
    repo = "inplace/race"
    body = sr.push_docker_image(registry.url, repo, "v1", seed_text="race")
    other = sr.push_docker_image(registry.url, repo, None, seed_text="other-writer")
    other_digest = seed.sha256_digest(other)

    def other_writer() -> None:
        seed.put_manifest(registry.url, repo, "v1", other, seed.DOCKER_MANIFEST)

    options = ConvertOptions(before_tag=other_writer, backup_tag="{tag}-docker")
    with pytest.raises(PushError, match="tag moved during conversion"):
        api.convert(f"{registry.host}/{repo}:v1", options=options)
    assert seed.head_manifest(registry.url, repo, "v1") == other_digest  # theirs stays
    # the backup written before the race still names the original
    assert seed.head_manifest(registry.url, repo, "v1-docker") == seed.sha256_digest(body)

    # --force skips the re-read and overwrites
    seed.put_manifest(registry.url, repo, "v1", body, seed.DOCKER_MANIFEST)
    forced = api.convert(
        f"{registry.host}/{repo}:v1", options=ConvertOptions(before_tag=other_writer, force=True)
    )
    assert seed.head_manifest(registry.url, repo, "v1") == forced.new_digest


def test_backup_tag_keeps_original_reachable(registry: RunningRegistry) -> None:
    repo = "inplace/backup"
    body = sr.push_docker_image(registry.url, repo, "v1", seed_text="backup")
    old = seed.sha256_digest(body)
    result = CliRunner().invoke(
        app, ["convert", f"{registry.host}/{repo}:v1", "--backup-tag", "{tag}-docker", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["backup_tag"] == "v1-docker"
    moves = {t["role"]: t for t in doc["tags"]}
    assert moves["backup"] == {
        "tag": "v1-docker",
        "role": "backup",
        "old_digest": None,
        "new_digest": old,
    }
    assert moves["tag"]["old_digest"] == old and moves["tag"]["new_digest"] == doc["new_digest"]
    data, ctype, digest = seed.get_manifest(registry.url, repo, "v1-docker")
    assert (data, ctype, digest) == (body, seed.DOCKER_MANIFEST, old)


def test_backup_tag_pointing_elsewhere_refuses(registry: RunningRegistry) -> None:
    repo = "inplace/backup-taken"
    body = sr.push_docker_image(registry.url, repo, "v1", seed_text="taken")
    sr.push_docker_image(registry.url, repo, "v1-docker", seed_text="someone-else")
    mark = registry.log_mark()
    with pytest.raises(RefusedError, match="backup tag 'v1-docker' already exists"):
        api.convert(f"{registry.host}/{repo}:v1", options=ConvertOptions(backup_tag="{tag}-docker"))
    assert _writes(registry, mark) == []
    assert seed.head_manifest(registry.url, repo, "v1") == seed.sha256_digest(body)


def test_check_and_dry_run_list_without_writing(registry: RunningRegistry) -> None:
    repo = "inplace/listing"
    body = sr.push_docker_image(registry.url, repo, "v1", seed_text="listing")
    old = seed.sha256_digest(body)
    sig_tag = sr.push_cosign_signature(registry.url, repo, old)
    notary = sr.push_referrer(
        registry.url,
        repo,
        body,
        seed.DOCKER_MANIFEST,
        artifact_type="application/vnd.cncf.notary.signature",
        content=b"jws",
    )
    sbom = sr.push_referrer(registry.url, repo, body, seed.DOCKER_MANIFEST)
    mark = registry.log_mark()

    checked = CliRunner().invoke(app, ["check", f"{registry.host}/{repo}:v1", "--json"])
    doc = json.loads(checked.stdout)["results"][0]
    listed = {(r["name"], r["action"]) for r in doc["referrers"]}
    assert listed == {(sig_tag, "refused"), (notary, "refused"), (sbom, "would-reattach")}

    dry = api.convert(f"{registry.host}/{repo}:v1", dry_run=True)
    assert dry.status == "would-refuse"
    assert any(sig_tag in w and notary in w for w in dry.warnings)
    text = CliRunner().invoke(app, ["convert", "--dry-run", f"{registry.host}/{repo}:v1"])
    assert (
        text.exit_code == 0 and sig_tag in text.stdout and "refuses the conversion" in text.stdout
    )
    assert _writes(registry, mark) == []


def test_discovery_costs_two_requests_then_nothing(registry: RunningRegistry) -> None:
    """One tags/list per repository and one referrers probe per registry, per Client."""
    repo = "inplace/budget"
    for tag in ("a", "b"):
        sr.push_docker_image(registry.url, repo, tag, seed_text=f"budget-{tag}")
    client = api.Client()
    mark = registry.log_mark()
    first = api.convert(f"{registry.host}/{repo}:a", client=client)
    entries = registry.access_log_lines(since=mark)
    discovery = [e for e in entries if "/tags/list" in e.path or "/referrers/" in e.path]
    # asked at once (their order in the log is the threads'): one listing, one probe
    assert sorted((e.method, e.path.split("/")[-2]) for e in discovery) == [
        ("GET", "referrers"),
        ("GET", "tags"),
    ]
    # GET manifest, tags/list, referrers probe, PUT (its echoed digest is the verification):
    # a single manifest with nothing attached needs no guard (its GET is the guard)
    assert first.requests == len(entries) == 4
    mark = registry.log_mark()
    second = api.convert(f"{registry.host}/{repo}:b", client=client)
    entries = registry.access_log_lines(since=mark)
    assert not [e for e in entries if "/tags/list" in e.path or "/referrers/" in e.path]
    assert second.requests == len(entries) == 2


def _tag_requests(reg: RunningRegistry, since: int, repo: str, tag: str) -> list[str]:
    """Methods of the requests naming ``repo:tag`` itself, in the order the registry served them."""
    path = f"/v2/{repo}/manifests/{tag}"
    return [e.method for e in reg.access_log_lines(since=since) if e.path == path]


def test_guard_skipped_when_the_put_directly_follows_the_get(registry: RunningRegistry) -> None:
    """A single manifest with nothing attached: its GET is the guard, no HEAD before the PUT."""
    repo = "inplace/no-window"
    s = Seeder(registry.url)
    s.docker_image(repo, "single", key="guard-single")
    s.docker_image(repo, "conv", key="guard-conv")
    s.close()
    mark = registry.log_mark()
    result = CliRunner().invoke(app, ["batch", registry.host, "--repo", repo, "--tag", "single"])
    assert result.exit_code == 0, result.output
    # the registry echoes our digest, so no verify HEAD either: one GET, one PUT
    assert _tag_requests(registry, mark, repo, "single") == ["GET", "PUT"]

    mark = registry.log_mark()
    api.convert(f"{registry.host}/{repo}:conv")
    # convert follows the same rules: no HEAD before the PUT, none after an echoed digest
    assert _tag_requests(registry, mark, repo, "conv") == ["GET", "PUT"]


def test_guard_kept_when_reads_or_writes_happen_in_between(registry: RunningRegistry) -> None:
    """An index (children read and written), a backup tag, referrers: HEAD right before PUT."""
    repo = "inplace/window"
    s = Seeder(registry.url)
    s.docker_list(repo, "list", key="guard-list")
    s.docker_image(repo, "backup", key="guard-backup")
    body = s.docker_image(repo, "referred", key="guard-referred").manifest
    s.close()
    sr.push_referrer(registry.url, repo, body, seed.DOCKER_MANIFEST)

    mark = registry.log_mark()
    result = CliRunner().invoke(app, ["batch", registry.host, "--repo", repo, "--tag", "list"])
    assert result.exit_code == 0, result.output
    assert _tag_requests(registry, mark, repo, "list") == ["GET", "HEAD", "PUT"]
    children = [
        e.method
        for e in registry.access_log_lines(since=mark)
        if "/manifests/sha256:" in e.path and e.method in ("GET", "PUT")
    ]
    assert children.count("GET") == 2 and children.count("PUT") == 2  # in the window

    mark = registry.log_mark()
    options = ConvertOptions(backup_tag="{tag}-docker")
    api.convert(f"{registry.host}/{repo}:backup", options=options)
    assert _tag_requests(registry, mark, repo, "backup") == ["GET", "HEAD", "PUT"]
    assert _tag_requests(registry, mark, repo, "backup-docker") == ["PUT"]

    mark = registry.log_mark()
    out = api.convert(f"{registry.host}/{repo}:referred")
    assert [r.action for r in out.referrers] == ["reattached"]
    assert _tag_requests(registry, mark, repo, "referred") == ["GET", "HEAD", "PUT"]
