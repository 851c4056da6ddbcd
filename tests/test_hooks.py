"""The ``--sign-with`` runner: argv without a shell, its environment, exit, timeout, secrets, limit.

Every hook here is a real process (a small Python script written to ``tmp_path``) that reports
what it received; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from oci_normalize.convert.hooks import (
    DEFAULT_SIGN_TIMEOUT_S,
    STDERR_SHOWN_CHARS,
    SignHook,
    SignRequest,
    describe,
    run_hook,
)
from oci_normalize.digest import Digest
from oci_normalize.errors import HookError, OciNormalizeError
from oci_normalize.http import secrets as client_secrets
from tests.support import secretguard

OLD = Digest.of(b"old manifest")
NEW = Digest.of(b"new manifest")
REQUEST = SignRequest(
    registry="127.0.0.1:5000", repository="team/app", tag="v1", old_digest=OLD, new_digest=NEW
)
REF = f"127.0.0.1:5000/team/app@{NEW}"
PY = shlex.quote(sys.executable)
# Tag and repository values no registry would accept, but that would do harm in a shell.
DANGEROUS = ["v1;rm -rf x", "$(id)", "`id`", "a b  c", "'\"", "*", "--help", "$HOME", "x\ny"]

# Writes {"argv": argv[1:], "env": {OCI_NORMALIZE_*}} as JSON to the file named by argv[1].
RECORDER = """
import json, os, sys
env = {k: v for k, v in os.environ.items() if k.startswith("OCI_NORMALIZE_")}
with open(sys.argv[1], "w") as out:
    json.dump({"argv": sys.argv[2:], "env": env}, out)
"""


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return f"{PY} {shlex.quote(str(path))}"


def recorded(
    tmp_path: Path, command_tail: str, request: SignRequest = REQUEST
) -> dict[str, object]:
    out = tmp_path / "recorded.json"
    hook = SignHook.parse(
        f"{script(tmp_path, 'rec', RECORDER)} {shlex.quote(str(out))} {command_tail}"
    )
    run_hook(hook, request, timeout=30, limiter=None)
    data = json.loads(out.read_text())
    assert isinstance(data, dict)
    return data


# --- parsing and argv -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            "cosign sign --yes --key env://COSIGN_KEY {ref}",
            ("cosign", "sign", "--yes", "--key", "env://COSIGN_KEY", "{ref}"),
        ),
        ("notation sign --key release {ref}", ("notation", "sign", "--key", "release", "{ref}")),
        ("sign 'two words' \"a;b\" c\\ d", ("sign", "two words", "a;b", "c d")),
        ("sign $(id) `id` ;", ("sign", "$(id)", "`id`", ";")),  # no shell: kept literally
        ("  padded   {ref}  ", ("padded", "{ref}")),
    ],
)
def test_parse_splits_like_a_shell_without_running_one(text: str, words: tuple[str, ...]) -> None:
    assert SignHook.parse(text).words == words


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \t ", "empty"),
        ("cosign sign 'unbalanced", "No closing quotation"),
        ('cosign "unbalanced', "No closing quotation"),
        ("cosign sign \\", "No escaped character"),
        ("cosign\x00sign", "NUL"),
    ],
)
def test_parse_refuses_with_one_clear_error(text: str, reason: str) -> None:
    with pytest.raises(HookError, match=reason) as info:
        SignHook.parse(text)
    assert isinstance(info.value, OciNormalizeError)
    assert "\n" not in str(info.value) and "--sign-with" in str(info.value)


def test_ref_replaces_a_whole_argument_and_is_substituted_inside_a_longer_one() -> None:
    hook = SignHook.parse("sign {ref} --image={ref} x{ref}y {REF} {ref")
    assert hook.argv(REF) == ["sign", REF, f"--image={REF}", f"x{REF}y", "{REF}", "{ref"]
    # a value with spaces stays one argument, whole or embedded
    odd = "h/r@sha256:a b;c"
    assert hook.argv(odd)[1:4] == [odd, f"--image={odd}", f"x{odd}y"]


def test_the_ref_names_the_new_digest() -> None:
    assert REQUEST.ref == REF
    assert REQUEST.manifest == "127.0.0.1:5000/team/app:v1"
    child = SignRequest("h:1", "r", None, OLD, NEW)
    assert child.manifest == f"h:1/r@{OLD}"


@pytest.mark.parametrize("bad", DANGEROUS, ids=range(len(DANGEROUS)))
def test_a_dangerous_name_reaches_the_hook_as_one_argv_element(tmp_path: Path, bad: str) -> None:
    request = SignRequest(
        registry="127.0.0.1:5000", repository=f"team/{bad}", tag=bad, old_digest=OLD, new_digest=NEW
    )
    got = recorded(tmp_path, "--tag=$OCI_NORMALIZE_TAG {ref} --image={ref} $(id) ';' `id`", request)
    ref = f"127.0.0.1:5000/team/{bad}@{NEW}"
    assert got["argv"] == ["--tag=$OCI_NORMALIZE_TAG", ref, f"--image={ref}", "$(id)", ";", "`id`"]
    env = got["env"]
    assert isinstance(env, dict)
    assert env["OCI_NORMALIZE_TAG"] == bad and env["OCI_NORMALIZE_IMAGE"] == ref


# --- environment ---------------------------------------------------------------------------------


def test_env_adds_the_manifest_variables_to_the_base() -> None:
    env = REQUEST.env({"PATH": "/bin", "OCI_NORMALIZE_TAG": "stale"})
    assert env == {
        "PATH": "/bin",
        "OCI_NORMALIZE_IMAGE": REF,
        "OCI_NORMALIZE_REGISTRY": "127.0.0.1:5000",
        "OCI_NORMALIZE_REPOSITORY": "team/app",
        "OCI_NORMALIZE_TAG": "v1",
        "OCI_NORMALIZE_OLD_DIGEST": str(OLD),
        "OCI_NORMALIZE_NEW_DIGEST": str(NEW),
    }
    assert SignRequest("h", "r", None, OLD, NEW).env({})["OCI_NORMALIZE_TAG"] == ""


def test_the_hook_sees_those_variables(tmp_path: Path) -> None:
    got = recorded(tmp_path, "{ref}")
    assert got["argv"] == [REF]
    assert got["env"] == REQUEST.env({})


# --- exit status, stderr -------------------------------------------------------------------------


def test_exit_0_returns_the_run(tmp_path: Path) -> None:
    hook = SignHook.parse(
        script(tmp_path, "ok", "import sys; print('signed'); print('note', file=sys.stderr)")
        + " {ref}"
    )
    run = run_hook(hook, REQUEST, timeout=30, limiter=None)
    assert run.argv[-1] == REF and run.argv[0] == sys.executable
    assert run.stderr_tail == "note"  # stdout ("signed") is dropped
    assert 0 <= run.seconds < 30


def test_non_zero_exit_fails_with_a_capped_printable_stderr_tail(tmp_path: Path) -> None:
    body = """
        import sys
        sys.stderr.write("FIRST-LINE\\n" + "noise " * 20000 + "\\n")
        sys.stderr.write("\\x1b[31mred\\x1b[0m\\rLAST-LINE: key not found\\n")
        sys.exit(7)
    """
    hook = SignHook.parse(script(tmp_path, "fail", body) + " {ref}")
    with pytest.raises(HookError) as info:
        run_hook(hook, REQUEST, timeout=30, limiter=None)
    message = str(info.value)
    assert message.startswith(
        f"sign hook for 127.0.0.1:5000/team/app:v1 (new digest {NEW}) failed: exit status 7"
    )
    assert "LAST-LINE: key not found" in message
    assert "FIRST-LINE" not in message  # only the tail
    assert len(message) < STDERR_SHOWN_CHARS + 200
    assert "\x1b" not in message and "\r" not in message and "\n" not in message


def test_a_command_that_does_not_exist_fails_cleanly(tmp_path: Path) -> None:
    hook = SignHook.parse(f"{tmp_path}/no-such-signer {{ref}}")
    with pytest.raises(HookError, match="could not start .*no-such-signer.*No such file"):
        run_hook(hook, REQUEST, timeout=30, limiter=None)


def test_a_hook_killed_by_a_signal_says_so(tmp_path: Path) -> None:
    hook = SignHook.parse(
        script(tmp_path, "sig", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    )
    with pytest.raises(HookError, match="killed by signal SIGTERM"):
        run_hook(hook, REQUEST, timeout=30, limiter=None)


def test_stdin_is_closed(tmp_path: Path) -> None:
    body = "import sys; sys.exit(0 if sys.stdin.read() == '' else 9)"
    run_hook(SignHook.parse(script(tmp_path, "stdin", body)), REQUEST, timeout=30, limiter=None)


# --- timeout -------------------------------------------------------------------------------------


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie waiting for init to reap it runs no more


def test_a_hanging_hook_and_its_children_are_killed_at_the_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    body = f"""
        import subprocess, sys, time
        child = subprocess.Popen(["sleep", "300"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        print("waiting for the KMS", file=sys.stderr, flush=True)
        time.sleep(300)
    """
    hook = SignHook.parse(script(tmp_path, "hang", body))
    started = time.monotonic()
    with pytest.raises(HookError) as info:
        run_hook(hook, REQUEST, timeout=1.5, limiter=None)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 15
    assert "failed: timed out after 1.5s" in str(info.value)
    assert "waiting for the KMS" in str(info.value)
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child), f"the hook's child {child} outlived the timeout"


def test_a_background_child_left_holding_stderr_is_ended_after_the_hook_exits(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "child.pid"
    body = f"""
        import subprocess
        child = subprocess.Popen(["sleep", "300"])  # inherits stderr: the pipe stays open
        open({str(pidfile)!r}, "w").write(str(child.pid))
    """
    started = time.monotonic()
    run_hook(SignHook.parse(script(tmp_path, "bg", body)), REQUEST, timeout=60, limiter=None)
    assert time.monotonic() - started < 30  # not the 60 s timeout, not the child's 300 s
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child)


def test_the_default_timeout_is_two_minutes() -> None:
    assert DEFAULT_SIGN_TIMEOUT_S == 120


# --- secrets -------------------------------------------------------------------------------------


def test_secrets_from_the_environment_never_reach_the_error(tmp_path: Path) -> None:
    secrets = {
        "COSIGN_PASSWORD": "cosign-pw-5b9e1d",
        "COSIGN_KEY": "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----abc123",
        "MY_API_TOKEN": "tok-77c0a9e2f1",
        "NOTATION_PASSWORD": "notation-pw-41aa",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-0f0f0f",
        "GOOGLE_APPLICATION_CREDENTIALS": "/secret/path/gcp-creds.json",
        "VAULT_AUTH": "vault-auth-c3d4e5",
        "DB_PASS": "db-pass-9a8b7c",
    }
    remembered = "registry-bearer-e7d1c0aa"  # a token the client itself holds
    client_secrets.remember(remembered)
    secretguard.register(*secrets.values(), remembered)
    base = {"PATH": os.environ.get("PATH", "/bin"), "HOME": "/nonexistent-home", **secrets}
    body = f"""
        import os, sys
        for name in {sorted(secrets)!r}:
            print(name, "=", os.environ[name], file=sys.stderr)
        print("bearer", {remembered!r}, file=sys.stderr)
        print("home", os.environ["HOME"], file=sys.stderr)
        sys.exit(1)
    """
    command = script(tmp_path, "leak", body) + f" --password {secrets['DB_PASS']} {{ref}}"
    hook = SignHook.parse(command)
    with pytest.raises(HookError) as info:
        run_hook(hook, REQUEST, timeout=30, limiter=None, base_env=base)
    message = str(info.value)
    for value in [*secrets.values(), remembered]:
        assert value not in message
    assert message.count("***") >= len(secrets) + 1
    assert "home /nonexistent-home" in message  # ordinary values stay readable
    shown = describe(hook, REQUEST, base_env=base)
    assert secrets["DB_PASS"] not in shown and "--password ***" in shown


def test_a_value_that_is_part_of_the_reference_is_not_masked() -> None:
    base = {"COSIGN_REPOSITORY": "127.0.0.1:5000/team"}
    assert describe(SignHook.parse("sign {ref}"), REQUEST, base_env=base) == f"sign {REF}"


# --- dry run -------------------------------------------------------------------------------------


def test_describe_is_the_exact_argv_shell_quoted(tmp_path: Path) -> None:
    hook = SignHook.parse("cosign sign --yes --key env://COSIGN_KEY -a 'note=a b' {ref}")
    shown = describe(hook, REQUEST, base_env={})
    assert shown == f"cosign sign --yes --key env://COSIGN_KEY -a 'note=a b' {REF}"
    assert shlex.split(shown) == hook.argv(REF)


# --- concurrency ---------------------------------------------------------------------------------


def test_the_limiter_bounds_how_many_hooks_run_at_once(tmp_path: Path) -> None:
    log = tmp_path / "spans.log"
    body = f"""
        import os, sys, time
        start = time.monotonic()
        time.sleep(1.0)
        with open({str(log)!r}, "a") as out:
            out.write(f"{{start}} {{time.monotonic()}}\\n")
    """
    hook = SignHook.parse(script(tmp_path, "slow", body))
    limiter = threading.Semaphore(2)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            run_hook(hook, REQUEST, timeout=60, limiter=limiter)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    spans = [tuple(map(float, line.split())) for line in log.read_text().splitlines()]
    assert len(spans) == 6
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most == 2, f"{most} hooks ran at once with a limit of 2"


def test_a_failing_hook_gives_its_slot_back(tmp_path: Path) -> None:
    limiter = threading.Semaphore(1)
    hook = SignHook.parse(script(tmp_path, "no", "raise SystemExit(3)"))
    for _ in range(2):  # the second would wait forever if the first kept the slot
        with pytest.raises(HookError, match="exit status 3"):
            run_hook(hook, REQUEST, timeout=30, limiter=limiter)
    assert limiter.acquire(timeout=0)
