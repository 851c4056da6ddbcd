"""The time the HTTP layer reads and waits by, injectable so tests advance it without sleeping.

Token expiry (:mod:`.auth`, :mod:`.token`), retry waits (:mod:`.retry`, :mod:`.transport`) and
the deadline watchdog (:mod:`.deadline`) ask a :class:`Clock` instead of ``time``; the
default is :data:`SYSTEM_CLOCK`.
"""

from __future__ import annotations

import time
from typing import Final, Protocol


class Clock(Protocol):
    """A monotonic clock one can wait on."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never goes back."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The process's own clock: :func:`time.monotonic` and :func:`time.sleep`."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK: Final[Clock] = SystemClock()
