"""The CLI's own surface: --version and help texts."""

from __future__ import annotations

import inspect
from importlib import metadata

from typer.testing import CliRunner

from oci_normalize.cli.app import app


def test_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"oci-normalize {metadata.version('oci-normalize')}"


def test_help_paragraphs_have_no_hard_line_breaks() -> None:
    # Rich keeps a docstring's newlines, so a sentence broken across source lines is printed
    # broken in the middle; every paragraph of a command's help must be one source line.
    commands = [c for c in app.registered_commands if c.callback is not None]
    assert {c.callback.__name__ for c in commands if c.callback} >= {
        "check",
        "convert",
        "batch",
        "rollback",
    }
    for command in commands:
        assert command.callback is not None
        doc = inspect.getdoc(command.callback) or ""
        for paragraph in doc.split("\n\n"):
            assert "\n" not in paragraph.strip(), (command.callback.__name__, paragraph)
