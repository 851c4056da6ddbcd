"""The CLI against a registry that lies, drips, floods and injects (tests/support/hostile_registry).

Each case runs ``python -m oci_normalize`` as a subprocess under a memory limit and a timeout and
asserts what a user relies on: the documented exit code (2 for an error, never 1 or a crash),
exactly one clean line on stderr (no ESC, no traceback, short), no write reached the registry,
nothing reached the "other host", the password given on stdin appears in no output, and the
run ended in bounded time.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import secretguard
from tests.support.hostile_registry import MODES, Hostile, hostile_registry

#: Address space the CLI may use: a flood that is read whole blows through this.
MEMORY_LIMIT = 1 << 30
PASSWORD = "hostile-pa55word-xyz"
#: Longest error line accepted (the registry's 60 KB message must have been cut).
MAX_LINE = 1200


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Run:
    environ = {**os.environ, "MALLOC_ARENA_MAX": "2", **(env or {})}
    environ.pop("REGISTRY_AUTH_FILE", None)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "oci_normalize", *args],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        errors="replace",
        env=environ,
        timeout=timeout,
        preexec_fn=_limit_memory,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


def creds() -> list[str]:
    return ["--username", "tester", "--password-stdin"]


def assert_clean(run: Run, reg: Hostile | None, *, code: int = 2, within: float = 20) -> str:
    """The common promises; returns the one stderr line."""
    assert run.code == code, (run.code, run.out[-2000:], run.err[-2000:])
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert len(lines) == 1, run.err[-3000:]
    line = lines[0]
    assert "Traceback" not in run.err and "\x1b" not in run.err + run.out
    assert len(line) <= MAX_LINE, len(line)
    assert PASSWORD not in run.err + run.out
    assert not secretguard.leaks(run.err + run.out)
    assert run.seconds < within, run.seconds
    if reg is not None:
        assert reg.log.writes() == [], reg.log.writes()
        assert reg.canary.log.seen == [], reg.canary.log.seen
    return line


@pytest.fixture(autouse=True)
def _register_password() -> None:
    secretguard.register_basic("tester", PASSWORD)


def test_the_honest_mode_works_so_failures_below_are_the_registrys() -> None:
    with hostile_registry("honest") as reg:
        run = run_cli("check", *creds(), f"{reg.host}/app:v1")
        assert run.code == 1, run.err  # Docker types found: the harness image is fine
        assert reg.log.writes() == []


#: mode → (extra CLI arguments, what the error line must say, seconds allowed)
FAILURES: dict[str, tuple[tuple[str, ...], str, float]] = {
    "lying-digest": ((), "expected sha256:", 20),
    "lying-size": ((), "its descriptor says 1", 20),
    "schema1-appended": ((), "malformed schema1 signature block", 20),
    "drip": (("--timeout", "3", "--retries", "0"), "did not finish answering within 3 s", 12),
    "drip-headers": (("--timeout", "3", "--retries", "0"), "within 3 s", 12),
    "endless-manifest": ((), "byte cap", 30),
    "endless-error": (("--retries", "0"), "HTTP 500", 30),
    "hostile-error": ((), "BROKEN", 20),
    "nested-error": ((), "HTTP 500", 20),
    "nested-manifest": ((), "nests deeper than", 20),
    "token-huge": ((), "authentication failed", 30),
    "token-nested": ((), "authentication failed", 20),
    "token-nonlatin": ((), "authentication failed", 20),
    "token-malformed": ((), "authentication failed", 20),
    "token-drip": (("--timeout", "3", "--retries", "0"), "authentication failed", 12),
    "redirect-file": ((), "non-HTTP URL", 20),
}


@pytest.mark.parametrize("mode", sorted(FAILURES))
def test_check_fails_cleanly(mode: str) -> None:
    extra, says, within = FAILURES[mode]
    with hostile_registry(mode) as reg:
        run = run_cli("check", *creds(), *extra, f"{reg.host}/app:v1")
        line = assert_clean(run, reg, within=within)
    assert says in line, line
    assert line.startswith("oci-normalize: error: ")


@pytest.mark.parametrize(
    "mode",
    ["lying-digest", "lying-size", "schema1-appended", "nested-manifest", "hostile-types", "drip"],
)
def test_convert_in_place_writes_nothing_when_content_lies(mode: str) -> None:
    with hostile_registry(mode) as reg:
        args = ("--timeout", "3", "--retries", "0") if mode == "drip" else ()
        run = run_cli("convert", *creds(), *args, f"{reg.host}/app:v1")
        assert_clean(run, reg, within=15)  # and, above all, no PUT/POST/PATCH/DELETE


def test_a_manifest_by_digest_with_other_bytes_is_refused() -> None:
    with hostile_registry("lying-body") as reg:
        run = run_cli("check", *creds(), f"{reg.host}/app@{reg.content.root}")
        line = assert_clean(run, reg)
    assert f"expected {reg.content.root}" in line


def _self_signed(directory: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 that is its own CA (cert file, key file)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


def test_the_deadline_holds_over_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    with hostile_registry("drip", tls=(cert, key)) as reg:
        args = ("--ca-file", cert, "--timeout", "3", "--retries", "0")
        run = run_cli("check", *creds(), *args, f"{reg.host}/app:v1")
        line = assert_clean(run, reg, within=12)
    assert "did not finish answering within 3 s" in line, line


def test_a_hostile_error_text_is_one_short_printable_line() -> None:
    with hostile_registry("hostile-error") as reg:
        line = assert_clean(run_cli("check", *creds(), f"{reg.host}/app:v1"), reg)
    assert "FAKE?Line two" in line or "FAKE" in line
    assert "\r" not in line and "AAAA" * 200 not in line


def test_media_types_and_platforms_with_control_characters_are_refused() -> None:
    with hostile_registry("hostile-types") as reg:
        line = assert_clean(run_cli("check", *creds(), f"{reg.host}/app:v1"), reg)
    assert "layers[0]: mediaType is not a printable media type" in line, line


def test_platform_fields_and_content_types_are_shown_printable() -> None:
    with hostile_registry("hostile-platform") as reg:
        run = run_cli("check", *creds(), f"{reg.host}/app:v1")
        assert run.code == 1, run.err  # Docker types found; nothing wrong with the image
        assert reg.log.writes() == []
    assert "\x1b" not in run.out + run.err
    assert not any(line.startswith("FAKE") for line in run.out.splitlines())
    assert "manifests[0](linux?[2J/a?FAKE)" in run.out, run.out


def test_a_registry_that_echoes_credentials_does_not_get_them_shown() -> None:
    def basic(reg: Hostile) -> None:
        reg.basic_user = "tester"

    with hostile_registry("echo-secret", configure=basic) as reg:
        line = assert_clean(run_cli("check", *creds(), f"{reg.host}/app:v1"), reg)
        assert any("Authorization" in s.headers for s in reg.log.seen)
    assert "you sent" in line and "***" in line, line


def test_a_blob_longer_than_its_descriptor_never_lands(tmp_path: Path) -> None:
    with hostile_registry("lying-blob") as reg:
        dest = tmp_path / "out"
        run = run_cli("convert", *creds(), f"{reg.host}/app:v1", f"oci:{dest}:v1")
        line = assert_clean(run, reg)
    assert "does not match its digest/size" in line or "digest" in line
    blobs = dest / "blobs" / "sha256"
    layer = next(d for d in reg.content.blobs if reg.content.blobs[d][:2] == b"\x1f\x8b")
    assert not (blobs / layer.split(":")[1]).exists()


def test_a_dripping_blob_ends_at_its_deadline(tmp_path: Path) -> None:
    with hostile_registry("drip-blob") as reg:
        dest = f"oci:{tmp_path / 'out'}:v1"
        run = run_cli(
            "convert", *creds(), "--timeout", "3", "--retries", "0", f"{reg.host}/app:v1", dest
        )
        line = assert_clean(run, reg, within=15)
    assert "did not finish answering within 3 s" in line, line


def test_a_wide_deep_index_costs_one_get_per_distinct_manifest() -> None:
    with hostile_registry("fanout") as reg:
        run = run_cli("check", *creds(), f"{reg.host}/app:v1", timeout=120)
        assert run.code == 1, run.err  # Docker leaves: found, and nothing else went wrong
        gets = reg.log.gets("/v2/app/manifests/")
        assert reg.log.writes() == []
    # 43 distinct manifests: the root by tag and 42 by digest, each once (6^7 paths).
    assert len(gets) == len(reg.content.manifests) == 43
    assert len({g.path for g in gets}) == 43
    assert run.seconds < 30


@pytest.mark.parametrize(
    ("mode", "says", "env"),
    [
        ("huge-catalog", "byte cap", {}),
        ("endless-pagination", "more than 2000 names", {"OCI_NORMALIZE_MAX_LISTED_NAMES": "2000"}),
        ("pagination-loop", "loop", {}),
        ("pagination-elsewhere", "next-page link leaves it", {}),
    ],
)
def test_a_catalog_that_never_ends_or_wanders_is_refused(
    mode: str, says: str, env: dict[str, str]
) -> None:
    with hostile_registry(mode) as reg:
        run = run_cli("batch", *creds(), "--dry-run", reg.host, env=env)
        line = assert_clean(run, reg, within=40)
    assert says in line, line


def test_hostile_catalog_names_are_skipped_and_never_requested() -> None:
    with hostile_registry("hostile-catalog") as reg:
        run = run_cli("batch", *creds(), "--dry-run", reg.host)
        assert run.code == 3, run.err  # some references failed: the documented code
        assert "Traceback" not in run.err and "\x1b" not in run.out + run.err
        assert PASSWORD not in run.out + run.err
        paths = {s.path.split("?")[0] for s in reg.log.seen}
        assert reg.log.writes() == [] and reg.canary.log.seen == []
    assert all(p in ("/v2/", "/v2/_catalog") or p.startswith("/v2/app/") for p in paths), paths
    assert "/v2/app/manifests/v1" in paths
    assert "invalid repository name" in run.out + run.err


def test_hostile_tags_are_skipped_and_never_requested() -> None:
    with hostile_registry("hostile-tags") as reg:
        run = run_cli("batch", *creds(), "--dry-run", reg.host)
        assert run.code == 3, run.err
        assert "\x1b" not in run.out + run.err and "\nINJECTED" not in run.out + run.err
        manifests = {s.path for s in reg.log.gets("/v2/app/manifests/")}
        assert reg.log.writes() == []
    assert "/v2/app/manifests/v1" in manifests
    assert all(p == "/v2/app/manifests/v1" or "sha256:" in p for p in manifests), manifests
    assert "invalid tag" in run.out + run.err


def test_a_redirect_to_another_host_carries_no_credentials() -> None:
    def basic_only(reg: Hostile) -> None:
        reg.basic_user = "tester"

    with hostile_registry("redirect-elsewhere", configure=basic_only) as reg:
        run = run_cli("check", *creds(), f"{reg.host}/app:v1")
        assert run.code == 2, run.err
        assert PASSWORD not in run.out + run.err and "Traceback" not in run.err
        assert reg.log.writes() == []
        sent = [s.headers for s in reg.log.seen if "Authorization" in s.headers]
        went = reg.canary.log.seen
    assert sent, "the registry asked for and got credentials"
    assert went and all("Authorization" not in s.headers for s in went)


@pytest.mark.parametrize(
    ("ref", "says"),
    [
        ("tester:{pw}@{host}/app:v1", "cannot carry credentials"),
        ("127.0.0.1:99999/app:v1", "bad registry host"),
        ("{host}/app:v1@sha256:zz", "bad digest"),
        ("{host}/a/../../v2/x:v1", "must be lower-case"),
    ],
)
def test_bad_references_are_one_line_and_never_echo_a_password(ref: str, says: str) -> None:
    with hostile_registry("honest") as reg:
        run = run_cli("check", ref.format(pw=PASSWORD, host=reg.host))
        line = assert_clean(run, reg)
        assert reg.log.seen == []
    assert says in line, line


def test_every_mode_is_exercised() -> None:
    covered = set(FAILURES) | {
        "honest",
        "lying-body",
        "lying-blob",
        "drip-blob",
        "fanout",
        "hostile-types",
        "echo-secret",
        "hostile-platform",
        "huge-catalog",
        "endless-pagination",
        "pagination-loop",
        "pagination-elsewhere",
        "hostile-catalog",
        "hostile-tags",
        "redirect-elsewhere",
    }
    assert set(MODES) <= covered
