"""Bounds on what a registry can make this tool read, fetch or wait for.

See docs/trust-registry.md for the list with defaults.

Every bound is a named constant; the few a user may need to raise (a huge registry, a slow
link, a very wide index) can be changed with an environment variable, read when used. A value
that is not a positive number is ignored with the default kept, so a typo cannot remove a bound.
"""

from __future__ import annotations

import os
from typing import Final

#: Seconds to wait for a connection, and for each read and a whole answer (``--connect-timeout``,
#: ``--timeout``); blob transfers get more, by size (see :data:`MIN_BLOB_RATE`).
CONNECT_TIMEOUT_S: Final = 10.0
READ_TIMEOUT_S: Final = 60.0
#: Bytes of one token-service answer read at most.
MAX_TOKEN_BODY: Final = 1 << 20
#: Bytes of one error answer read at most (the message shown is cut much shorter).
MAX_ERROR_BODY: Final = 64 * 1024
#: Bytes of one ``_catalog`` or ``tags/list`` page read at most.
MAX_LISTING_PAGE: Final = 8 * 1024 * 1024
#: Names a whole paginated listing (a catalog, one repository's tags) may hold.
MAX_LISTED_NAMES: Final = 1_000_000
ENV_MAX_LISTED_NAMES: Final = "OCI_NORMALIZE_MAX_LISTED_NAMES"
#: Distinct manifests one tree walk may fetch (an index, its children, theirs...).
MAX_TREE_MANIFESTS: Final = 1_000
ENV_MAX_TREE_MANIFESTS: Final = "OCI_NORMALIZE_MAX_TREE_MANIFESTS"
#: Threads one tree walk uses to fetch manifests, whatever the shape of the tree.
TREE_FETCH_THREADS: Final = 4
#: Slowest blob download accepted, bytes per second averaged over the whole blob: a blob of
#: N bytes must arrive within the read timeout plus N / this rate.
MIN_BLOB_RATE: Final = 64 * 1024
ENV_MIN_BLOB_RATE: Final = "OCI_NORMALIZE_MIN_BLOB_RATE"
#: A blob answered without Content-Length gets this long in total, seconds.
BLOB_WITHOUT_LENGTH_S: Final = 3600.0
#: Blobs of one image streamed at once (each holds about two chunks in memory); skopeo's
#: default is 6 too. ``--blob-concurrency`` accepts up to the maximum.
DEFAULT_BLOB_CONCURRENCY: Final = 6
MAX_BLOB_CONCURRENCY: Final = 16
#: Bytes read, hashed or written per step when streaming a blob (memory per stream stays near it).
CHUNK: Final = 1024 * 1024
#: Nesting depth of JSON accepted from outside (real manifests stay under 10).
MAX_JSON_DEPTH: Final = 64


#: Digits accepted in a number from outside (a header, an environment variable).
MAX_DIGITS: Final = 18


def parse_count(text: str) -> int | None:
    """A non-negative whole number written in ASCII digits (at most :data:`MAX_DIGITS`), or None.

    ``str.isdigit`` alone also accepts digits such as ``²`` that ``int`` refuses, and ``int``
    refuses very long digit strings: a header value from a registry can be either.
    """
    text = text.strip()
    if not text or len(text) > MAX_DIGITS or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def env_int(name: str, default: int) -> int:
    """``int(os.environ[name])`` when that is a positive whole number, else ``default``."""
    value = parse_count(os.environ.get(name, ""))
    return value if value else default


def max_listed_names() -> int:
    return env_int(ENV_MAX_LISTED_NAMES, MAX_LISTED_NAMES)


def max_tree_manifests() -> int:
    return env_int(ENV_MAX_TREE_MANIFESTS, MAX_TREE_MANIFESTS)


def min_blob_rate() -> int:
    return env_int(ENV_MIN_BLOB_RATE, MIN_BLOB_RATE)
