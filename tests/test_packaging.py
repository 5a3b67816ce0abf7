"""The wheel installs one import name, ``mailpipe`` (issue 16 item 7).

Builds the wheel, then checks: its only top-level names are ``mailpipe`` and its
dist-info; ``bench/`` and ``tools/`` are not shipped; ``[tool.setuptools] packages`` in
pyproject.toml names every package folder under the mapped top-level folders (a folder
left out would silently be missing from the wheel); and in a fresh venv holding only that
wheel, ``import mailpipe.ingress, mailpipe.workers`` works from ``/`` while ``import
core`` (and the other folder names) does not. The venv finds the dependencies through a
plain path line to this venv's site-packages (no .pth there runs, so the editable
install of the checkout is not visible).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # from a copy: setuptools builds in the source tree and never empties a stale build/lib
    source = out / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis",
        "mailpipe-data"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
                   check=True, capture_output=True, timeout=600)
    (found,) = out.glob("mailpipe-*.whl")
    return found


def test_wheel_holds_one_top_level_name_and_no_bench_or_tools(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert top == {"mailpipe", next(t for t in top if t.endswith(".dist-info"))}, top
    assert {t for t in top if t.endswith(".dist-info")} == {wheel.name.split("-py")[0] + ".dist-info"}
    assert not [n for n in names if n.split("/")[1:2] in (["bench"], ["tools"])]
    assert "mailpipe/ingress/__init__.py" in names and "mailpipe/ops/deploy/systemd/mailpipe.target" in names


def package_folders() -> set[str]:
    """Every folder holding Python modules under a mapped top-level folder, as a package name."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set()
    for name, folder in setuptools["package-dir"].items():
        base = ROOT / folder
        for module in base.rglob("*.py"):
            if "__pycache__" in module.parts:
                continue
            relative = module.parent.relative_to(base).parts
            found.add(".".join((name, *relative)))
    return found


def test_packages_list_names_every_package_folder():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    assert package_folders() == listed


def test_fresh_venv_imports_mailpipe_and_no_folder_name(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    def run(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(python), "-c", code], cwd="/", capture_output=True, text=True, timeout=120)

    ok = run("import mailpipe, mailpipe.ingress, mailpipe.workers, mailpipe.ops.cli; print(mailpipe.__file__)")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().startswith(str(venv)), ok.stdout
    for name in ("core", "ops", "workers", "ingress", "access", "spool", "bench", "tools"):
        failed = run(f"import {name}")
        assert failed.returncode != 0 and "ModuleNotFoundError" in failed.stderr, (name, failed.stderr)
