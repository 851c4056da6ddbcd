"""Signed images against two real registries: carried, re-signed, left behind or refused (issue 18).

The contract under test, the same on every path (in place, ``convert SRC DEST`` to another
registry, ``batch``, ``batch --to``):

- a signature whose subject digest does not change travels with the image (cosign ``.sig``,
  fallback-tag referrers, notation): ``carried``;
- a signature whose subject changes refuses the reference (exit 3, nothing written) unless
  ``--sign-with`` re-signs the new digest (``re-signed``) or ``--break-signatures`` leaves it on
  the old digest (``left-behind``, and the output says so);
- unsigned referrers (an SBOM) follow the new digest;
- ``--sign-with`` runs once per manifest whose old digest carried a signature, children before
  parents, after the new manifests are pushed by digest and before the tag moves, with
  ``{ref}`` = ``HOST/REPO@sha256:NEW``; a failing or hanging hook leaves the tag unmoved (exit 3,
  journalled); a dry run prints the argv and runs nothing.

The signer is ``tests/support/cosign_openssl.py`` (openssl, no oci_normalize code): it signs
the seeded images, serves as the hook, and judges the result. Push order is read from the
destination registry's own access log. ``--json`` documents carry ``signatures``: one entry per
signature seen, with ``subject`` (old digest), ``new_subject``, ``kind``, ``name`` (the tag of a
cosign-scheme signature, the manifest digest of an OCI 1.1 referrer) and ``action``.
"""

from __future__ import annotations

import ast
import base64
import json
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from oci_normalize.cli.app import app
from tests.support import secretguard, seed, signed
from tests.support.registry import RunningRegistry, registry_factory_at, require_tools
from tests.support.signed import Signer

pytestmark = pytest.mark.registry

PATHS = ("in-place", "convert-to-registry", "batch", "batch-to")
CROSS = ("convert-to-registry", "batch-to")
SIGNATURE_KINDS_OF_REFERRERS = {"bundle", "notation"}
HOOK_SECRET = "cosign-pw-3c5f0a9e71"  # a COSIGN_PASSWORD the hook echoes; must never be shown
MAX_SHOWN_LINE = 4096


@dataclass(frozen=True)
class Pair:
    a: RunningRegistry  # the source
    b: RunningRegistry  # the other registry (convert SRC DEST, batch --to)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    require_tools()
    require_tools("openssl")
    with registry_factory_at(tmp_path_factory.mktemp("sig-registries")) as factory:
        yield Pair(factory(), factory())


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Signer:
    """The key that signed the images before conversion."""
    return Signer.create(tmp_path_factory.mktemp("original-key"))


@pytest.fixture(scope="module")
def resigner(tmp_path_factory: pytest.TempPathFactory) -> Signer:
    """The owner's key that ``--sign-with`` uses (another key, so a copy can never pass)."""
    return Signer.create(tmp_path_factory.mktemp("resign-key"))


# --- running a path ------------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


@dataclass
class Run:
    path: str
    result: Result
    source: RunningRegistry
    dest: RunningRegistry
    repo: str
    tag: str

    @property
    def docs(self) -> list[dict[str, Any]]:
        """convert: its one document; batch: one per reference (the summary left out)."""
        text = self.result.stdout.strip()
        if not text:
            return []
        if self.path in ("in-place", "convert-to-registry"):
            return [json.loads(text)]
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [d for d in lines if "summary" not in d]

    @property
    def signatures(self) -> list[dict[str, Any]]:
        return [s for d in self.docs for s in d.get("signatures") or []]

    def actions(self, subject: str) -> dict[str, str]:
        """name -> action of every signature entry whose old subject is ``subject``."""
        return {s["name"]: s["action"] for s in self.signatures if s["subject"] == subject}

    def head(self) -> str | None:
        return seed.head_manifest(self.dest.url, self.repo, self.tag)


def run_path(
    path: str, pair: Pair, repo: str, tag: str, *options: str, env: dict[str, str] | None = None
) -> Run:
    src = f"{pair.a.host}/{repo}:{tag}"
    if path == "in-place":
        args, dest = ["convert", *options, "--json", src], pair.a
    elif path == "convert-to-registry":
        args, dest = ["convert", *options, "--json", src, f"{pair.b.host}/{repo}:{tag}"], pair.b
    elif path == "batch":
        args, dest = ["batch", pair.a.host, "--repo", repo, *options, "--json"], pair.a
    else:
        args = ["batch", pair.a.host, "--repo", repo, "--to", pair.b.host, *options, "--json"]
        dest = pair.b
    return Run(path, cli(*args, env=env), pair.a, dest, repo, tag)


def manifest_puts(registry: RunningRegistry, repo: str, since: int) -> list[str]:
    """The references (tag or digest) of every successful manifest PUT into ``repo``, in order."""
    prefix = f"/v2/{repo}/manifests/"
    return [
        e.path[len(prefix) :]
        for e in registry.access_log_lines(since=since)
        if e.method == "PUT" and e.path.startswith(prefix) and e.status == 201
    ]


def writes(registry: RunningRegistry, since: int) -> list[str]:
    return [
        f"{e.method} {e.path}"
        for e in registry.access_log_lines(since=since)
        if e.method in ("PUT", "POST", "PATCH", "DELETE")
    ]


def assert_signed_before_tag(puts: list[str], new_digest: str, tag: str) -> None:
    """New manifest by digest, then its signature, then (last) the tag."""
    sig = signed.sig_tag(new_digest)
    assert new_digest in puts, f"{new_digest} never pushed by digest: {puts}"
    assert sig in puts, f"{sig} never pushed: {puts}"
    assert tag in puts, f"tag {tag} never moved: {puts}"
    last_tag = len(puts) - 1 - puts[::-1].index(tag)
    assert puts.index(new_digest) < puts.index(sig) < last_tag, puts


def repo_for(stem: str, path: str) -> str:
    return f"sig-{stem}/{path}"


# --- cosign-scheme signature on a Docker image ---------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_a_cosign_signed_docker_image_is_resigned_before_its_tag_moves(
    pair: Pair, original: Signer, resigner: Signer, tmp_path: Path, path: str
) -> None:
    repo = repo_for("cosign", path)
    image = signed.signed_docker_image(pair.a.host, repo, "v1", original, key=f"cosign-{path}")
    log = tmp_path / "hook.jsonl"
    dest = pair.b if path in CROSS else pair.a
    mark = dest.log_mark()

    run = run_path(path, pair, repo, "v1", "--sign-with", resigner.hook(log=log))

    assert run.result.exit_code == 0, run.result.output
    new = run.head()
    assert new is not None and new != image.digest
    # the hook ran once, for the root, with {ref} = DEST_HOST/REPO@NEW as one argument
    calls = signed.logged_calls(log)
    assert len(calls) == 1, calls
    assert calls[0]["argv"][-1] == f"{dest.host}/{repo}@{new}"
    assert calls[0]["env"] == {
        "OCI_NORMALIZE_IMAGE": f"{dest.host}/{repo}@{new}",
        "OCI_NORMALIZE_REGISTRY": dest.host,
        "OCI_NORMALIZE_REPOSITORY": repo,
        "OCI_NORMALIZE_TAG": "v1",
        "OCI_NORMALIZE_OLD_DIGEST": image.digest,
        "OCI_NORMALIZE_NEW_DIGEST": new,
    }
    # openssl: the new digest carries a signature naming it; the old one still verifies
    assert resigner.verify(dest.host, repo, new) == ""
    assert original.verify(pair.a.host, repo, image.digest) == ""
    assert_signed_before_tag(manifest_puts(dest, repo, mark), new, "v1")
    # the report names it
    assert run.actions(image.digest) == {signed.sig_tag(image.digest): "re-signed"}
    entry = next(s for s in run.signatures if s["subject"] == image.digest)
    assert entry["new_subject"] == new
    if path in CROSS:  # no signature is written at DEST for a digest that is not there
        assert signed.sig_tag(image.digest) not in seed.list_tags(dest.url, repo)


@pytest.mark.parametrize("path", PATHS)
def test_without_a_hook_a_signed_image_is_refused_and_nothing_is_written(
    pair: Pair, original: Signer, path: str
) -> None:
    repo = repo_for("refuse", path)
    image = signed.signed_docker_image(pair.a.host, repo, "v1", original, key=f"refuse-{path}")
    signed.attach_bundle(image)
    signed.attach_notation(image)
    signed.attach_sbom(image)
    marks = {pair.a.host: pair.a.log_mark(), pair.b.host: pair.b.log_mark()}

    run = run_path(path, pair, repo, "v1")

    # convert: refused is an error of the one command (2); batch: one reference failed (3)
    assert run.result.exit_code == (3 if path.startswith("batch") else 2), run.result.output
    assert writes(pair.a, marks[pair.a.host]) == []
    assert writes(pair.b, marks[pair.b.host]) == []
    assert seed.head_manifest(pair.a.url, repo, "v1") == image.digest
    assert run.actions(image.digest) == {
        signed.sig_tag(image.digest): "refused",
        image.referrers["bundle"]: "refused",
        image.referrers["notation"]: "refused",
    }, run.result.output
    assert original.verify(pair.a.host, repo, image.digest) == ""


# --- OCI 1.1 signature referrers (bundle, notation) and an unsigned SBOM --------------------------


@pytest.mark.parametrize("path", PATHS)
def test_referrer_signatures_are_resigned_and_the_sbom_follows_the_new_digest(
    pair: Pair, original: Signer, resigner: Signer, tmp_path: Path, path: str
) -> None:
    repo = repo_for("referrers", path)
    image = signed.docker_image(pair.a.host, repo, "v1", key=f"referrers-{path}")
    signed.attach_bundle(image)
    signed.attach_notation(image)
    signed.attach_sbom(image)
    before = signed.fallback_referrers(pair.a.host, repo, image.digest)
    log = tmp_path / "hook.jsonl"
    dest = pair.b if path in CROSS else pair.a
    mark = dest.log_mark()

    run = run_path(path, pair, repo, "v1", "--sign-with", resigner.hook(log=log))

    assert run.result.exit_code == 0, run.result.output
    new = run.head()
    assert new is not None and new != image.digest
    assert [c["argv"][-1] for c in signed.logged_calls(log)] == [f"{dest.host}/{repo}@{new}"]
    assert resigner.verify(dest.host, repo, new) == ""
    assert_signed_before_tag(manifest_puts(dest, repo, mark), new, "v1")
    after = signed.fallback_referrers(dest.host, repo, new)
    # the unsigned SBOM follows the new digest …
    assert after[signed.SPDX]["subject"]["digest"] == new
    assert after[signed.SPDX]["layers"] == before[signed.SPDX]["layers"]
    # … the signatures over the old digest do not (they would not verify there) …
    assert signed.SIGSTORE_BUNDLE not in after and signed.NOTATION_SIGNATURE not in after
    # … and stay where they verify: on the old digest, at the source
    assert signed.fallback_referrers(pair.a.host, repo, image.digest) == before
    assert seed.head_manifest(pair.a.url, repo, image.referrers["bundle"]) is not None
    actions = run.actions(image.digest)
    assert actions[image.referrers["bundle"]] == "re-signed"
    assert actions[image.referrers["notation"]] == "re-signed"
    assert image.referrers["sbom"] not in actions  # not a signature


@pytest.mark.parametrize("path", PATHS)
def test_every_signature_on_an_unchanged_digest_is_carried(
    pair: Pair, original: Signer, resigner: Signer, tmp_path: Path, path: str
) -> None:
    repo = repo_for("carried", path)
    image = signed.signed_oci_image(pair.a.host, repo, "v1", original, key=f"carried-{path}")
    signed.attach_bundle(image)
    signed.attach_notation(image)
    signed.attach_sbom(image)
    before = signed.fallback_referrers(pair.a.host, repo, image.digest)
    log = tmp_path / "hook.jsonl"
    dest = pair.b if path in CROSS else pair.a

    run = run_path(path, pair, repo, "v1", "--sign-with", resigner.hook(log=log))

    assert run.result.exit_code == 0, run.result.output
    assert run.head() == image.digest  # OCI-pure: the digest does not change
    assert signed.logged_calls(log) == []  # nothing to re-sign
    # the cosign signature and every referrer, byte for byte, where the image now is
    assert original.verify(dest.host, repo, image.digest) == ""
    assert signed.fallback_referrers(dest.host, repo, image.digest) == before
    if path in CROSS:
        assert set(run.actions(image.digest).values()) == {"carried"}
        assert set(run.actions(image.digest)) == {
            signed.sig_tag(image.digest),
            image.referrers["bundle"],
            image.referrers["notation"],
        }


# --- an index whose children are signed one by one -----------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_a_signed_list_is_resigned_children_first(
    pair: Pair, original: Signer, resigner: Signer, tmp_path: Path, path: str
) -> None:
    repo = repo_for("list", path)
    lst = signed.signed_docker_list(pair.a.host, repo, "v1", original, key=f"list-{path}")
    log = tmp_path / "hook.jsonl"
    dest = pair.b if path in CROSS else pair.a
    mark = dest.log_mark()

    run = run_path(path, pair, repo, "v1", "--sign-with", resigner.hook(log=log))

    assert run.result.exit_code == 0, run.result.output
    new = run.head()
    assert new is not None and new != lst.digest
    raw, _, _ = seed.get_manifest(dest.url, repo, new)
    new_children = {
        m["platform"]["architecture"]: m["digest"] for m in json.loads(raw)["manifests"]
    }
    assert set(new_children) == set(lst.children)
    refs = [c["argv"][-1] for c in signed.logged_calls(log)]
    # once per signed manifest, children before the list
    assert sorted(refs[:2]) == sorted(f"{dest.host}/{repo}@{d}" for d in new_children.values())
    assert refs[2:] == [f"{dest.host}/{repo}@{new}"]
    tags_of_children = {c["env"]["OCI_NORMALIZE_TAG"] for c in signed.logged_calls(log)[:2]}
    assert tags_of_children == {""}  # reached by digest
    puts = manifest_puts(dest, repo, mark)
    for arch, old_child in lst.children.items():
        assert resigner.verify(dest.host, repo, new_children[arch]) == ""
        assert original.verify(pair.a.host, repo, old_child) == ""
        assert puts.index(signed.sig_tag(new_children[arch])) < puts.index(signed.sig_tag(new))
    assert resigner.verify(dest.host, repo, new) == ""
    assert original.verify(pair.a.host, repo, lst.digest) == ""
    assert_signed_before_tag(puts, new, "v1")
    resigned = {s["subject"] for s in run.signatures if s["action"] == "re-signed"}
    assert resigned == {lst.digest, *lst.children.values()}


# --- --break-signatures --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["in-place", "convert-to-registry"])
def test_break_signatures_leaves_them_on_the_old_digest_and_says_so(
    pair: Pair, original: Signer, path: str
) -> None:
    repo = repo_for("break", path)
    image = signed.signed_docker_image(pair.a.host, repo, "v1", original, key=f"break-{path}")
    signed.attach_notation(image)
    dest_ref = [f"{pair.b.host}/{repo}:v1"] if path in CROSS else []
    mark = pair.a.log_mark()

    text = cli("convert", "--dry-run", "--break-signatures", f"{pair.a.host}/{repo}:v1", *dest_ref)

    assert text.exit_code == 0, text.output
    assert "left behind" in text.stdout  # the human output says what will happen
    assert writes(pair.a, mark) == []

    run = run_path(path, pair, repo, "v1", "--break-signatures")

    assert run.result.exit_code == 0, run.result.output
    new = run.head()
    assert new is not None and new != image.digest
    assert set(run.actions(image.digest).values()) == {"left-behind"}
    assert set(run.actions(image.digest)) == {
        signed.sig_tag(image.digest),
        image.referrers["notation"],
    }
    assert "no signature" in original.verify(run.dest.host, repo, new)
    assert original.verify(pair.a.host, repo, image.digest) == ""  # still valid where it was
    assert signed.NOTATION_SIGNATURE in signed.fallback_referrers(pair.a.host, repo, image.digest)
    if path in CROSS:  # nothing is copied for the old digest, which DEST does not hold
        assert signed.sig_tag(image.digest) not in seed.list_tags(pair.b.url, repo)
        assert signed.fallback_referrers(pair.b.host, repo, image.digest) == {}


# --- failures ------------------------------------------------------------------------------------

FAILING_HOOK = """
import os, sys
sys.stderr.write("FIRST-LINE " + "x" * 9000 + "\\n")
sys.stderr.write("using password " + os.environ.get("COSIGN_PASSWORD", "") + "\\n")
sys.stderr.write("\\x1b[31mLAST-LINE: signer refused the key\\x1b[0m\\n")
sys.exit(5)
"""

HANGING_HOOK = """
import subprocess, time
subprocess.Popen(["sleep", "300"])
time.sleep(300)
"""


def hook_script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "hook.py"
    path.write_text(body)
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(path))} {{ref}}"


def journal_lines(journal: Path, reference: str) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in journal.read_text().splitlines() if x.strip()]
    return [x for x in lines if x["reference"] == reference]


@pytest.mark.parametrize("path", ["in-place", "batch"])
def test_a_failing_hook_leaves_the_tag_unmoved_and_shows_its_stderr_capped_and_masked(
    pair: Pair, original: Signer, tmp_path: Path, path: str
) -> None:
    repo = repo_for("hook-fails", path)
    image = signed.signed_docker_image(pair.a.host, repo, "v1", original, key=f"fail-{path}")
    secretguard.register(HOOK_SECRET)
    journal = tmp_path / "journal.jsonl"
    options = ["--sign-with", hook_script(tmp_path, FAILING_HOOK)]
    if path == "batch":
        options += ["--journal", str(journal)]

    run = run_path(path, pair, repo, "v1", *options, env={"COSIGN_PASSWORD": HOOK_SECRET})

    assert run.result.exit_code == 3, run.result.output
    assert seed.head_manifest(pair.a.url, repo, "v1") == image.digest
    assert original.verify(pair.a.host, repo, image.digest) == ""
    shown = run.result.output
    assert "LAST-LINE: signer refused the key" in shown and "exit status 5" in shown
    assert "FIRST-LINE" not in shown  # only the tail of a long stderr
    assert HOOK_SECRET not in shown and "***" in shown
    assert "\x1b" not in shown
    assert all(len(line) <= MAX_SHOWN_LINE for line in shown.splitlines())
    if path == "batch":
        mine = journal_lines(journal, f"{pair.a.host}/{repo}:v1")
        assert mine and mine[-1]["status"] == "failed"
        assert "exit status 5" in mine[-1]["error"] and HOOK_SECRET not in journal.read_text()


@pytest.mark.parametrize("path", ["in-place", "batch"])
def test_a_hanging_hook_is_killed_at_the_sign_timeout_and_the_tag_stays(
    pair: Pair, original: Signer, tmp_path: Path, path: str
) -> None:
    repo = repo_for("hook-hangs", path)
    image = signed.signed_docker_image(pair.a.host, repo, "v1", original, key=f"hang-{path}")
    journal = tmp_path / "journal.jsonl"
    options = ["--sign-with", hook_script(tmp_path, HANGING_HOOK), "--sign-timeout", "2"]
    if path == "batch":
        options += ["--journal", str(journal)]

    started = time.monotonic()
    run = run_path(path, pair, repo, "v1", *options)

    assert time.monotonic() - started < 60
    assert run.result.exit_code == 3, run.result.output
    assert "timed out after 2s" in run.result.output
    assert seed.head_manifest(pair.a.url, repo, "v1") == image.digest
    if path == "batch":
        mine = journal_lines(journal, f"{pair.a.host}/{repo}:v1")
        assert mine[-1]["status"] == "failed" and "timed out" in mine[-1]["error"]


def test_words_a_shell_would_expand_reach_the_hook_literally_one_argv_element_each(
    pair: Pair, original: Signer, tmp_path: Path
) -> None:
    """No registry accepts a tag like ``v1;rm -rf x`` (tags are ``[A-Za-z0-9_][A-Za-z0-9_.-]*``),
    so what a shell would expand is put in the command itself: no shell ever sees it. The
    runner's unit tests feed such names through the tag and repository too."""
    repo = "sig-argv/app"
    tag = "v1.0_rc-1"
    image = signed.signed_docker_image(pair.a.host, repo, tag, original, key="argv")
    log = tmp_path / "argv.jsonl"
    hook = (
        shlex.join(signed.signer_argv("log", str(log)))
        + " 'v1;rm -rf x' '$(id)' '`id`' 'a b' '$OCI_NORMALIZE_TAG' --image={ref} {ref}"
    )
    run = run_path("in-place", pair, repo, tag, "--sign-with", hook)

    assert run.result.exit_code == 0, run.result.output
    new = run.head()
    ref = f"{pair.a.host}/{repo}@{new}"
    calls = signed.logged_calls(log)
    assert len(calls) == 1
    assert calls[0]["argv"][2:] == [
        "v1;rm -rf x",
        "$(id)",
        "`id`",
        "a b",
        "$OCI_NORMALIZE_TAG",
        f"--image={ref}",
        ref,
    ]
    assert calls[0]["env"]["OCI_NORMALIZE_TAG"] == tag
    assert calls[0]["env"]["OCI_NORMALIZE_OLD_DIGEST"] == image.digest


def test_dry_run_prints_the_exact_argv_for_each_manifest_and_runs_nothing(
    pair: Pair, original: Signer, tmp_path: Path
) -> None:
    repo = "sig-dry/app"
    lst = signed.signed_docker_list(pair.a.host, repo, "v1", original, key="dry")
    log = tmp_path / "never.jsonl"
    hook = signed.log_hook(log)
    mark = pair.a.log_mark()
    src = f"{pair.a.host}/{repo}:v1"

    as_json = cli("convert", "--dry-run", "--json", "--sign-with", hook, src)
    as_text = cli("convert", "--dry-run", "--sign-with", hook, src)

    assert as_json.exit_code == 0, as_json.output
    assert as_text.exit_code == 0, as_text.output
    assert not log.exists()  # the hook never ran
    assert writes(pair.a, mark) == []
    doc = json.loads(as_json.stdout)
    new_of = {c["old_digest"]: c["new_digest"] for c in doc["changes"]}
    assert set(new_of) == {lst.digest, *lst.children.values()}
    for old in new_of:
        argv = [*signed.signer_argv("log", str(log)), f"{pair.a.host}/{repo}@{new_of[old]}"]
        assert shlex.join(argv) in as_text.stdout, (old, as_text.stdout)
    # the real run lands on the digests the dry run announced
    real = cli("convert", "--sign-with", hook, src)
    assert real.exit_code == 0, real.output
    assert seed.head_manifest(pair.a.url, repo, "v1") == new_of[lst.digest]
    assert len(signed.logged_calls(log)) == 3


# --- batch: signature tags are not references; a refused subject gets nothing ----------------------


def test_batch_to_counts_images_not_signature_tags_and_copies_nothing_for_a_refused_one(
    pair: Pair, original: Signer
) -> None:
    refused = signed.signed_docker_image(pair.a.host, "sig-batch/refused", "v1", original, key="br")
    signed.attach_sbom(refused)
    carried = signed.signed_oci_image(pair.a.host, "sig-batch/carried", "v1", original, key="bc")
    signed.attach_notation(carried)

    result = cli("batch", pair.a.host, "--repo", "sig-batch/*", "--to", pair.b.host, "--json")

    assert result.exit_code == 3, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.strip()]
    docs = {d["reference"].split("/", 1)[1]: d for d in lines if "reference" in d}
    assert set(docs) == {"sig-batch/refused:v1", "sig-batch/carried:v1"}  # no .sig, no sha256-…
    assert docs["sig-batch/refused:v1"]["status"] == "failed"
    # nothing at all for the refused subject: no image, no signature, no SBOM
    assert seed.list_tags(pair.b.url, "sig-batch/refused") == []
    # the unchanged one arrives with its signatures
    assert seed.head_manifest(pair.b.url, "sig-batch/carried", "v1") == carried.digest
    assert original.verify(pair.b.host, "sig-batch/carried", carried.digest) == ""
    assert signed.NOTATION_SIGNATURE in signed.fallback_referrers(
        pair.b.host, "sig-batch/carried", carried.digest
    )


# --- rollback -------------------------------------------------------------------------------------


def test_rollback_of_a_resigned_reference_brings_back_the_original_and_its_signature(
    pair: Pair, original: Signer, resigner: Signer, tmp_path: Path
) -> None:
    repo = "sig-rollback/app"
    image = signed.signed_docker_image(pair.a.host, repo, "v1", original, key="rollback")
    journal = tmp_path / "journal.jsonl"
    hook = resigner.hook()
    done = cli("batch", pair.a.host, "--repo", repo, "--sign-with", hook, "--journal", str(journal))
    assert done.exit_code == 0, done.output
    new = seed.head_manifest(pair.a.url, repo, "v1")
    assert new is not None and new != image.digest
    assert resigner.verify(pair.a.host, repo, new) == ""

    back = cli("rollback", str(journal), "--json")

    assert back.exit_code == 0, back.output
    assert seed.head_manifest(pair.a.url, repo, "v1") == image.digest
    assert original.verify(pair.a.host, repo, image.digest) == ""  # verifies again
    # the new signature is left in place, naming a digest no tag points at, and reported
    assert resigner.verify(pair.a.host, repo, new) == ""
    docs = [json.loads(x) for x in back.stdout.splitlines() if x.strip()]
    entries = [s for d in docs for s in d.get("signatures") or []]
    assert any(
        s["subject"] == new and s["name"] == signed.sig_tag(new) and s["action"] == "left-behind"
        for s in entries
    ), entries


# --- the judge itself: it accepts what it should, and only that ----------------------------------


def test_the_signer_shares_no_code_with_the_tool_it_judges() -> None:
    tree = ast.parse(signed.SIGNER.read_text())
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
    }
    assert "oci_normalize" not in imported and "tests" not in imported
    assert imported <= set(sys.stdlib_module_names) | {"__future__", "requests"}, imported


def test_the_verifier_rejects_another_key_another_digest_and_a_tampered_signature(
    pair: Pair, original: Signer, resigner: Signer
) -> None:
    repo = "sig-judge/app"
    one = signed.signed_docker_image(pair.a.host, repo, "one", original, key="judge-one")
    two = signed.docker_image(pair.a.host, repo, "two", key="judge-two")
    assert original.verify(pair.a.host, repo, one.digest) == ""
    assert "verifies with" in resigner.verify(pair.a.host, repo, one.digest)
    assert "no signature" in original.verify(pair.a.host, repo, two.digest)
    assert "names" in original.verify(
        pair.a.host, repo, one.digest, identity=f"{pair.b.host}/{repo}"
    )
    # one's valid signature, replayed under two's .sig tag, signs one, not two
    sig_body, _, _ = seed.get_manifest(pair.a.url, repo, signed.sig_tag(one.digest))
    seed.put_manifest(pair.a.url, repo, signed.sig_tag(two.digest), sig_body, seed.OCI_MANIFEST)
    assert f"not {two.digest}" in original.verify(pair.a.host, repo, two.digest)
    # a signature with one byte changed no longer verifies
    doc = json.loads(sig_body)
    annotations = doc["layers"][0]["annotations"]
    der = bytearray(base64.b64decode(annotations[signed.SIGNATURE_ANNOTATION]))
    der[-1] ^= 0x01
    annotations[signed.SIGNATURE_ANNOTATION] = base64.b64encode(bytes(der)).decode()
    tampered = json.dumps(doc).encode()
    seed.put_manifest(pair.a.url, repo, signed.sig_tag(one.digest), tampered, seed.OCI_MANIFEST)
    assert "none of the 1 signature(s)" in original.verify(pair.a.host, repo, one.digest)
    # signing again appends a layer, as cosign does, and the digest verifies again
    original.sign(pair.a.host, repo, one.digest)
    assert original.verify(pair.a.host, repo, one.digest) == ""
    layers = json.loads(seed.get_manifest(pair.a.url, repo, signed.sig_tag(one.digest))[0])[
        "layers"
    ]
    assert len(layers) == 2
