"""Batch reports: counts, moves and old digests (pure); the HTML as a real browser draws it."""

from __future__ import annotations

import errno
import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from oci_normalize.batch.report import (
    old_digests,
    render_html,
    render_markdown,
    repo_counts,
    write,
    write_data,
)
from oci_normalize.batch.resultsfile import IndexedResults, ResultsFile
from oci_normalize.batch.run import summarize
from oci_normalize.result_models import ManifestMove, RefResult
from oci_normalize.results import TreeKind
from tests.support.registry import require_tools


def _d(n: int) -> str:
    return f"sha256:{n:064x}"


def _converted(
    repo: str, tag: str, n: int, kind: TreeKind = "docker", children: int = 0
) -> RefResult:
    moves = [
        ManifestMove(
            path=f"manifests[{i}](linux/arch{i})",
            old_digest=_d(n * 100 + i),
            new_digest=_d(n * 100 + 50 + i),
        )
        for i in range(children)
    ]
    moves.append(ManifestMove(path="@", old_digest=_d(n), new_digest=_d(n + 1)))
    return RefResult(
        reference=f"reg.example/{repo}:{tag}",
        repository=repo,
        tag=tag,
        status="converted",
        kind=kind,
        old_digest=_d(n),
        new_digest=_d(n + 1),
        moved=moves,
    )


def _results() -> list[RefResult]:
    out = [_converted("team/api", f"v{i}", 1000 + 10 * i) for i in range(6)]
    out.append(_converted("team/web", "v1", 2000, children=2))
    out.append(_converted("team/kaniko", "main", 3000, kind="mixed"))
    out += [
        RefResult(
            reference=f"reg.example/team/web:old{i}",
            repository="team/web",
            status="already-oci",
            kind="oci",
        )
        for i in range(9)
    ]
    out.append(
        RefResult(
            reference="reg.example/team/api:broken",
            repository="team/api",
            status="failed",
            error="reg.example/team/api:broken: Docker schema1 manifest <cannot> be converted",
        )
    )
    return out


def _summary(results: list[RefResult], dry_run: bool = False) -> object:
    return summarize(results, requests=123, seconds=4.56, dry_run=dry_run, journal="j.jsonl")


def test_counts_per_repository() -> None:
    counts = {c.repository: c for c in repo_counts(_results())}
    api, web = counts["team/api"], counts["team/web"]
    assert (api.references, api.docker, api.converted, api.failed, api.already_oci) == (
        7,
        6,
        6,
        1,
        0,
    )
    assert (web.references, web.already_oci, web.converted) == (10, 9, 1)
    assert counts["team/kaniko"].mixed == 1


def test_old_digests_say_what_pointed_at_them() -> None:
    olds = {o.old: o for o in old_digests(_results())}
    assert olds[_d(2000)].pointed_at_by == ["tag reg.example/team/web:v1"]
    child = olds[_d(2000 * 100)]
    assert child.new == _d(2000 * 100 + 50)
    assert child.pointed_at_by == [
        f"index {_d(2000)} (manifests[0](linux/arch0)) of tag reg.example/team/web:v1"
    ]


def test_markdown_report() -> None:
    results = _results()
    text = render_markdown(results, _summary(results), source="reg.example")  # type: ignore[arg-type]
    assert text.startswith("# oci-normalize batch report: reg.example")
    assert "| team/api | 7 | 0 | 6 | 0 | 6 | 1 |" in text
    assert f"| reg.example/team/web:v1 | docker | `{_d(2000)}` | `{_d(2001)}` |" in text
    # HTML in outside text is escaped: a Markdown viewer renders raw HTML.
    assert "<cannot>" not in text
    assert "Docker schema1 manifest &lt;cannot&gt; be converted" in text
    assert "█" in text and "▓" in text and "░" in text


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    results = _results()
    path = tmp_path / "report.html"
    write(path, results, _summary(results), source="reg.example")  # type: ignore[arg-type]
    html = path.read_text()
    assert "<svg" in html and "<style>" in html
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:|//)""", html)  # no external assets
    assert "<cannot>" not in html and "&lt;cannot&gt;" in html
    assert html.count("<rect") == 2 + 2 + 1  # api: converted+failed; web: oci+converted; kaniko
    with pytest.raises(ValueError, match=r"\.html or \.md"):
        write(tmp_path / "r.txt", results, _summary(results), source="x")  # type: ignore[arg-type]


def test_dry_run_report_says_so() -> None:
    results = [
        r.model_copy(update={"status": "would-convert"}) if r.status == "converted" else r
        for r in _results()
    ]
    html = render_html(results, _summary(results, dry_run=True), source="reg.example")  # type: ignore[arg-type]
    assert "Dry run: nothing was changed" in html and "Tags would move (8)" in html


def _png_size_and_colours(png: bytes) -> tuple[int, int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    idat, pos = b"", 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return width, height, len(set(raw[i : i + 3] for i in range(1, min(len(raw), 2_000_000), 3)))


def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    require_tools("chromium")
    results = _results()
    page = tmp_path / "report.html"
    write(page, results, _summary(results), source="reg.example")  # type: ignore[arg-type]
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,900",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    width, height, colours = _png_size_and_colours(shot.read_bytes())
    assert (width, height) == (1200, 900)
    assert colours > 20  # text, tiles and the coloured bars: not a blank page


# ---- streamed from the results file: the same bytes as the list rendering before the split ------

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "report"


@pytest.mark.parametrize(
    ("name", "results", "dry_run", "source"),
    [
        ("small", "small", False, "reg.example"),
        ("small-dry", "small", True, "reg.example"),
        ("wide", "wide", False, "reg.example <x>"),  # > 40 repositories, shared old digests
    ],
)
@pytest.mark.parametrize("suffix", [".html", ".md"])
def test_the_streamed_report_is_the_old_rendering(
    tmp_path: Path, name: str, results: str, dry_run: bool, source: str, suffix: str
) -> None:
    """fixtures/report/* were rendered by the list-based report before it streamed."""
    lines = (GOLDEN / f"{results}.results.jsonl").read_text().splitlines()
    with ResultsFile(tmp_path) as spool:
        for line in lines:
            spool.add(RefResult.model_validate_json(line))
        summary = summarize(spool, requests=123, seconds=4.56, dry_run=dry_run, journal="j.jsonl")
        with IndexedResults(spool) as indexed:
            write_data(tmp_path / f"r{suffix}", indexed, summary, source=source)
        listed = list(spool)
    expected = (GOLDEN / f"{name}{suffix}").read_text()
    assert (tmp_path / f"r{suffix}").read_text() == expected
    render = render_html if suffix == ".html" else render_markdown
    assert render(listed, summary, source=source) == expected  # the in-memory path agrees
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"r{suffix}"]  # no scratch left


def test_results_file_keeps_every_result_when_the_disk_refuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = _results()
    with ResultsFile(tmp_path) as spool:
        for r in results[:5]:
            spool.add(r)
        assert len(list(spool.lines())) == 5  # flushed to the file

        def full(*_args: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr("oci_normalize.batch.resultsfile.os.pwrite", full)
        for r in results[5:]:
            spool.add(r)
        assert [r.reference for r in spool] == [r.reference for r in results]
        assert spool.failure is not None and spool.failure.errno == errno.ENOSPC
        assert spool.count == len(results)


def _signed_results() -> list[RefResult]:
    from oci_normalize.result_models import ReferrerOut

    def sig(subject: int, action: str) -> ReferrerOut:
        return ReferrerOut(
            subject=_d(subject),
            new_subject=_d(subject + 1),
            kind="cosign-signature",
            name=f"sha256-{subject:064x}.sig",
            signed=True,
            action=action,  # type: ignore[arg-type]
        )

    kept = _converted("team/api", "v1", 10).model_copy(
        update={"signatures": [sig(10, "re-signed")]}
    )
    behind = _converted("team/api", "v2", 20).model_copy(
        update={"signatures": [sig(20, "left-behind")]}
    )
    refused = RefResult(
        reference="reg.example/team/web:v1",
        repository="team/web",
        status="failed",
        error="refusing to convert: 1 signature(s)",
        signatures=[sig(30, "refused")],
    )
    return [kept, behind, refused]


@pytest.mark.parametrize("suffix", [".html", ".md"])
def test_reports_count_and_name_every_signature(tmp_path: Path, suffix: str) -> None:
    results = _signed_results()
    summary = summarize(results, requests=1, seconds=1.0, dry_run=False)
    assert summary.signatures == {"left-behind": 1, "re-signed": 1, "refused": 1}
    render = render_html if suffix == ".html" else render_markdown
    in_memory = render(results, summary, source="reg.example")
    # the streamed rendering (results read back from the file's index) says the same
    streamed = tmp_path / f"report{suffix}"
    with ResultsFile(tmp_path) as spool:
        for r in results:
            spool.add(r)
        with IndexedResults(spool) as indexed:
            write_data(streamed, indexed, summary, source="reg.example")
    for text in (in_memory, streamed.read_text()):
        assert "Signatures" in text
        for r in results:
            [s] = r.signatures
            row = re.search(rf"{re.escape(s.name)}.*?{re.escape(s.action)}", text, re.S)
            assert row is not None, (s.name, s.action)
        assert "signatures re-signed" in text and "signatures refused" in text
