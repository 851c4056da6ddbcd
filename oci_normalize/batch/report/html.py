"""The HTML report (self-contained: inline CSS and SVG, no external asset of any kind),
written to a stream part by part: rows are asked for one at a time, never held."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from html import escape
from itertools import chain
from typing import Final, TextIO

from oci_normalize.batch.report.data import ReportData, headline
from oci_normalize.batch.report.svg import CHART_MAX_REPOS, svg_chart
from oci_normalize.result_models import BatchSummary

_CSS: Final = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px 32px;
color:#1b1f24;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#57606a;margin-bottom:16px}
.tiles{display:flex;flex-wrap:wrap;gap:10px}
.tile{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:96px}
.tile b{display:block;font-size:22px}.tile span{color:#57606a;font-size:13px}
.tile.bad b{color:#c62828}.tile.good b{color:#1565c0}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right}
code{font:12px ui-monospace,monospace;word-break:break-all}
.legend span{display:inline-block;margin-right:16px}
.sw{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
.dry{background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px;border-radius:6px}
"""


class _Parts:
    """Parts of the page, a newline between two."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._first = True

    def add(self, *chunks: str) -> None:
        """One part, written in ``chunks``."""
        if not self._first:
            self.out.write("\n")
        self._first = False
        for chunk in chunks:
            self.out.write(chunk)

    def table(self, head: list[str], rows: Iterable[list[str]]) -> None:
        self.add(*_table(head, rows))


def write_html(out: TextIO, data: ReportData, summary: BatchSummary, *, source: str) -> None:
    s = summary
    page = _Parts(out)
    tiles = "".join(
        f'<div class="tile{_tile_class(label, value)}"><b>{escape(value)}</b>'
        f"<span>{escape(label)}</span></div>"
        for label, value in headline(s)
    )
    page.add("<!DOCTYPE html>")
    page.add('<html lang="en"><head><meta charset="utf-8">')
    page.add('<meta name="viewport" content="width=device-width,initial-scale=1">')
    page.add(f"<title>oci-normalize batch report: {escape(source)}</title>")
    page.add(f"<style>{_CSS}</style></head><body>")
    page.add("<h1>oci-normalize batch report</h1>")
    page.add(
        f'<div class="meta">{escape(source)}'
        + (f" · shard {escape(s.shard)}" if s.shard else "")
        + (f" · journal {escape(s.journal)}" if s.journal else "")
        + "</div>"
    )
    if s.dry_run:
        page.add('<p class="dry">Dry run: nothing was changed in the registry.</p>')
    page.add(f'<div class="tiles">{tiles}</div>')
    page.add("<h2>Repositories</h2>")
    page.add(svg_chart(data.largest(CHART_MAX_REPOS), data.repositories(), dry_run=s.dry_run))
    done = "would convert" if s.dry_run else "converted"
    page.table(
        ["repository", "references", "already OCI", "Docker", "mixed", done, "failed"]
        + ["artifacts"],
        (
            [escape(c.repository)]
            + [str(v) for v in (c.references, c.already_oci, c.docker, c.mixed, c.converted)]
            + [str(c.failed), str(c.artifacts)]
            for c in data.iter_repo_counts()
        ),
    )
    signatures = data.iter_signatures()
    first = next(signatures, None)
    if first is not None:
        page.add("<h2>Signatures</h2>")
        page.add(
            "<p>carried: it names a digest that did not change and travels with the image; "
            "re-signed: --sign-with signed the new digest before the tag moved; left-behind: "
            "it stays valid on the old digest only; refused: the reference was not converted."
            "</p>"
        )
        page.table(
            ["reference", "signature", "names", "what happened"],
            (
                [escape(row.reference), _code(row.name), _code(row.subject), escape(row.action)]
                for row in chain([first], signatures)
            ),
        )
    failures = data.failures()
    if failures:
        page.add(f"<h2>Failed ({failures})</h2>")
        page.table(
            ["reference", "reason"],
            ([escape(f.reference), escape(f.error)] for f in data.iter_failures()),
        )
    tags = data.moved_tags()
    verb = "would move" if s.dry_run else "moved"
    page.add(f"<h2>Tags {verb} ({tags})</h2>")
    if tags:
        page.table(
            ["tag", "was", "old digest", "→ new digest"],
            (
                [escape(t.reference), escape(t.kind), _code(t.old_digest), _code(t.new_digest)]
                for t in data.iter_moved_tags()
            ),
        )
    else:
        page.add("<p>None.</p>")
    olds = data.old_digest_count()
    page.add(f"<h2>Old digests and what pointed at them ({olds})</h2>")
    page.add(
        "<p>The old manifests are not deleted: anything pinned to an old digest (deployments, "
        "lock files, signatures) still pulls the Docker-typed image until it is re-pinned.</p>"
    )
    if olds:
        page.table(
            ["old digest", "new digest", "manifest", "pointed at by"],
            (
                [
                    _code(o.old),
                    _code(o.new),
                    escape("root" if o.path == "@" else o.path),
                    "<br>".join(escape(w) for w in o.pointed_at_by),
                ]
                for o in data.iter_old_digests()
            ),
        )
    else:
        page.add("<p>None.</p>")
    page.add("</body></html>\n")


def _tile_class(label: str, value: str) -> str:
    if label == "failed" and value != "0":
        return " bad"
    return " good" if label in ("converted", "would convert") else ""


def _code(text: str | None) -> str:
    return f"<code>{escape(text or '')}</code>"


def _table(head: list[str], rows: Iterable[list[str]]) -> Iterator[str]:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    yield f"<table><thead><tr>{th}</tr></thead><tbody>"
    for row in rows:
        yield "<tr>" + "".join(f"<td{_num(c)}>{c}</td>" for c in row) + "</tr>"
    yield "</tbody></table>"


def _num(cell: str) -> str:
    return ' class="n"' if cell.isdigit() else ""
