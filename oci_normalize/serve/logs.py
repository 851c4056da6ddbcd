"""One structured line per event and per finished item, on stderr: ``key=value`` text or JSON.

Values come partly from outside (repository names, error messages): each is stripped of control
characters and bounded. No caller passes the webhook token or credentials.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, Final, TextIO

from oci_normalize.text import printable

TEXT: Final = "text"
JSON: Final = "json"
LOG_FORMATS: Final = (TEXT, JSON)


class Logger:
    def __init__(self, fmt: str = TEXT, stream: TextIO | None = None) -> None:
        self._fmt = fmt
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, kind: str, **fields: Any) -> None:
        clean = {k: _clean(v) for k, v in fields.items() if v is not None}
        if self._fmt == JSON:
            line = json.dumps({"time": round(time.time(), 3), "msg": kind, **clean})
        else:
            parts = [f"{k}={_quoted(v)}" for k, v in clean.items()]
            line = " ".join([f"serve: {kind}", *parts])
        stream = self._stream or sys.stderr
        with self._lock:
            print(line, file=stream, flush=True)


def _clean(value: Any) -> Any:
    if isinstance(value, bool | int | float):
        return value
    return printable(str(value))


def _quoted(value: Any) -> str:
    text = str(value)
    if text and all(c.isalnum() or c in "._:/@-+" for c in text):
        return text
    return json.dumps(text)
