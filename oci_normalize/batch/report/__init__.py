"""A batch report a platform team reads at a glance: HTML (self-contained) or Markdown.

Sections: summary; per-repository counts with a bar chart (inline SVG in HTML, text bars in
Markdown); failures with reasons; every moved tag with old → new digest; and every old digest
with what pointed at it (tags, or the index that listed it), so digest pins in deployments can
be updated. One concern a module: :mod:`.data` (what is shown, in which order, from a list or
any :class:`~.data.ReportData`), :mod:`.html`, :mod:`.svg` (the chart, from counts only),
:mod:`.markdown`. Both formats are written to the file as they are drawn, row by row.
"""

from __future__ import annotations

import io
from pathlib import Path

from oci_normalize.batch.report.data import (
    ListData,
    OldDigest,
    RepoCounts,
    ReportData,
    moved,
    old_digests,
    repo_counts,
)
from oci_normalize.batch.report.html import write_html
from oci_normalize.batch.report.markdown import _md_table, write_markdown
from oci_normalize.batch.report.svg import CHART_MAX_REPOS
from oci_normalize.result_models import BatchSummary, RefResult

__all__ = [
    "CHART_MAX_REPOS",
    "ListData",
    "OldDigest",
    "RepoCounts",
    "ReportData",
    "_md_table",
    "moved",
    "old_digests",
    "render_html",
    "render_markdown",
    "repo_counts",
    "write",
    "write_data",
]

#: Characters buffered before a write to the report file.
_WRITE_BUFFER = 256 * 1024


def write(path: Path, results: list[RefResult], summary: BatchSummary, *, source: str) -> None:
    """Write the report of ``results``; the suffix picks the format (``.html``, ``.md``)."""
    write_data(path, ListData(results), summary, source=source)


def write_data(path: Path, data: ReportData, summary: BatchSummary, *, source: str) -> None:
    """Write the report of ``data``, row by row as it is drawn; the suffix picks the format."""
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        writer = write_html
    elif suffix == ".md":
        writer = write_markdown
    else:
        raise ValueError(f"report {path}: unknown format {suffix!r}; use .html or .md")
    with path.open("w", encoding="utf-8", buffering=_WRITE_BUFFER) as out:
        writer(out, data, summary, source=source)


def render_html(results: list[RefResult], summary: BatchSummary, *, source: str) -> str:
    out = io.StringIO()
    write_html(out, ListData(results), summary, source=source)
    return out.getvalue()


def render_markdown(results: list[RefResult], summary: BatchSummary, *, source: str) -> str:
    out = io.StringIO()
    write_markdown(out, ListData(results), summary, source=source)
    return out.getvalue()
