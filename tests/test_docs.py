"""The README is an entry page: small, and every docs page is one link away; no link is dead."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
README_CAP_BYTES = 16 * 1024
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


FENCE = re.compile(r"^```.*?^```", re.M | re.S)
CODE = re.compile(r"`[^`\n]*`")


def _links(page: Path) -> list[str]:
    prose = CODE.sub("", FENCE.sub("", page.read_text()))
    return [t for t in LINK.findall(prose) if "://" not in t]


def test_readme_is_an_entry_page() -> None:
    assert (ROOT / "README.md").stat().st_size <= README_CAP_BYTES


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(ROOT / t).resolve() for t in _links(ROOT / "README.md")}
    pages = set((ROOT / "docs").glob("*.md")) - {ROOT / "docs" / "README.md"}
    assert pages, "docs/ has no pages"
    assert {p.resolve() for p in pages} <= linked, sorted(str(p) for p in pages - linked)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_dead_relative_links(page: Path) -> None:
    dead = [t for t in _links(page) if not (page.parent / t).exists()]
    assert not dead, dead
