"""``oci-normalize serve`` refuses to start without a token, and ``--status`` reads the state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oci_normalize.serve.queue import WorkItem, open_sqlite


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "OCI_NORMALIZE_WEBHOOK_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "oci_normalize", "serve", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_without_a_token_it_refuses_to_start(tmp_path: Path) -> None:
    out = run("--registry", "127.0.0.1:5000", "--state", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "no webhook token" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nowhere"], "--listen"),
        (["--reconcile-every", "soon"], "--reconcile-every"),
        (["--log-format", "xml"], "--log-format"),
        (["--queue", "redis://x"], "--queue"),
        (["--to", "127.0.0.1:5000"], "is the source registry"),
        (["--to", "127.0.0.1:6000", "--check-only"], "--check-only"),
        (["--to", "127.0.0.1:6000", "--backup-tag", "{tag}-docker"], "--backup-tag"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    out = run(
        "--registry",
        "127.0.0.1:5000",
        "--state",
        str(tmp_path),
        "--webhook-token-file",
        str(token),
        *args,
    )
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and out.stderr.count("\n") == 1


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("\n")
    out = run("--registry", "127.0.0.1:5000", "--webhook-token-file", str(token))
    assert out.returncode == 2 and "empty" in out.stderr


def test_a_missing_nats_client_is_one_clear_error(tmp_path: Path) -> None:
    # An install without nats-py: a ``nats`` package that cannot be imported shadows the real one.
    shadow = tmp_path / "shadow" / "nats"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("no NATS client here")\n')
    path = os.pathsep.join(filter(None, [str(shadow.parent), os.environ.get("PYTHONPATH")]))
    out = run(
        "--registry",
        "127.0.0.1:5000",
        "--state",
        str(tmp_path),
        "--queue",
        "nats://127.0.0.1:4222/work",
        env={"OCI_NORMALIZE_WEBHOOK_TOKEN": "t", "PYTHONPATH": path},
    )
    assert out.returncode == 2 and "not available" in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


def test_status_shows_depth_and_parked_reasons(tmp_path: Path) -> None:
    q = open_sqlite(tmp_path)
    q.put([WorkItem("team/app", "1", 1.0), WorkItem("team/app", "2", 2.0)])
    lease = q.take(0)
    assert lease is not None
    q.park(lease, "refused: signed")
    q.close()
    out = run("--status", "--state", str(tmp_path))
    assert out.returncode == 0
    assert "1 item(s) waiting" in out.stdout and "1 parked" in out.stdout
    assert "team/app:1: refused: signed" in out.stdout
    doc = json.loads(run("--status", "--state", str(tmp_path), "--json").stdout)
    assert doc["depth"] == 1
    assert doc["parked"][0]["reason"] == "refused: signed"


def test_status_of_a_missing_state_is_exit_2(tmp_path: Path) -> None:
    out = run("--status", "--state", str(tmp_path / "none"))
    assert out.returncode == 2 and "no queue" in out.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://user:pa55@nats.example:4222/WORK", "nats://nats.example:4222/WORK"),
        ("nats://tok@en@nats.example/WORK", "nats://nats.example/WORK"),
        ("nats://nats.example:4222/WORK", "nats://nats.example:4222/WORK"),
    ],
)
def test_the_started_line_never_shows_nats_credentials(url: str, shown: str) -> None:
    from oci_normalize.serve.events import Scope
    from oci_normalize.serve.service import ServeConfig, shown_queue
    from oci_normalize.serve.worker import Mode

    config = ServeConfig(
        mode=Mode(registry="r.example"),
        scope=Scope(registry="r.example"),
        listen=("127.0.0.1", 8080),
        state=Path("/state"),
        token=None,
        queue_url=url,
    )
    assert shown_queue(config) == shown
