"""mypy is clean on the whole product (every package installed as ``mailpipe.*``, not the tests).

mypy does not follow the editable install's import hook, so the test builds the installed
layout from symlinks in a temporary directory and checks ``-p mailpipe`` there, with the
settings of ``[tool.mypy]`` in ``pyproject.toml``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARTS = ["access", "core", "delivery", "filters", "ingress", "mailstore", "ops", "spool", "workers", "broker"]


def run_mypy(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    pkg = tmp_path / "mailpipe"
    pkg.mkdir()
    (pkg / "__init__.py").symlink_to(ROOT / "mailpipe" / "__init__.py")
    for part in PARTS:
        if (ROOT / part).is_dir():
            (pkg / part).symlink_to(ROOT / part, target_is_directory=True)
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                           "--cache-dir", str(tmp_path / ".mypy_cache"), "-p", "mailpipe"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_mypy_is_clean_on_the_product(tmp_path):
    result = run_mypy(tmp_path)
    assert result.returncode == 0, result.stdout[-6000:]
