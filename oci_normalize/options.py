"""The one home of the public options. :class:`ConvertOptions`: what a conversion may do (every
path — ``convert``, ``batch``, ``batch --to``, ``serve`` — hands the planner one).
:class:`ClientOptions`: how the client reaches registries and layouts, with the
:class:`RetryPolicy` its requests are retried by.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from oci_normalize.clock import SYSTEM_CLOCK, Clock
from oci_normalize.limits import CONNECT_TIMEOUT_S, DEFAULT_BLOB_CONCURRENCY, READ_TIMEOUT_S
from oci_normalize.manifest import MAX_MANIFEST_BYTES

#: Seconds a ``--sign-with`` command may run for one manifest before it is killed.
DEFAULT_SIGN_TIMEOUT_S: Final = 120.0
#: ``--sign-with`` commands run at once in a batch.
DEFAULT_SIGN_CONCURRENCY: Final = 2


@dataclass(frozen=True, kw_only=True)
class ConvertOptions:
    """How a conversion treats the tag it moves and what points at the old digests.

    ``force``: skip the re-read of the tag before it moves. ``backup_tag``: a template such as
    ``{tag}-docker``; in place, the original manifest is tagged there first.
    ``break_signatures``: convert even when a signature names a digest that changes (it stays
    behind on the old digest). ``referrers``: unsigned referrers follow the new digest.
    ``sign_with``: a command (split like a shell would, never run by one) that re-signs each
    new digest whose old digest carried a signature, before the tag moves; ``{ref}`` becomes
    ``HOST/REPOSITORY@sha256:NEW``. ``sign_timeout``: seconds each run may take.
    ``sign_concurrency``: runs at once in a batch. ``before_tag``: called just before the tag is
    re-read and moved (a seam for tests that play another writer; None in production).
    ``blob_concurrency``: blobs streamed at once when a copy goes to another repository.
    """

    force: bool = False
    backup_tag: str | None = None
    break_signatures: bool = False
    referrers: bool = True
    sign_with: str | None = None
    sign_timeout: float = DEFAULT_SIGN_TIMEOUT_S
    sign_concurrency: int = DEFAULT_SIGN_CONCURRENCY
    before_tag: Callable[[], None] | None = None
    blob_concurrency: int = DEFAULT_BLOB_CONCURRENCY


DEFAULT_CONVERT_OPTIONS: Final = ConvertOptions()


#: HTTP statuses worth another try.
RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
#: Tries per request, the first one included (so 4 means up to 3 retries).
MAX_ATTEMPTS: Final = 4
#: No retry starts later than this many seconds after the first try.
MAX_RETRY_TIME_S: Final = 60.0
#: The first wait is drawn from [BASE/2, BASE]; each later one doubles, up to the cap.
BACKOFF_BASE_S: Final = 0.5
BACKOFF_CAP_S: Final = 8.0
#: A ``Retry-After`` longer than this is not waited for: the request fails as rate limited.
MAX_RETRY_AFTER_S: Final = 60.0


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    attempts: int = MAX_ATTEMPTS
    total_s: float = MAX_RETRY_TIME_S
    base_s: float = BACKOFF_BASE_S
    cap_s: float = BACKOFF_CAP_S
    max_retry_after_s: float = MAX_RETRY_AFTER_S
    statuses: frozenset[int] = RETRY_STATUSES

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """The jittered wait before retry number ``retry`` (1 for the first retry)."""
        ceiling = min(self.cap_s, self.base_s * (2 ** max(retry - 1, 0)))
        return (rng or random).uniform(ceiling / 2, ceiling)

    def wait(
        self,
        retry: int,
        *,
        elapsed: float,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to sleep before retry ``retry``, or None when the budget says stop.

        ``elapsed`` is the time since the first try. A ``Retry-After`` is a floor for the wait;
        one beyond :attr:`max_retry_after_s` or past the time budget ends the retries.
        """
        if retry >= self.attempts:
            return None
        delay = self.backoff(retry, rng)
        if retry_after is not None:
            if retry_after > self.max_retry_after_s:
                return None
            delay = max(delay, retry_after)
        if elapsed + delay > self.total_s:
            return None
        return delay


NO_RETRY: Final = RetryPolicy(attempts=1)
DEFAULT_RETRY: Final = RetryPolicy()


@dataclass(frozen=True, kw_only=True)
class ClientOptions:
    plain_http: bool = False
    insecure: bool = False
    ca_file: str | None = None
    connect_timeout: float = CONNECT_TIMEOUT_S
    read_timeout: float = READ_TIMEOUT_S
    max_manifest_bytes: int = MAX_MANIFEST_BYTES
    retry: RetryPolicy = field(default=DEFAULT_RETRY)
    #: What token lifetimes and retry waits are counted on (tests give a fake one).
    clock: Clock = field(default=SYSTEM_CLOCK, compare=False)


DEFAULT_CLIENT_OPTIONS: Final = ClientOptions()
