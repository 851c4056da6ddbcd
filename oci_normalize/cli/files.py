"""Files ``batch`` reads and writes for humans: ``--from-file`` input, output paths checked
before the first write, and ``--json`` lines."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from oci_normalize.errors import ManifestTooLargeError, OciNormalizeError
from oci_normalize.store.localfs import kind_of, open_regular

#: Largest ``--from-file`` read (a million references of ~60 characters).
MAX_FROM_FILE_BYTES: Final = 64 * 1024 * 1024
#: Longest line of it held whole: far beyond the longest reference that parses.
MAX_LINE_BYTES: Final = 4096


def unwritable(path: Path, what: str) -> str | None:
    """Why ``path`` cannot be written as an output file, or None: checked before any write."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        parent = path.parent
        if not parent.is_dir():
            return f"{what} {path}: directory {parent} does not exist"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"{what} {path}: directory {parent} is not writable"
        return None
    except OSError as exc:
        return f"{what} {path}: {exc.strerror or exc}"
    if not stat.S_ISREG(mode):
        return f"{what} {path}: is {kind_of(mode)}, not a regular file"
    if not os.access(path, os.W_OK):
        return f"{what} {path}: not writable"
    return None


def iter_from_file(name: str, *, cap: int = MAX_FROM_FILE_BYTES) -> Iterator[str]:
    """The lines of ``--from-file`` (``-``: stdin) as they are read, a regular file or a pipe,
    at most ``cap`` bytes in all; a line is held whole only up to :data:`MAX_LINE_BYTES` (a
    longer one is no reference: its start is given, to fail as one)."""
    what = "--from-file " + ("(stdin)" if name == "-" else name)
    opened = (
        contextlib.nullcontext(sys.stdin.buffer)
        if name == "-"
        else open_regular(name, what, fifo_ok=True)
    )
    with opened as fh:
        done = 0
        while raw := fh.readline(MAX_LINE_BYTES + 1):
            start, done = done, done + len(raw)
            cut = len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n")
            while cut and done <= cap and (more := fh.readline(MAX_LINE_BYTES)):
                done += len(more)  # the rest of a cut line is counted, never held
                if more.endswith(b"\n"):
                    break
            if done > cap:
                raise ManifestTooLargeError(f"{what}: over the {cap} byte cap")
            if cut:
                yield raw[:MAX_LINE_BYTES].decode("utf-8", errors="replace")
                continue
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise OciNormalizeError(
                    f"{what}: not UTF-8 text (byte {start + exc.start})"
                ) from exc


def json_line(doc: Any) -> None:
    print(json.dumps(doc, separators=(",", ":")), flush=True)
