"""The Prometheus metrics of ``serve``, on a registry of their own (not the global one)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from oci_normalize.results import CONVERTED, COPIED
from oci_normalize.serve.events import IGNORE_REASONS

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
#: Push-to-converted latency buckets, seconds.
LATENCY_BUCKETS: Final = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)
_NS: Final = "oci_normalize"
#: Outcome of an item settled by one manifest GET (see :mod:`.worker`).
OWN_WRITE: Final = "own-write"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            f"{_NS}_serve_events_received",
            "Events received (one per event in a body).",
            ["format"],
            registry=r,
        )
        self.ignored = Counter(
            f"{_NS}_serve_events_ignored",
            "Events acknowledged and left alone, by reason.",
            ["reason"],
            registry=r,
        )
        self.queued = Counter(
            f"{_NS}_serve_events_queued", "Events that became work items.", registry=r
        )
        self.rejected = Counter(
            f"{_NS}_serve_requests_rejected",
            "POST /events refused, by HTTP status.",
            ["code"],
            registry=r,
        )
        self.converted = Counter(
            f"{_NS}_references_converted",
            "References rewritten as OCI (or copied with --to).",
            registry=r,
        )
        self.outcomes = Counter(
            f"{_NS}_serve_items_done", "Work items finished, by outcome.", ["outcome"], registry=r
        )
        self.own_writes = Counter(
            f"{_NS}_serve_own_writes_skipped",
            "Items settled by one manifest GET: serve's own push, or already OCI.",
            registry=r,
        )
        self.failed = Counter(
            f"{_NS}_references_failed", "Failed attempts (each is retried or parked).", registry=r
        )
        self.parked = Counter(
            f"{_NS}_references_parked", "Items given up after their last attempt.", registry=r
        )
        self.depth = Gauge(
            f"{_NS}_serve_queue_depth", "Work items queued or in progress.", registry=r
        )
        self.parked_now = Gauge(
            f"{_NS}_serve_parked_items", "Work items parked now (see serve --status).", registry=r
        )
        self.latency = Histogram(
            f"{_NS}_push_to_converted_seconds",
            "Seconds from an event's arrival to its reference being converted.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.reconciles = Counter(
            f"{_NS}_serve_reconcile_runs", "Reconcile sweeps, by result.", ["result"], registry=r
        )

        for reason in IGNORE_REASONS:  # every reason scrapes, 0 until it happens
            self.ignored.labels(reason=reason)

    def watch(self, depth: Callable[[], int], parked: Callable[[], int]) -> None:
        """Read the queue's depth and parked count at each scrape."""
        self.depth.set_function(lambda: float(_safe(depth)))
        self.parked_now.set_function(lambda: float(_safe(parked)))

    def note(self, status: str) -> None:
        self.outcomes.labels(outcome=status).inc()
        if status in (CONVERTED, COPIED):
            self.converted.inc()
        elif status == OWN_WRITE:
            self.own_writes.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _safe(read: Callable[[], int]) -> int:
    try:
        return read()
    except Exception:  # noqa: BLE001 - a closed queue at shutdown scrapes as -1, never a 500
        return -1
