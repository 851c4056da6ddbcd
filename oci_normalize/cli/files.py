"""Files ``batch`` reads and writes for humans: ``--from-file`` input, output paths checked
before the first write, and ``--json`` lines."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, Final

from oci_normalize.errors import OciNormalizeError
from oci_normalize.store.localfs import kind_of, open_regular, read_capped

#: Largest ``--from-file`` read (a million references of ~60 characters).
MAX_FROM_FILE_BYTES: Final = 64 * 1024 * 1024


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


def read_from_file(name: str, *, cap: int = MAX_FROM_FILE_BYTES) -> list[str]:
    """The lines of ``--from-file`` (``-``: stdin): a regular file or a pipe, at most ``cap``."""
    what = "--from-file " + ("(stdin)" if name == "-" else name)
    if name == "-":
        data = read_capped(sys.stdin.buffer, cap, what)
    else:
        with open_regular(name, what, fifo_ok=True) as fh:
            data = read_capped(fh, cap, what)
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise OciNormalizeError(f"{what}: not UTF-8 text (byte {exc.start})") from exc


def json_line(doc: Any) -> None:
    print(json.dumps(doc, separators=(",", ":")), flush=True)
