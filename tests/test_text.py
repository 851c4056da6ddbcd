from __future__ import annotations

import sys

import pytest

from oci_normalize.text import ELLIPSIS, _cleaned, printable


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain message", "plain message"),
        ("two\nlines", "two?lines"),
        ("\x1b[2Jcleared", "?[2Jcleared"),
        ("cr\rover", "cr?over"),
        ("bidi\u202eevil", "bidi?evil"),
        ("line\u2028sep", "line?sep"),
        ("tab\there", "tab?here"),
        ("ünïcode ok", "ünïcode ok"),
    ],
)
def test_control_characters_cannot_forge_output(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_long_text_is_cut_to_the_limit() -> None:
    out = printable("x" * 10_000, limit=40)
    assert len(out) == 40
    assert out.endswith(ELLIPSIS)
    assert printable("short", limit=40) == "short"


def test_fast_path_agrees_with_the_character_walk_on_every_code_point() -> None:
    """``str.isprintable`` lets clean text skip the per-character walk; it must never let a
    character through that the walk would have replaced."""
    differ = [hex(c) for c in range(sys.maxunicode + 1) if printable(chr(c)) != _cleaned(chr(c))]
    assert differ == []
