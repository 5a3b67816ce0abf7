"""The layering contract of docs/design.md ("Layers"), checked on every import in the product.

import-linter cannot follow the ``package-dir`` mapping that installs the top-level folders
as ``mailpipe.*`` (it walks the ``mailpipe/`` folder only), so this test is the contract:
it reads every module with ``ast``, including imports inside functions, and fails on an
import that points to a higher layer. Packages of one layer must not import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: top to bottom; packages on one line are independent of each other
LAYERS: list[tuple[str, ...]] = [
    ("ops",),
    ("workers",),
    ("ingress", "access"),
    ("filters", "delivery", "broker"),
    ("spool", "mailstore"),
    ("core",),
]
LEVEL = {pkg: i for i, group in enumerate(LAYERS) for pkg in group}


def imported_packages(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "mailpipe":
                names = [f"mailpipe.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "mailpipe" and len(parts) > 1 and parts[1] in LEVEL:
                found.append((node.lineno, parts[1]))
    return found


def violations() -> list[str]:
    bad = []
    for pkg, level in LEVEL.items():
        folder = ROOT / pkg
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.py")):
            for lineno, target in imported_packages(path):
                if target == pkg:
                    continue
                if LEVEL[target] < level or (LEVEL[target] == level):
                    bad.append(f"{path.relative_to(ROOT)}:{lineno}: {pkg} imports {target}")
    return bad


def test_no_module_imports_a_higher_layer_or_a_sibling():
    assert violations() == []


def test_the_contract_catches_an_upward_import(tmp_path, monkeypatch):
    """The check itself can fail: a module of core/ importing ops is reported."""
    fake = tmp_path / "core"
    fake.mkdir()
    (fake / "bad.py").write_text("def f():\n    from mailpipe.ops import cli\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    assert violations() == ["core/bad.py:2: core imports ops"]


def test_every_package_folder_has_a_layer():
    folders = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "mailpipe", "bench", "tools"}
    assert folders <= set(LEVEL), folders - set(LEVEL)
