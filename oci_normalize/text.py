"""Text that came from outside (a registry, a tarball, a journal) made safe to print.

Registry error bodies, repository names from a catalog and file names from a tarball end up in a
terminal, a JSON document or a report. Control characters (ESC sequences, newlines, carriage
returns) could forge extra lines or repaint the screen, and a huge message could bury the one line
that matters, so every such string passes through :func:`printable` before it is shown.
"""

from __future__ import annotations

import unicodedata
from typing import Final

#: Longest piece of outside text that reaches a message, in characters.
MAX_SHOWN_CHARS: Final = 512
ELLIPSIS: Final = "…"


def printable(text: str, *, limit: int = MAX_SHOWN_CHARS) -> str:
    """``text`` without control or format characters (each becomes ``?``), cut to ``limit``."""
    # str.isprintable (in C) is false for every character the walk replaces, and more: clean
    # text, the common case, skips the walk.
    cleaned = text if text.isprintable() else _cleaned(text)
    if len(cleaned) > limit:
        return cleaned[: max(limit - 1, 0)] + ELLIPSIS
    return cleaned


def _cleaned(text: str) -> str:
    return "".join(
        "?" if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in text
    )
