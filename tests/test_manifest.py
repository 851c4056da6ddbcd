"""The manifest JSON codec on numbers and strings Go's encoding/json and ours disagree about."""

from __future__ import annotations

import pytest

from oci_normalize.errors import MalformedManifestError
from oci_normalize.manifest import json_value, parse_body, serialize


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b'{"size": NaN}', "NaN is not JSON"),
        (b'{"size": Infinity}', "Infinity is not JSON"),
        (b'{"size": -Infinity}', "-Infinity is not JSON"),
        (b'{"size": 1e999}', "out of range"),
        (b'{"size": -1e999}', "out of range"),
        (b'{"size": ' + b"9" * 5000 + b"}", "not usable JSON"),
    ],
)
def test_numbers_no_json_reader_or_writer_agrees_on_are_refused(data: bytes, says: str) -> None:
    with pytest.raises(MalformedManifestError, match=says):
        parse_body(data, "m")


def test_ordinary_numbers_still_read() -> None:
    assert parse_body(b'{"a": 1.5e3, "b": -2, "c": 0.25}', "m") == {"a": 1500.0, "b": -2, "c": 0.25}


def test_a_lone_surrogate_is_read_and_written_back_as_valid_json() -> None:
    # Go reads "\ud800" (as U+FFFD) so a manifest holding one is pullable; our writer must not
    # crash on it, and must write JSON that reads back to the same document.
    body = parse_body(b'{"a":"\\ud800","b":"\xc3\xa9","c":"\\ud83d\\ude00"}', "m")
    out = serialize(body)
    assert out.isascii()
    assert parse_body(out, "m") == body


def test_the_usual_document_is_written_as_utf8_not_escaped() -> None:
    assert serialize({"b": "é", "c": "😀"}) == '{"b":"é","c":"😀"}'.encode()


@pytest.mark.parametrize(
    "text",
    ['{"Env": NaN}', '{"Size": 1e400}', "[" * 10_000 + "]" * 10_000],
)
def test_json_inside_a_manifest_is_read_as_strictly(text: str) -> None:
    # schema1's v1Compatibility strings become the OCI config we write: no NaN, no infinity,
    # and no nesting that would blow the stack.
    with pytest.raises(ValueError):
        json_value(text)
    assert json_value('{"Env": ["A=1"], "Size": 12}') == {"Env": ["A=1"], "Size": 12}
