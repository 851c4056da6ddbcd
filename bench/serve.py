"""``oci-normalize serve`` under a burst: push-to-OCI latency, events accepted per second, RSS.

Not a test: run it by hand (``python bench/serve.py [--burst 100] [--posts 2000]``). It needs
docker-registry on PATH. Three phases, each against a fresh registry and a fresh ``serve``:

1. **Idle RSS**: ``serve`` started, the first sweep done, nothing to do (``VmRSS`` from /proc).
2. **Burst**: ``--burst`` mixed (Kaniko-style) images pushed as fast as one client can, by the
   registry's own notifications to ``serve``. Each image's latency runs from the end of its push
   to the first time a poller sees it OCI-pure at the registry (the poller's cycle bounds the
   resolution: it is printed). Peak RSS of ``serve`` is sampled every 50 ms meanwhile.
3. **Intake**: ``--posts`` POST /events (one distinct tag each, so every one is a durable queue
   insert) from 8 client threads: events accepted per second, including the fsync.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.child import require  # noqa: E402
from bench.installed import byte_compile  # noqa: E402
from tests.support import seed  # noqa: E402
from tests.support.notify import (  # noqa: E402
    TOKEN,
    ServeProcess,
    notifications_config,
    oci_pure,
    start_serve,
)
from tests.support.registry import free_port, start_registry  # noqa: E402

SAMPLE_S = 0.05
V2 = "application/vnd.docker.distribution.manifest.v2+json"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssPeak:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.peak = max(self.peak, rss_mib(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def pid_of(serve: ServeProcess) -> int:
    assert serve.process is not None
    return serve.process.pid


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def burst(work: Path, count: int) -> dict[str, float]:
    port = free_port()
    reg = start_registry(work / "reg-burst", extra_config=notifications_config(port))
    serve = start_serve(work / "serve-burst", reg.host, "--reconcile-every", "0", port=port)
    try:
        time.sleep(1.0)
        idle = rss_mib(pid_of(serve))
        peak = RssPeak(pid_of(serve))
        pushed: dict[tuple[str, str], float] = {}
        done: dict[tuple[str, str], float] = {}
        finished = threading.Event()
        cycles: list[float] = []

        def poll() -> None:
            while not finished.is_set():
                start = time.perf_counter()
                for key, at in list(pushed.items()):
                    if key not in done and oci_pure(reg.url, *key):
                        done[key] = time.perf_counter() - at
                cycles.append(time.perf_counter() - start)
                if len(done) == count:
                    finished.set()
                time.sleep(0.01)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        began = time.perf_counter()
        for i in range(count):
            key = (f"bench/app{i % 10}", f"v{i}")
            seed.push_mixed_kaniko(reg.url, *key, seed=f"bench-{i}")
            pushed[key] = time.perf_counter()
        pushing = time.perf_counter() - began
        if not finished.wait(300):
            raise SystemExit(f"only {len(done)} of {count} images became OCI-pure in 300 s")
        total = time.perf_counter() - began
        latencies = list(done.values())
        return {
            "idle_rss_mib": idle,
            "load_rss_mib": peak.stop(),
            "push_s": pushing,
            "all_oci_s": total,
            "p50_s": statistics.median(latencies),
            "p99_s": percentile(latencies, 0.99),
            "max_s": max(latencies),
            "poll_cycle_s": statistics.median(cycles) if cycles else 0.0,
        }
    finally:
        serve.terminate()
        reg.stop()


def intake(work: Path, posts: int) -> dict[str, float]:
    reg = start_registry(work / "reg-intake")
    serve = start_serve(
        work / "serve-intake", reg.host, "--reconcile-every", "0", "--concurrency", "1"
    )
    try:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

        def send(i: int) -> int:
            body = {
                "events": [
                    {
                        "action": "push",
                        "target": {"mediaType": V2, "repository": "flood/app", "tag": f"t{i}"},
                    }
                ]
            }
            resp = session.post(
                f"{serve.url}/events", data=json.dumps(body), headers=headers, timeout=30
            )
            return resp.status_code

        peak = RssPeak(pid_of(serve))
        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(send, range(posts)))
        elapsed = time.perf_counter() - start
        rss = peak.stop()
        if codes.count(200) != posts:
            raise SystemExit(f"{posts - codes.count(200)} POSTs were not accepted")
        return {"events_per_s": posts / elapsed, "seconds": elapsed, "intake_rss_mib": rss}
    finally:
        serve.terminate()
        reg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--burst", type=int, default=100, help="images pushed in the burst")
    parser.add_argument("--posts", type=int, default=2000, help="POST /events in the intake run")
    args = parser.parse_args()
    require("docker-registry")
    byte_compile()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        b = burst(Path(tmp), args.burst)
        i = intake(Path(tmp), args.posts)
    print(f"serve, burst of {args.burst} mixed images pushed by one client:")
    print(f"  pushed in {b['push_s']:.1f} s; all OCI-pure {b['all_oci_s']:.1f} s after the first")
    print(
        f"  push-to-OCI latency p50 {b['p50_s']:.2f} s, p99 {b['p99_s']:.2f} s, "
        f"max {b['max_s']:.2f} s (poll cycle {b['poll_cycle_s'] * 1000:.0f} ms)"
    )
    print(
        f"  RSS idle {b['idle_rss_mib']:.0f} MiB, peak under the burst {b['load_rss_mib']:.0f} MiB"
    )
    print(f"intake, {args.posts} POST /events (distinct tags, durable) from 8 threads:")
    print(
        f"  {i['events_per_s']:.0f} events/s accepted ({i['seconds']:.1f} s), "
        f"peak RSS {i['intake_rss_mib']:.0f} MiB"
    )


if __name__ == "__main__":
    main()
