"""The one exit-code table and error printer every command goes through."""

from __future__ import annotations

import pytest

from oci_normalize.cli import exits


def test_codes_are_distinct_and_check_keeps_1_for_docker_found() -> None:
    codes = [exits.OK, exits.DOCKER_FOUND, exits.ERROR, exits.SOME_FAILED, exits.INTERRUPTED]
    assert len(set(codes)) == len(codes)
    assert exits.DOCKER_FOUND == 1 and exits.ERROR == 2


def test_errors_are_one_clean_capped_line(capsys: pytest.CaptureFixture[str]) -> None:
    exits.say_error("registry said:\n\x1b[31mforged line" + "x" * 10_000)
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("oci-normalize: error: registry said:?")
    assert "\x1b" not in err
    assert len(err) <= exits.MAX_LINE_CHARS + 1


def test_internal_errors_name_the_type_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exits.say_internal(KeyError("boom"))
    err = capsys.readouterr().err
    assert err == "oci-normalize: internal error: KeyError: 'boom'\n"
