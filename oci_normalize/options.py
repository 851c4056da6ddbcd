"""What a conversion may do: :class:`ConvertOptions`, the one home of the public conversion
options (every path — ``convert``, ``batch``, ``batch --to``, ``serve`` — hands the planner one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from oci_normalize.limits import DEFAULT_BLOB_CONCURRENCY

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
