"""The layers contract (pyproject.toml, [tool.importlinter]): a lower module never names
a higher one, the bank never reaches into a store backend, the demo uses only the public
API. Checked on the package as it is, and shown to fail on a copy with one upward import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="pip install -e '.[dev]' brings import-linter")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "muscle_mem"


def _lint(config: Path, package_parent: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    command = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(command), str(config), "--no-cache"],
        cwd=package_parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_package_keeps_every_contract():
    result = _lint(ROOT / "pyproject.toml", ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_an_upward_import_even_for_a_type_hint_breaks_the_layers(tmp_path):
    copy = tmp_path / "muscle_mem"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    models = copy / "models.py"
    models.write_text(
        models.read_text().replace(
            "from __future__ import annotations\n",
            "from __future__ import annotations\n\nfrom typing import TYPE_CHECKING\n\n"
            "if TYPE_CHECKING:\n    from .engine import Engine\n",
            1,
        )
    )
    result = _lint(ROOT / "pyproject.toml", tmp_path)
    assert result.returncode != 0
    assert "the library reads top-down BROKEN" in result.stdout
    assert "muscle_mem.models -> muscle_mem.engine" in result.stdout
