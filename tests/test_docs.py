"""The README is an entry page: small, and every docs page is one link away; no link is dead."""

from __future__ import annotations

import builtins
import importlib
import inspect
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


# ---- Sphinx cross-references in the package's docstrings and ``#:`` comments ----------------

PACKAGE = ROOT / "oci_normalize"
ROLE = re.compile(r":(mod|func|class|meth|data|attr|exc|obj):`([^`]+)`")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _lookup(dotted: str) -> bool:
    """Whether ``dotted`` names a module, or something reached from one by attributes: a class
    member, an annotated field, or an instance attribute its class assigns (``self.NAME =``)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for i, name in enumerate(parts[cut:], start=cut + 1):
            if hasattr(obj, name):
                obj = getattr(obj, name)
                if inspect.ismodule(obj) and obj.__name__ != ".".join(parts[:i]):
                    return False  # a module imported under another's name: not its place
            elif name in getattr(obj, "__annotations__", {}) or _assigns(obj, name):
                obj = None  # declared, with nothing to descend into
            else:
                return False
        return True
    return False


def _assigns(cls: object, name: str) -> bool:
    """Whether ``cls`` is one of the package's classes and assigns ``self.NAME`` somewhere."""
    if not isinstance(cls, type) or not cls.__module__.startswith("oci_normalize"):
        return False
    return re.search(rf"self\.{name}\b[^=\n]*=", inspect.getsource(cls)) is not None


def _package_modules() -> list[str]:
    names = {_module_name(path) for path in PACKAGE.rglob("*.py")}
    return sorted(n for n in names if not n.endswith("__main__"))  # importing it runs the CLI


def _resolves(target: str, module: str) -> bool:
    """Resolve as Sphinx would from inside ``module``: a name in the module or one of its
    classes (or a builtin); ``.suffix`` under the module or a package above it, else the one
    object in the package whose name ends so; or a full dotted name."""
    target = target.split("<")[-1].rstrip(">").lstrip("~").removesuffix("()")
    if target.startswith("."):
        prefixes = [module.rsplit(".", i)[0] for i in range(module.count(".") + 1)]
        if any(_lookup(prefix + target) for prefix in prefixes):
            return True
        found = [m for m in _package_modules() if _lookup(m + target)]
        return len(found) == 1  # Sphinx warns about an ambiguous suffix
    if "." in target and _lookup(target):
        return True
    if _lookup(f"{module}.{target}") or hasattr(builtins, target):
        return True
    classes = [v for v in vars(importlib.import_module(module)).values() if isinstance(v, type)]
    return any(_lookup(f"{c.__module__}.{c.__qualname__}.{target}") for c in classes)


def _references() -> list[tuple[str, str, str]]:
    return [
        (_module_name(path), role, target)
        for path in sorted(PACKAGE.rglob("*.py"))
        for role, target in ROLE.findall(path.read_text())
    ]


def test_the_package_has_cross_references_to_check() -> None:
    assert len(_references()) > 100


def test_every_cross_reference_in_the_package_resolves() -> None:
    dead = [f"{m}: :{role}:`{t}`" for m, role, t in _references() if not _resolves(t, m)]
    assert not dead, "\n".join(dead)
