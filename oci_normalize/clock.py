"""The time the HTTP layer reads and waits by, injectable so tests advance it without sleeping.

Token expiry (:mod:`~oci_normalize.http.auth`, :mod:`~oci_normalize.http.token`), retry waits
(:mod:`~oci_normalize.http.retry`, :mod:`~oci_normalize.http.transport`) and the deadline
watchdog (:mod:`~oci_normalize.http.deadline`) ask a :class:`Clock` instead of ``time``; the
default is :data:`SYSTEM_CLOCK`. A vocabulary module, so that
:class:`~oci_normalize.options.ClientOptions` can hold a clock.
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
