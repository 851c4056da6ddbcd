"""The per-repository bar chart of the HTML report: inline SVG, drawn from counts only."""

from __future__ import annotations

from html import escape
from typing import Final

from oci_normalize.batch.report.data import RepoCounts

#: Repositories drawn in the chart (the table lists all of them).
CHART_MAX_REPOS: Final = 40
COLORS: Final = {"oci": "#2e7d32", "converted": "#1565c0", "failed": "#c62828"}
BAR_WIDTH: Final = 560
ROW_HEIGHT: Final = 22
LABEL_WIDTH: Final = 260


def svg_chart(largest: list[RepoCounts], repositories: int, *, dry_run: bool) -> str:
    """The chart of ``largest`` (at most :data:`CHART_MAX_REPOS`, biggest first) out of
    ``repositories`` in all; bars drawn in name order."""
    shown = sorted(largest[:CHART_MAX_REPOS], key=lambda c: c.repository)
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
        f"<p>Chart shows the {CHART_MAX_REPOS} largest of {repositories} repositories.</p>"
        if repositories > len(shown)
        else ""
    )
    return (
        f'<div class="legend">{legend}</div>'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="system-ui,sans-serif" font-size="13" role="img" '
        f'aria-label="references per repository">{"".join(rows)}</svg>{note}'
    )
