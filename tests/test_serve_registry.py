"""``serve`` against a real distribution registry whose notifications point at it.

No fake event source: the registry posts its own events (token header, threshold, backoff)
to a real ``oci-normalize serve`` subprocess. Results are judged from the registry's answers
(:func:`~tests.support.notify.oci_pure`) and its access log, not from our own code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support import seed
from tests.support.notify import notifications_config, oci_pure, start_serve, wait_until
from tests.support.registry import (
    RegistryFactory,
    RunningRegistry,
    free_port,
    require_tools,
    start_registry,
)

pytestmark = pytest.mark.registry

CONVERTED = "oci_normalize_references_converted_total"
OWN = "oci_normalize_serve_own_writes_skipped_total"
DEPTH = "oci_normalize_serve_queue_depth"


def _our_requests(reg: RunningRegistry, method: str, repo: str, *, since: int = 0) -> int:
    """Manifest requests oci-normalize (by its User-Agent) sent for ``repo``."""
    return sum(
        1
        for e in reg.access_log_lines(since=since)
        if e.method == method
        and e.path.startswith(f"/v2/{repo}/manifests/")
        and e.user_agent.startswith("oci-normalize/")
    )


def test_pushes_end_oci_pure_and_own_writes_do_not_loop(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    require_tools("skopeo", "umoci")
    port = free_port()
    reg = registry_factory(extra_config=notifications_config(port))
    serve = start_serve(tmp_path / "serve", reg.host, "--reconcile-every", "0", port=port)
    try:
        layout = seed.build_layout(tmp_path, seed="v2s2")
        seed.push_docker_v2s2(layout, f"{reg.host}/apps/docker:1")
        seed.push_mixed_kaniko(reg.url, "apps/kaniko", "1")
        seed.push_docker_list(reg.url, "apps/list", "1", tmp_path)
        images = [("apps/docker", "1"), ("apps/kaniko", "1"), ("apps/list", "1")]

        wait_until(
            lambda: all(oci_pure(reg.url, r, t) for r, t in images), 60, "OCI-pure", log=serve
        )
        # Each conversion's tag push comes back as an event: settled by one GET, no write.
        wait_until(lambda: serve.metric(OWN) >= 3, 30, "own pushes acknowledged", log=serve)
        wait_until(lambda: serve.metric(DEPTH) == 0, 30, "an empty queue", log=serve)
        assert serve.metric(CONVERTED) == 3
        # Exactly the expected writes: one tag PUT per image, plus the list's two children.
        expected = {"apps/docker": 1, "apps/kaniko": 1, "apps/list": 3}
        for repo, _ in images:
            assert _our_requests(reg, "PUT", repo) == expected[repo], repo
        settled = serve.metric(OWN)
        gets = sum(_our_requests(reg, "GET", r) for r, _ in images)
        # Nothing else arrives, nothing else is read or written: no loop.
        threading.Event().wait(1.5)
        assert sum(_our_requests(reg, "PUT", r) for r, _ in images) == 5
        assert sum(_our_requests(reg, "GET", r) for r, _ in images) == gets
        assert serve.metric(OWN) == settled
    finally:
        assert serve.terminate() == 0


def test_burst_with_kill9_and_restart_finishes_every_push(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    port = free_port()
    reg = registry_factory(extra_config=notifications_config(port))
    state = tmp_path / "state"
    args = ("--reconcile-every", "0", "--concurrency", "4")
    serve = start_serve(tmp_path / "a", reg.host, *args, state=state, port=port)
    pushed: list[tuple[str, str]] = []
    total = 50
    for i in range(total):
        repo, tag = f"burst/app{i % 10}", f"v{i}"
        if i % 2:
            seed.push_mixed_kaniko(reg.url, repo, tag, seed=f"burst-{i}")
        else:
            seed.push_docker_with_oci_layers(reg.url, repo, tag, seed=f"burst-{i}")
        pushed.append((repo, tag))
        if i == total // 2:
            serve.kill9()
    serve = start_serve(tmp_path / "b", reg.host, *args, state=state, port=port)
    try:
        wait_until(
            lambda: all(oci_pure(reg.url, r, t) for r, t in pushed),
            120,
            f"{total} pushes OCI-pure after kill -9 and restart",
            log=serve,
        )
        # Every tag was moved once: the item redone after the kill found it already OCI.
        puts: dict[str, int] = {}
        for e in reg.access_log_lines():
            if e.method == "PUT" and "/manifests/" in e.path and e.user_agent.startswith("oci-"):
                puts[e.path] = puts.get(e.path, 0) + 1
        assert puts == {f"/v2/{r}/manifests/{t}": 1 for r, t in pushed}
    finally:
        assert serve.terminate() == 0


def test_lost_events_are_recovered_by_reconcile_on_start(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    port = free_port()
    first = registry_factory(extra_config=notifications_config(port))
    # serve is down: the registry holds the events in memory, then restarts and loses them.
    seed.push_mixed_kaniko(first.url, "lost/a", "1")
    seed.push_docker_with_oci_layers(first.url, "lost/b", "2")
    first.stop()
    reg = start_registry(first.storage_dir.parent, extra_config=notifications_config(port))
    try:
        assert not oci_pure(reg.url, "lost/a", "1")
        serve = start_serve(tmp_path / "serve", reg.host, "--reconcile-every", "1h", port=port)
        try:
            wait_until(
                lambda: oci_pure(reg.url, "lost/a", "1") and oci_pure(reg.url, "lost/b", "2"),
                60,
                "reconcile on start",
                log=serve,
            )
            assert (serve.state / "reconcile.journal").is_file()
        finally:
            assert serve.terminate() == 0
    finally:
        reg.stop()


def test_to_mirrors_each_push_into_a_second_registry(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    port = free_port()
    source = registry_factory(extra_config=notifications_config(port))
    mirror = registry_factory()
    serve = start_serve(
        tmp_path / "serve",
        source.host,
        "--to",
        f"{mirror.host}/mirror",
        "--reconcile-every",
        "0",
        port=port,
    )
    try:
        seed.push_mixed_kaniko(source.url, "team/app", "7")
        wait_until(
            lambda: oci_pure(mirror.url, "mirror/team/app", "7"), 60, "the mirror", log=serve
        )
        assert not oci_pure(source.url, "team/app", "7")  # the source is only read
    finally:
        assert serve.terminate() == 0


def test_check_only_reports_and_writes_nothing(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    port = free_port()
    reg = registry_factory(extra_config=notifications_config(port))
    serve = start_serve(
        tmp_path / "serve",
        reg.host,
        "--check-only",
        "--reconcile-every",
        "0",
        "--log-format",
        "json",
        port=port,
    )
    try:
        seed.push_mixed_kaniko(reg.url, "audit/app", "1")
        wait_until(
            lambda: (
                serve.metric('oci_normalize_serve_items_done_total{outcome="checked-docker"}') >= 1
            ),
            30,
            "the check",
            log=serve,
        )
        lines = [json.loads(x) for x in serve.log_text().splitlines() if x.startswith("{")]
        checked = [x for x in lines if x.get("outcome") == "checked-docker"]
        assert checked and checked[0]["repository"] == "audit/app"
        assert "application/vnd.docker.image.rootfs.diff.tar.gzip" in checked[0]["detail"]
        assert _our_requests(reg, "PUT", "audit/app") == 0
        assert not oci_pure(reg.url, "audit/app", "1")
    finally:
        assert serve.terminate() == 0


def test_a_backup_tag_push_is_not_converted_back(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    port = free_port()
    reg = registry_factory(extra_config=notifications_config(port))
    serve = start_serve(
        tmp_path / "serve",
        reg.host,
        "--backup-tag",
        "{tag}-docker",
        "--reconcile-every",
        "0",
        port=port,
    )
    try:
        original = seed.push_mixed_kaniko(reg.url, "keep/app", "1")
        wait_until(lambda: oci_pure(reg.url, "keep/app", "1"), 30, "the conversion", log=serve)
        wait_until(
            lambda: serve.metric('oci_normalize_serve_events_ignored_total{reason="backup"}') >= 1,
            30,
            "the backup's event",
            log=serve,
        )
        wait_until(lambda: serve.metric(DEPTH) == 0, 30, "an empty queue", log=serve)
        assert seed.head_manifest(reg.url, "keep/app", "1-docker") == original
        assert _our_requests(reg, "PUT", "keep/app") == 2  # the backup, then the tag
    finally:
        assert serve.terminate() == 0


def test_event_conversions_are_journalled_for_rollback(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    port = free_port()
    reg = registry_factory(extra_config=notifications_config(port))
    serve = start_serve(tmp_path / "serve", reg.host, "--reconcile-every", "0", port=port)
    try:
        original = seed.push_mixed_kaniko(reg.url, "undo/app", "1")
        wait_until(lambda: oci_pure(reg.url, "undo/app", "1"), 30, "the conversion", log=serve)
    finally:
        assert serve.terminate() == 0  # stopped first, or it would convert the rollback again
    journal = serve.state / "events.journal"
    out = subprocess.run(
        [sys.executable, "-m", "oci_normalize", "rollback", str(journal)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert seed.head_manifest(reg.url, "undo/app", "1") == original
