"""The two interpreters the benchmark compares, each in a venv of its own.

``original``: muscle-mem 0.1.0 from PyPI. ``ours``: this checkout, installed editable so
that a change to src/ is measured without reinstalling. Both get numpy (the scored
workload's vectors). A venv is (re)installed only when what it should hold changed.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / "benchmarks" / ".venvs"
ORIGINAL_VERSION = "0.1.0"


def requirements(name: str) -> list[str]:
    if name == "original":
        return [f"muscle-mem=={ORIGINAL_VERSION}", "numpy"]
    return ["-e", f"{ROOT}[postgres]", "numpy"]


def ensure(name: str, log=print) -> Path:
    """The venv's interpreter, created or updated first if needed."""
    folder = VENVS / name
    python = folder / "bin" / "python"
    wanted = " ".join(requirements(name))
    if name == "ours":  # a new dependency in pyproject.toml must reach the venv
        wanted += " pyproject:" + hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = folder / "bench-installed.txt"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        log(f"creating {folder.relative_to(ROOT)} ({name})")
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    log(f"installing {wanted.split(' pyproject:')[0]} into {folder.relative_to(ROOT)}")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *requirements(name)], check=True
    )
    stamp.write_text(wanted)
    return python
