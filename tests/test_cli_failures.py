"""No traceback, ever, and exit codes that tell the truth.

Options are checked at parse time (numbers finite, templates well-formed), local inputs are
bounded and must be regular files, every output path is checked before the first write, a
journal or report that fails to write still gets its summary (and exit 2), and anything nobody
caught is one ``internal error`` line and exit 2 from :func:`oci_normalize.cli.app.run`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from oci_normalize import api
from oci_normalize.api import Client
from oci_normalize.batch.run import BatchOptions, run
from oci_normalize.cli import app as cli_app
from oci_normalize.options import ConvertOptions
from oci_normalize.reference import Reference
from tests.support import seed
from tests.support.bulk_seed import Seeder
from tests.support.hostile_local import one_error_line, run_cli
from tests.support.registry import RunningRegistry

NOWHERE = "127.0.0.1:1/app:v1"  # nothing listens: a check would fail to connect, not hang


@pytest.mark.parametrize(
    "option",
    [
        ["--timeout", "inf"],
        ["--timeout", "nan"],
        ["--timeout", "-1"],
        ["--timeout", "0"],
        ["--timeout", "1e400"],
        ["--connect-timeout", "inf"],
        ["--connect-timeout", "-inf"],
        ["--retry-max-time", "nan"],
        ["--retry-max-time", "1e12"],
    ],
)
def test_seconds_options_are_checked_when_parsed(option: list[str]) -> None:
    line = one_error_line(run_cli("check", *option, NOWHERE, timeout=20))
    assert f"Invalid value for '{option[0]}'" in line and "see oci-normalize check --help" in line


@pytest.mark.parametrize(
    "template",
    ["{tag.foo}", "{tag[0]}", "{tag!r}", "{tag:>999999999}", "{0}", "{}", "{x}", "{", "}"],
)
def test_backup_tag_templates_are_checked_up_front(template: str) -> None:
    started = time.monotonic()
    for command in ("convert", "batch"):
        line = one_error_line(run_cli(command, "--backup-tag", template, NOWHERE, timeout=20))
        assert "--backup-tag" in line
    assert time.monotonic() - started < 20


def test_a_constant_backup_tag_is_still_a_valid_template() -> None:
    assert cli_app.run(["convert", "--backup-tag", "docker-original", "--help"]) == 0


@pytest.mark.parametrize(
    ("raised", "code", "shown"),
    [
        (RuntimeError("boom"), 2, "internal error: RuntimeError: boom"),
        (MemoryError(), 2, "internal error: MemoryError: out of memory"),
        (RecursionError("maximum recursion depth exceeded"), 2, "internal error: RecursionError"),
        (ValueError("line\nforged\x1b[2Jline"), 2, "ValueError: line?forged?[2Jline"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_anything_uncaught_is_one_line_and_never_exit_1(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raised: BaseException,
    code: int,
    shown: str,
) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(api, "check", explode)
    assert cli_app.run(["check", "oci:/nonexistent:v1"]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and shown in err and "Traceback" not in err


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_app.run(["check", "--no-such-option", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No such option: --no-such-option" in err


# ---- bounded local inputs ------------------------------------------------------------------------


def _fifo(path: Path) -> str:
    os.mkfifo(path)
    return str(path)


def _mkdir(path: Path) -> str:
    path.mkdir()
    return str(path)


def _sparse(path: Path, size: int) -> Path:
    with path.open("wb") as fh:
        fh.truncate(size)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda _t: "/dev/zero", "character device, not a regular file"),
        (lambda t: str(t), "a directory, not a regular file"),
        (lambda t: str(_sparse(t / "zeros", 300 * 1024 * 1024)), "over the 67108864 byte cap"),
    ],
)
def test_from_file_is_bounded(tmp_path: Path, make: Callable[[Path], str], message: str) -> None:
    name = make(tmp_path)
    started = time.monotonic()
    line = one_error_line(run_cli("batch", "--from-file", name, "--dry-run", timeout=30))
    assert message in line and time.monotonic() - started < 30


def test_from_file_reads_a_pipe_and_an_empty_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "refs"
    os.mkfifo(fifo)
    proc = run_cli("batch", "--from-file", str(fifo), "--dry-run", timeout=20)
    assert proc.returncode == 0 and "0 reference(s)" in proc.stdout, proc.stderr
    over = run_cli("batch", "--from-file", "-", stdin=b"x" * (65 * 1024 * 1024), timeout=30)
    assert "over the 67108864 byte cap" in one_error_line(over)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda _t: "/dev/zero", "character device, not a regular file"),
        (lambda t: str(t), "a directory, not a regular file"),
        (lambda t: _fifo(t / "j"), "a FIFO, not a regular file"),
        # rollback reads a line at a time, so its cap is the streamed one (64 GiB)
        (lambda t: str(_sparse(t / "big", 65 * 1024**3)), "over the 68719476736 byte cap"),
        (lambda t: str(_sparse(t / "zeros", 300 * 1024 * 1024)), "line over"),
        (lambda t: str(_line(t / "long", b"x" * (9 * 1024 * 1024))), "line over"),
        (lambda t: str(_line(t / "deep", b"[" * 100_000 + b"\n{}\n")), "not a journal line"),
        (lambda t: str(_line(t / "dup", _dup_keys())), "duplicate key 'reference'"),
    ],
)
def test_journals_are_bounded_and_must_be_regular_files(
    tmp_path: Path, make: Callable[[Path], str], message: str
) -> None:
    name = make(tmp_path)
    line = one_error_line(run_cli("rollback", name, timeout=30))
    assert message in line, line


def _line(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _dup_keys() -> bytes:
    line = b'{"v":1,"run":"r","reference":"a/b:1","reference":"evil/x:1","status":"converted"}'
    return line + b"\n" + line + b"\n"


# ---- outputs checked before the first write; failures to record still summarized -------------


@pytest.fixture
def docker_tag(registry: RunningRegistry) -> tuple[str, str]:
    """A fresh Docker image's repository and original digest (one per test)."""
    repo = f"cli-fail/{os.urandom(4).hex()}"
    s = Seeder(registry.url)
    image = s.docker_image(repo, "v1", key=repo)
    s.close()
    return repo, image.digest


@pytest.mark.parametrize(
    ("option", "make", "message"),
    [
        ("--report", lambda t: "/nonexistent-dir/r.html", "directory /nonexistent-dir does not"),
        ("--report", lambda t: _mkdir(t / "r.html"), "a directory"),
        ("--journal", lambda t: "/dev/zero", "a character device"),
        ("--journal", lambda t: _fifo(t / "j"), "a FIFO"),
        ("--journal", lambda t: "/nonexistent-dir/j.jsonl", "does not exist"),
    ],
)
def test_an_unwritable_output_stops_batch_before_any_tag_moves(
    registry: RunningRegistry,
    docker_tag: tuple[str, str],
    tmp_path: Path,
    option: str,
    make: Callable[[Path], str],
    message: str,
) -> None:
    repo, original = docker_tag
    mark = registry.log_mark()
    target = make(tmp_path)
    proc = run_cli("batch", registry.host, "--repo", repo, option, target, timeout=60)
    assert message in one_error_line(proc)
    assert seed.head_manifest(registry.url, repo, "v1") == original
    assert [e for e in registry.access_log_lines(since=mark) if e.method in ("PUT", "POST")] == []


def test_a_journal_that_stops_taking_writes_still_gets_a_summary_and_exit_2(
    registry: RunningRegistry, docker_tag: tuple[str, str], tmp_path: Path
) -> None:
    repo, original = docker_tag
    journal = tmp_path / "j.jsonl"
    journal.write_bytes(b"")
    # The child may not grow any file past 0 bytes: the first journal line fails (EFBIG).
    proc = run_cli("batch", registry.host, "--repo", repo, "--journal", str(journal), fsize=0)
    line = one_error_line(proc)
    assert "cannot write journal" in line
    assert "0 converted" in proc.stdout and "1 failed" in proc.stdout  # the summary is there
    assert seed.head_manifest(registry.url, repo, "v1") == original  # no move without its undo


def test_the_summary_counts_children_that_landed_before_a_failure(
    registry: RunningRegistry,
) -> None:
    repo = f"cli-fail/list-{os.urandom(4).hex()}"
    s = Seeder(registry.url)
    lst = s.docker_list(repo, "v1", key=repo)

    def someone_else_pushes() -> None:  # between the children and the tag: the guard trips
        s.docker_image(repo, "v1", key=f"{repo}-other")

    options = BatchOptions(convert_options=ConvertOptions(before_tag=someone_else_pushes))
    with Client() as client:
        [result] = run(
            [Reference.parse(f"{registry.host}/{repo}:v1")], client=client, options=options
        )  # noqa: E501
    s.close()
    assert result.status == "failed" and "tag moved" in (result.error or "")
    assert result.pushed_manifests == len(lst.children) == 2
    for child in result.moved[:-1]:
        assert seed.head_manifest(registry.url, repo, child.new_digest) == child.new_digest
