"""The work queue protocol every queue behind ``serve`` implements (SQLite, NATS JetStream).

Placeholder with the definitions only, as agreed with the serve core; the lead reconciles it with
the core's module of the same name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class WorkItem:
    repository: str
    ref: str  # a tag or "sha256:..."
    received: float  # unix time the event arrived


@dataclass(frozen=True)
class Lease:
    item: WorkItem
    attempt: int
    token: str


class WorkQueue(Protocol):
    def put(self, items: Sequence[WorkItem]) -> None: ...
    def take(self, timeout: float) -> Lease | None: ...
    def ack(self, lease: Lease) -> None: ...
    def retry(self, lease: Lease, delay: float, reason: str) -> None: ...
    def park(self, lease: Lease, reason: str) -> None: ...
    def release(self, lease: Lease) -> None: ...
    def depth(self) -> int: ...
    def parked(self) -> list[tuple[WorkItem, str]]: ...
    def close(self) -> None: ...
