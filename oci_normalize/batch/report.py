"""A batch report a platform team reads at a glance: HTML (self-contained) or Markdown.

Pure: results in, text out. Sections: summary; per-repository counts with a bar chart (inline
SVG in HTML, text bars in Markdown); failures with reasons; every moved tag with old → new digest;
and every old digest with what pointed at it (tags, or the index that listed it), so digest pins
in deployments can be updated. The HTML has inline CSS and no external asset of any kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Final

from oci_normalize.results import (
    ALREADY_OCI,
    ARTIFACT,
    CONVERTED,
    FAILED,
    KIND_DOCKER,
    KIND_MIXED,
    WOULD_CONVERT,
    BatchSummary,
    RefResult,
)
from oci_normalize.text import printable

#: Repositories drawn in the chart (the table lists all of them).
CHART_MAX_REPOS: Final = 40
COLORS: Final = {"oci": "#2e7d32", "converted": "#1565c0", "failed": "#c62828"}
BAR_WIDTH: Final = 560
ROW_HEIGHT: Final = 22
LABEL_WIDTH: Final = 260
TEXT_BAR: Final = 40


@dataclass
class RepoCounts:
    repository: str
    references: int = 0
    already_oci: int = 0
    docker: int = 0
    mixed: int = 0
    converted: int = 0  # or would be, in a dry run
    failed: int = 0
    artifacts: int = 0


@dataclass
class OldDigest:
    """An old manifest digest, its replacement, and what pointed at it."""

    old: str
    new: str
    path: str
    pointed_at_by: list[str] = field(default_factory=list)


def repo_counts(results: list[RefResult]) -> list[RepoCounts]:
    counts: dict[str, RepoCounts] = {}
    for r in results:
        c = counts.setdefault(r.repository, RepoCounts(r.repository))
        c.references += 1
        c.already_oci += r.status == ALREADY_OCI
        c.docker += r.kind == KIND_DOCKER
        c.mixed += r.kind == KIND_MIXED
        c.converted += r.status in (CONVERTED, WOULD_CONVERT)
        c.failed += r.status == FAILED
        c.artifacts += r.status == ARTIFACT
    return sorted(counts.values(), key=lambda c: c.repository)


def moved(results: list[RefResult]) -> list[RefResult]:
    return sorted(
        (r for r in results if r.status in (CONVERTED, WOULD_CONVERT)), key=lambda r: r.reference
    )


def old_digests(results: list[RefResult]) -> list[OldDigest]:
    out: dict[str, OldDigest] = {}
    for r in moved(results):
        for m in r.moved:
            entry = out.setdefault(m.old_digest, OldDigest(m.old_digest, m.new_digest, m.path))
            if m.path == "@":
                who = f"tag {r.reference}"
            else:
                who = f"index {r.old_digest} ({m.path}) of tag {r.reference}"
            if who not in entry.pointed_at_by:
                entry.pointed_at_by.append(who)
    return sorted(out.values(), key=lambda o: (o.path != "@", o.old))


def write(path: Path, results: list[RefResult], summary: BatchSummary, *, source: str) -> None:
    """Write the report; the suffix picks the format (``.html``/``.htm`` or ``.md``)."""
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        text = render_html(results, summary, source=source)
    elif suffix == ".md":
        text = render_markdown(results, summary, source=source)
    else:
        raise ValueError(f"report {path}: unknown format {suffix!r}; use .html or .md")
    path.write_text(text, encoding="utf-8")


def _headline(s: BatchSummary) -> list[tuple[str, str]]:
    done = ("would convert", s.would_convert) if s.dry_run else ("converted", s.converted)
    where = [("destination", s.destination or ""), ("already there", str(s.present))]
    return [
        ("references", str(s.references)),
        ("repositories", str(s.repositories)),
        *(where if s.destination else []),
        ("already OCI", str(s.already_oci)),
        (done[0], str(done[1])),
        ("failed", str(s.failed)),
        ("artifacts (left alone)", str(s.artifacts)),
        ("requests", str(s.requests)),
        ("seconds", f"{s.seconds:.1f}"),
    ]


# ---- HTML -------------------------------------------------------------------------------------

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


def render_html(results: list[RefResult], summary: BatchSummary, *, source: str) -> str:
    s = summary
    tiles = "".join(
        f'<div class="tile{_tile_class(label, value)}"><b>{escape(value)}</b>'
        f"<span>{escape(label)}</span></div>"
        for label, value in _headline(s)
    )
    counts = repo_counts(results)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>oci-normalize batch report: {escape(source)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>oci-normalize batch report</h1>",
        f'<div class="meta">{escape(source)}'
        + (f" · shard {escape(s.shard)}" if s.shard else "")
        + (f" · journal {escape(s.journal)}" if s.journal else "")
        + "</div>",
    ]
    if s.dry_run:
        parts.append('<p class="dry">Dry run: nothing was changed in the registry.</p>')
    parts += [f'<div class="tiles">{tiles}</div>', "<h2>Repositories</h2>"]
    parts += [_svg_chart(counts, dry_run=s.dry_run), _repo_table(counts, dry_run=s.dry_run)]
    failures = sorted((r for r in results if r.status == FAILED), key=lambda r: r.reference)
    if failures:
        parts.append(f"<h2>Failed ({len(failures)})</h2>")
        parts.append(
            _table(
                ["reference", "reason"],
                [[escape(r.reference), escape(r.error or "")] for r in failures],
            )
        )
    tags = moved(results)
    verb = "would move" if s.dry_run else "moved"
    parts.append(f"<h2>Tags {verb} ({len(tags)})</h2>")
    parts.append(
        _table(
            ["tag", "was", "old digest", "→ new digest"],
            [
                [
                    escape(r.reference),
                    escape(r.kind or ""),
                    _code(r.old_digest),
                    _code(r.new_digest),
                ]
                for r in tags
            ],
        )
        if tags
        else "<p>None.</p>"
    )
    olds = old_digests(results)
    parts.append(f"<h2>Old digests and what pointed at them ({len(olds)})</h2>")
    parts.append(
        "<p>The old manifests are not deleted: anything pinned to an old digest (deployments, "
        "lock files, signatures) still pulls the Docker-typed image until it is re-pinned.</p>"
    )
    parts.append(
        _table(
            ["old digest", "new digest", "manifest", "pointed at by"],
            [
                [
                    _code(o.old),
                    _code(o.new),
                    escape("root" if o.path == "@" else o.path),
                    "<br>".join(escape(w) for w in o.pointed_at_by),
                ]
                for o in olds
            ],
        )
        if olds
        else "<p>None.</p>"
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _tile_class(label: str, value: str) -> str:
    if label == "failed" and value != "0":
        return " bad"
    return " good" if label in ("converted", "would convert") else ""


def _code(text: str | None) -> str:
    return f"<code>{escape(text or '')}</code>"


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td{_num(c)}>{c}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _num(cell: str) -> str:
    return ' class="n"' if cell.isdigit() else ""


def _repo_table(counts: list[RepoCounts], *, dry_run: bool) -> str:
    done = "would convert" if dry_run else "converted"
    rows = [
        [escape(c.repository)]
        + [str(v) for v in (c.references, c.already_oci, c.docker, c.mixed, c.converted, c.failed)]
        + [str(c.artifacts)]
        for c in counts
    ]
    head = ["repository", "references", "already OCI", "Docker", "mixed", done, "failed"]
    head.append("artifacts")
    return _table(head, rows)


def _svg_chart(counts: list[RepoCounts], *, dry_run: bool) -> str:
    shown = sorted(counts, key=lambda c: (-c.references, c.repository))[:CHART_MAX_REPOS]
    shown.sort(key=lambda c: c.repository)
    most = max((c.references for c in shown), default=1) or 1
    height = ROW_HEIGHT * len(shown) + 8
    width = LABEL_WIDTH + BAR_WIDTH + 60
    rows = []
    for i, c in enumerate(shown):
        y = 4 + i * ROW_HEIGHT
        x = float(LABEL_WIDTH)
        label = c.repository if len(c.repository) <= 36 else "…" + c.repository[-35:]
        rows.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
        )
        for key, value in (
            ("oci", c.already_oci),
            ("converted", c.converted),
            ("failed", c.failed),
        ):
            if value:
                w = BAR_WIDTH * value / most
                rows.append(
                    f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{ROW_HEIGHT - 6}" '
                    f'fill="{COLORS[key]}"><title>{escape(c.repository)}: {value} {key}</title>'
                    "</rect>"
                )
                x += w
        rows.append(f'<text x="{x + 6:.1f}" y="{y + 15}">{c.references}</text>')
    done = "would convert" if dry_run else "converted"
    legend = "".join(
        f'<span><i class="sw" style="background:{COLORS[k]}"></i>{escape(name)}</span>'
        for k, name in (("oci", "already OCI"), ("converted", done), ("failed", "failed"))
    )
    note = (
        f"<p>Chart shows the {CHART_MAX_REPOS} largest of {len(counts)} repositories.</p>"
        if len(counts) > len(shown)
        else ""
    )
    return (
        f'<div class="legend">{legend}</div>'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="system-ui,sans-serif" font-size="13" role="img" '
        f'aria-label="references per repository">{"".join(rows)}</svg>{note}'
    )


# ---- Markdown ---------------------------------------------------------------------------------


def render_markdown(results: list[RefResult], summary: BatchSummary, *, source: str) -> str:
    s = summary
    out = [f"# oci-normalize batch report: {_md_text(source)}", ""]
    if s.dry_run:
        out += ["> Dry run: nothing was changed in the registry.", ""]
    out += [" · ".join(f"**{value}** {label}" for label, value in _headline(s)), ""]
    counts = repo_counts(results)
    done = "would convert" if s.dry_run else "converted"
    out += ["## Repositories", "", "```"]
    most = max((c.references for c in counts), default=1) or 1
    width = max((len(c.repository) for c in counts), default=10)
    for c in counts:
        bar = (
            _text_bar(c.already_oci, most, "█")
            + _text_bar(c.converted, most, "▓")
            + _text_bar(c.failed, most, "░")
        )
        out.append(f"{c.repository:<{width}} {bar} {c.references}")
    out += [f"█ already OCI  ▓ {done}  ░ failed", "```", ""]
    out += _md_table(
        ["repository", "references", "already OCI", "Docker", "mixed", done, "failed", "artifacts"],
        [
            [c.repository, *map(str, (c.references, c.already_oci, c.docker, c.mixed))]
            + [str(c.converted), str(c.failed), str(c.artifacts)]
            for c in counts
        ],
    )
    failures = sorted((r for r in results if r.status == FAILED), key=lambda r: r.reference)
    if failures:
        out += [f"## Failed ({len(failures)})", ""]
        out += _md_table(["reference", "reason"], [[r.reference, r.error or ""] for r in failures])
    tags = moved(results)
    out += [f"## Tags {'would move' if s.dry_run else 'moved'} ({len(tags)})", ""]
    out += _md_table(
        ["tag", "was", "old digest", "new digest"],
        [[r.reference, r.kind or "", f"`{r.old_digest}`", f"`{r.new_digest}`"] for r in tags],
    )
    olds = old_digests(results)
    out += [f"## Old digests and what pointed at them ({len(olds)})", ""]
    out += [
        "The old manifests are not deleted: anything pinned to an old digest still pulls the "
        "Docker-typed image until it is re-pinned.",
        "",
    ]
    out += _md_table(
        ["old digest", "new digest", "manifest", "pointed at by"],
        [
            [f"`{o.old}`", f"`{o.new}`", "root" if o.path == "@" else o.path]
            + [_Markup("<br>".join(_md_text(w) for w in o.pointed_at_by))]
            for o in olds
        ],
    )
    return "\n".join(out) + "\n"


class _Markup(str):
    """A Markdown table cell already escaped (it holds ``<br>`` line breaks of our own)."""


def _md_text(text: str) -> str:
    """Outside text for a Markdown cell: no HTML (a viewer would render it), no control
    characters, no ``|`` that would end the cell."""
    return escape(printable(text), quote=False).replace("|", "\\|")


def _text_bar(value: int, most: int, char: str) -> str:
    return char * (round(TEXT_BAR * value / most) if value else 0)


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["None.", ""]

    def cell(text: str) -> str:
        return text if isinstance(text, _Markup) else _md_text(text)

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]
