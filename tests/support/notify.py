"""An ``oci-normalize serve`` subprocess and a registry that notifies it.

``notifications_config`` is the distribution config snippet (docs/serve.md shows the same);
:class:`ServeProcess` starts ``serve`` on a free loopback port and reads its /metrics;
:func:`oci_pure` judges an image from the registry's own answers (not from our code).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.support.registry import free_port

START_TIMEOUT = 20.0
STOP_TIMEOUT = 25.0
TOKEN = "serve-test-token-0123456789abcdef"
_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def notifications_config(serve_port: int, *, token: str = TOKEN) -> dict[str, Any]:
    """Distribution's ``notifications`` section pointing at serve on ``serve_port``."""
    return {
        "notifications": {
            "events": {"includereferences": True},
            "endpoints": [
                {
                    "name": "oci-normalize-serve",
                    "url": f"http://127.0.0.1:{serve_port}/events",
                    "headers": {"Authorization": [f"Bearer {token}"]},
                    "timeout": "2s",
                    "threshold": 1,
                    "backoff": "300ms",
                    "ignore": {
                        "mediatypes": ["application/octet-stream"],
                        "actions": ["pull"],
                    },
                }
            ],
        }
    }


@dataclass
class ServeProcess:
    port: int
    state: Path
    args: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, **self.env}
        env.pop("OCI_NORMALIZE_WEBHOOK_TOKEN", None)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "oci_normalize", "serve", *self.args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited {self.process.returncode}:\n{self.log_text()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"serve never became ready:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=STOP_TIMEOUT)

    def terminate(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        return self.process.returncode

    def metrics(self) -> dict[str, float]:
        """Sample name (with labels) -> value, from /metrics."""
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def metric(self, name: str) -> float:
        return self.metrics().get(name, 0.0)


def start_serve(
    tmp: Path,
    registry_host: str,
    *extra: str,
    state: Path | None = None,
    port: int | None = None,
    token: str = TOKEN,
) -> ServeProcess:
    tmp.mkdir(parents=True, exist_ok=True)
    token_file = tmp / "token"
    token_file.write_text(token + "\n")
    port = port or free_port()
    state = state or tmp / "state"
    proc = ServeProcess(
        port=port,
        state=state,
        log_path=tmp / "serve.log",
        args=[
            "--registry",
            registry_host,
            "--listen",
            f"127.0.0.1:{port}",
            "--state",
            str(state),
            "--webhook-token-file",
            str(token_file),
            "--grace",
            "10s",
            *extra,
        ],
    )
    proc.start()
    return proc


def manifest_types(url: str, repo: str, ref: str) -> list[str]:
    """Every media type of the tree at ``repo:ref`` as the registry serves it."""
    resp = requests.get(f"{url}/v2/{repo}/manifests/{ref}", headers={"Accept": _ACCEPT}, timeout=10)
    resp.raise_for_status()
    body = json.loads(resp.content)
    types = [body.get("mediaType") or resp.headers["Content-Type"]]
    if "manifests" in body:
        for child in body["manifests"]:
            types.append(child["mediaType"])
            types.extend(manifest_types(url, repo, child["digest"]))
    else:
        types.append(body["config"]["mediaType"])
        types.extend(layer["mediaType"] for layer in body.get("layers") or [])
    return types


def oci_pure(url: str, repo: str, ref: str) -> bool:
    try:
        types = manifest_types(url, repo, ref)
    except requests.RequestException:
        return False
    return all(t.startswith("application/vnd.oci.") for t in types)


def wait_until(
    predicate: Any, timeout: float, what: str, *, log: ServeProcess | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    tail = "\n".join(log.log_text().splitlines()[-30:]) if log is not None else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")
