"""The interpreters the benchmark compares, each in a venv of its own.

``original``: muscle-mem 0.1.0 from PyPI. ``ours``: this checkout, installed editable so
that a change to src/ is measured without reinstalling. ``baseline`` (``--baseline REV``):
this project as it was at a git revision, exported and installed like a release. All get
numpy (the scored workload's vectors). A venv is (re)installed only when what it should
hold changed.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
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


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def resolve(rev: str) -> str:
    """REV's full commit id; exits with git's own message if there is no such commit."""
    try:
        return git("rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}")
    except subprocess.CalledProcessError as error:
        sys.exit(f"--baseline {rev}: {error.stderr.strip() or 'not a commit'}")


def ensure_baseline(commit: str, log=print) -> Path:
    """The interpreter of a venv holding this project at ``commit``.

    The commit's tree is exported (git archive: no worktree is registered in the
    repository others share) and installed non-editable, so the venv keeps that code
    whatever the checkout does next. One baseline venv is kept; another commit replaces
    it from scratch, as reinstalling a package of the same version over it might not.
    """
    folder = VENVS / "baseline"
    python = folder / "bin" / "python"
    stamp = folder / "bench-installed.txt"
    if python.exists() and stamp.exists() and stamp.read_text() == commit:
        return python
    shutil.rmtree(folder, ignore_errors=True)
    log(f"creating {folder.relative_to(ROOT)} (this project at {commit[:12]})")
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    with tempfile.TemporaryDirectory(prefix="baseline-src-", dir=VENVS) as source:
        git_archive = ["git", "-C", str(ROOT), "archive", commit]
        archive = subprocess.Popen(git_archive, stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", source], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            sys.exit(f"git archive {commit} failed")
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"{source}[postgres]", "numpy"],
            check=True,
        )
    stamp.write_text(commit)  # written last: an interrupted install is redone next time
    return python
