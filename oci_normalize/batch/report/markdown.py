"""The Markdown report (text bars for the chart), written to a stream line by line."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from html import escape
from itertools import chain
from typing import Final, TextIO

from oci_normalize.batch.report.data import ReportData, headline
from oci_normalize.result_models import BatchSummary
from oci_normalize.text import printable

#: Width of the longest text bar, in characters.
TEXT_BAR: Final = 40


def write_markdown(out: TextIO, data: ReportData, summary: BatchSummary, *, source: str) -> None:
    s = summary

    def lines(*texts: str) -> None:
        for text in texts:
            out.write(text)
            out.write("\n")

    lines(f"# oci-normalize batch report: {_md_text(source)}", "")
    if s.dry_run:
        lines("> Dry run: nothing was changed in the registry.", "")
    lines(" · ".join(f"**{value}** {label}" for label, value in headline(s)), "")
    done = "would convert" if s.dry_run else "converted"
    lines("## Repositories", "", "```")
    most = data.most_references() or 1
    width = data.longest_name() or 10
    for c in data.iter_repo_counts():
        bar = (
            _text_bar(c.already_oci, most, "█")
            + _text_bar(c.converted, most, "▓")
            + _text_bar(c.failed, most, "░")
        )
        lines(f"{c.repository:<{width}} {bar} {c.references}")
    lines(f"█ already OCI  ▓ {done}  ░ failed", "```", "")
    lines(
        *_md_table(
            ["repository", "references", "already OCI", "Docker", "mixed", done, "failed"]
            + ["artifacts"],
            (
                [c.repository, *map(str, (c.references, c.already_oci, c.docker, c.mixed))]
                + [str(c.converted), str(c.failed), str(c.artifacts)]
                for c in data.iter_repo_counts()
            ),
        )
    )
    signatures = list(_signature_table(data))
    if signatures:
        lines("## Signatures", "")
        lines(*_md_table(["reference", "signature", "names", "what happened"], signatures))
    failures = data.failures()
    if failures:
        lines(f"## Failed ({failures})", "")
        lines(
            *_md_table(
                ["reference", "reason"], ([f.reference, f.error] for f in data.iter_failures())
            )
        )
    lines(f"## Tags {'would move' if s.dry_run else 'moved'} ({data.moved_tags()})", "")
    lines(
        *_md_table(
            ["tag", "was", "old digest", "new digest"],
            (
                [t.reference, t.kind, f"`{t.old_digest}`", f"`{t.new_digest}`"]
                for t in data.iter_moved_tags()
            ),
        )
    )
    lines(f"## Old digests and what pointed at them ({data.old_digest_count()})", "")
    lines(
        "The old manifests are not deleted: anything pinned to an old digest still pulls the "
        "Docker-typed image until it is re-pinned.",
        "",
    )
    lines(
        *_md_table(
            ["old digest", "new digest", "manifest", "pointed at by"],
            (
                [f"`{o.old}`", f"`{o.new}`", "root" if o.path == "@" else o.path]
                + [_Markup("<br>".join(_md_text(w) for w in o.pointed_at_by))]
                for o in data.iter_old_digests()
            ),
        )
    )


class _Markup(str):
    """A Markdown table cell already escaped (it holds ``<br>`` line breaks of our own)."""


def _md_text(text: str) -> str:
    """Outside text for a Markdown cell: no HTML (a viewer would render it), no control
    characters, no ``|`` that would end the cell."""
    return escape(printable(text), quote=False).replace("|", "\\|")


def _text_bar(value: int, most: int, char: str) -> str:
    return char * (round(TEXT_BAR * value / most) if value else 0)


def _md_table(head: list[str], rows: Iterable[list[str]]) -> Iterator[str]:
    """The table's lines and a blank one (``None.`` when there is no row), lazily."""
    it = iter(rows)
    first = next(it, None)
    if first is None:
        yield from ("None.", "")
        return

    def cell(text: str) -> str:
        return text if isinstance(text, _Markup) else _md_text(text)

    yield "| " + " | ".join(head) + " |"
    yield "|" + "---|" * len(head)
    for row in chain([first], it):
        yield "| " + " | ".join(cell(c) for c in row) + " |"
    yield ""


def _signature_table(data: ReportData) -> Iterator[list[str]]:
    for row in data.iter_signatures():
        yield [row.reference, row.name, row.subject, row.action]
