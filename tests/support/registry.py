"""A real CNCF distribution (``docker-registry`` 2.8) process for integration tests.

Starts, waits for and stops registry processes on free loopback ports and reads their access
log. The seeding helpers (images built by umoci, pushed by skopeo or by raw ``requests``) live in
``tests/support/seed.py``; neither module imports the package under test, so the fixtures never grade
our own homework.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

REGISTRY_BIN = "docker-registry"
REQUIRED_TOOLS = (REGISTRY_BIN, "skopeo", "umoci")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
PORT_ATTEMPTS = 3
LOG_TAIL_LINES = 40
LOG_SYNC_TIMEOUT = 5.0
HTPASSWD_REALM = "oci-normalize-test"
# Query parameter of the marker request that access_log_lines() sends to flush the log.
SYNC_PARAM = "oci-normalize-log-sync"

# Apache combined format, written to stdout by distribution's gorilla access-log handler:
#   127.0.0.1 - - [27/Nov/2026:16:33:51 +0000] "GET /v2/a/manifests/b HTTP/1.1" 404 93 "" "curl"
_ACCESS_RE = re.compile(
    r"^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "
    r'"(?P<method>[A-Z]+) (?P<uri>\S+) (?P<proto>[^"]+)" (?P<status>\d{3}) (?P<size>\d+|-)'
    r'(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?\s*$'
)


def in_ci() -> bool:
    """True when the CI environment variable says so (CI=true, as .ci/run sets it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_tools(tools: tuple[str, ...] = REQUIRED_TOOLS) -> list[str]:
    return [tool for tool in tools if shutil.which(tool) is None]


def require_tools(*tools: str) -> None:
    """Skip the current test when a peer tool is missing; fail instead under CI=true."""
    missing = missing_tools(tools or REQUIRED_TOOLS)
    if not missing:
        return
    reason = f"registry test needs {', '.join(missing)} on PATH (apt-get install them)"
    if in_ci():
        pytest.fail(f"{reason}; CI=true never skips registry tests", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class AccessLogEntry:
    method: str
    uri: str  # as logged: path plus query string
    status: int
    size: int
    user_agent: str

    @property
    def path(self) -> str:
        return self.uri.split("?", 1)[0]


def parse_access_log(text: str) -> list[AccessLogEntry]:
    """Access-log entries of a registry log; JSON application log lines are ignored."""
    entries = []
    for line in text.splitlines():
        match = _ACCESS_RE.match(line)
        if match is None:
            continue
        size = match["size"]
        entries.append(
            AccessLogEntry(
                method=match["method"],
                uri=match["uri"],
                status=int(match["status"]),
                size=0 if size == "-" else int(size),
                user_agent=match["agent"] or "",
            )
        )
    return entries


@dataclass
class RunningRegistry:
    host: str  # "127.0.0.1:PORT"
    url: str  # "http://127.0.0.1:PORT"
    log_path: Path
    storage_dir: Path
    config_path: Path
    process: subprocess.Popen[bytes]
    users: dict[str, str] = field(default_factory=dict)  # htpasswd mode: user -> password

    @property
    def auth(self) -> tuple[str, str] | None:
        """(user, password) of the first htpasswd user, for requests' ``auth=``; else None."""
        return next(iter(self.users.items()), None)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def access_log_lines(self, *, since: int = 0, sync: bool = True) -> list[AccessLogEntry]:
        """HTTP requests this registry served, oldest first, from entry number ``since`` on.

        The registry writes an access line just *after* the response went out, so with
        ``sync`` (default) a marker request is sent and awaited first: every request the
        caller completed before this call is then in the list. Marker requests are left out.
        """
        if sync:
            self._sync_log()
        entries = [e for e in parse_access_log(self.log_text()) if SYNC_PARAM not in e.uri]
        return entries[since:]

    def log_mark(self) -> int:
        """Number of access entries so far: pass it as ``since=`` to see only newer requests."""
        return len(self.access_log_lines())

    def count_requests(self, method: str, path: str, *, since: int = 0) -> int:
        return sum(
            1
            for e in self.access_log_lines(since=since)
            if e.method == method.upper() and e.path == path
        )

    def _sync_log(self) -> None:
        token = secrets.token_hex(8)
        with contextlib.suppress(requests.RequestException):
            requests.get(f"{self.url}/v2/?{SYNC_PARAM}={token}", timeout=5)
        deadline = time.monotonic() + LOG_SYNC_TIMEOUT
        while token not in self.log_text():
            if time.monotonic() > deadline:
                raise RuntimeError(f"registry access log never showed marker {token}")
            time.sleep(0.01)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def htpasswd_line(user: str, password: str) -> str:
    """One bcrypt htpasswd entry, the only hash kind distribution accepts."""
    try:
        import bcrypt
    except ImportError:
        return _htpasswd_line_apache(user, password)
    # Cost 4 is bcrypt's minimum: fine for tests, and every authenticated request pays it.
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return f"{user}:{hashed}"


def _htpasswd_line_apache(user: str, password: str) -> str:
    if shutil.which("htpasswd") is None:
        raise RuntimeError("htpasswd mode needs the bcrypt package (or apache2-utils' htpasswd)")
    out = subprocess.run(
        ["htpasswd", "-nbB", "-C", "4", user, password],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.strip()


def registry_config(
    *,
    port: int,
    storage_dir: Path,
    schema1: bool = False,
    htpasswd_path: Path | None = None,
    extra_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "json", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage_dir)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
        "validation": {"manifests": {"urls": {"allow": ["^https?://"]}}},
    }
    if schema1:
        # No signingkeyfile: distribution 2.8 generates an ephemeral ECDSA key at start.
        config["compatibility"] = {"schema1": {"enabled": True}}
    if htpasswd_path is not None:
        config["auth"] = {"htpasswd": {"realm": HTPASSWD_REALM, "path": str(htpasswd_path)}}
    return deep_merge(config, extra_config or {})


def _child_env() -> dict[str, str]:
    # The registry reads every REGISTRY_* variable as configuration: keep the parent's out.
    return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGTERM the registry if pytest dies without running teardown."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def start_registry(
    workdir: Path,
    *,
    schema1: bool = False,
    htpasswd: Mapping[str, str] | None = None,
    extra_config: Mapping[str, Any] | None = None,
) -> RunningRegistry:
    """Start ``docker-registry serve`` on a free loopback port; return once /v2/ answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    storage_dir = workdir / "storage"
    storage_dir.mkdir(exist_ok=True)
    htpasswd_path = None
    if htpasswd:
        htpasswd_path = workdir / "htpasswd"
        lines = [htpasswd_line(user, pw) for user, pw in htpasswd.items()]
        htpasswd_path.write_text("\n".join(lines) + "\n")
    last_error: RuntimeError | None = None
    for attempt in range(PORT_ATTEMPTS):
        port = free_port()
        config = registry_config(
            port=port,
            storage_dir=storage_dir,
            schema1=schema1,
            htpasswd_path=htpasswd_path,
            extra_config=extra_config,
        )
        addr = str(config["http"]["addr"])
        config_path = workdir / "config.yml"
        # YAML is a superset of JSON: a JSON dump is a valid registry config.
        config_path.write_text(json.dumps(config, indent=2) + "\n")
        log_path = workdir / f"registry-{attempt}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [REGISTRY_BIN, "serve", str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=_child_env(),
                cwd=workdir,
                preexec_fn=_die_with_parent,
            )
        running = RunningRegistry(
            host=addr,
            url=f"http://{addr}",
            log_path=log_path,
            storage_dir=storage_dir,
            config_path=config_path,
            process=process,
            users=dict(htpasswd or {}),
        )
        try:
            _wait_ready(running)
            return running
        except RuntimeError as exc:
            running.stop()
            last_error = exc
            if "address already in use" not in running.log_text():
                break
    assert last_error is not None
    raise last_error


def _wait_ready(running: RunningRegistry) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not running.alive():
            raise RuntimeError(
                f"docker-registry exited with {running.process.returncode} before answering;"
                f" log tail ({running.log_path}):\n{running.log_tail()}"
            )
        with contextlib.suppress(requests.RequestException):
            # 200 when open, 401 with auth: either way it is serving.
            if requests.get(f"{running.url}/v2/", timeout=1).status_code in (200, 401):
                return
        time.sleep(0.05)
    raise RuntimeError(
        f"docker-registry on {running.host} did not answer GET /v2/ within {START_TIMEOUT} s;"
        f" log tail ({running.log_path}):\n{running.log_tail()}"
    )


class RegistryFactory:
    """Starts registries under one base directory and stops all of them on ``close()``."""

    def __init__(self, base_dir: Path) -> None:
        self._base_dir = base_dir
        self._started: list[RunningRegistry] = []

    def __call__(
        self,
        *,
        schema1: bool = False,
        htpasswd: dict[str, str] | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> RunningRegistry:
        require_tools(REGISTRY_BIN)
        workdir = self._base_dir / f"registry-{len(self._started)}"
        running = start_registry(
            workdir, schema1=schema1, htpasswd=htpasswd, extra_config=extra_config
        )
        self._started.append(running)
        return running

    def close(self) -> None:
        for running in reversed(self._started):
            running.stop()
        self._started.clear()


@contextlib.contextmanager
def registry_factory_at(base_dir: Path) -> Iterator[RegistryFactory]:
    factory = RegistryFactory(base_dir)
    try:
        yield factory
    finally:
        factory.close()
