"""The README's code and the quickstart script do what the README says they do."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_readme_walkthrough_runs_and_its_page_change_hands_off():
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    engine, page = namespace["engine"], namespace["page"]
    page["selectors"]["greeting"] = "#welcome"
    handed = engine("fill the signup form", "Ana", params={"name": "Ana"})
    assert (handed.status, handed.diverged_at, handed.replayed) == ("handoff", 1, 1)
    assert engine("fill the signup form", "Bob", params={"name": "Bob"})
    assert page["fields"] == {"name": "Bob", "greeting": "Hello Bob!"}


def test_quickstart_prints_miss_hit_handoff_hit():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    statuses = re.findall(r"^\w+\s+(hit|miss|handoff)\b", out, re.M)
    assert statuses == ["miss", "hit", "handoff", "hit"]


def test_readme_terminal_walkthrough_is_what_the_command_prints(store_kind, tmp_path, monkeypatch):
    if store_kind != "sqlite":
        pytest.skip("the walk-through is on a SQLite file: it runs once")
    readme = (ROOT / "README.md").read_text()
    session = re.search(r"```console\n(\$ export MUSCLE_MEM_STORE.*?)```", readme, re.S).group(1)
    monkeypatch.setenv("MUSCLE_MEM_STORE", str(tmp_path / "cache.db"))
    for _ in range(2):
        subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], check=True)
    command = Path(sys.executable).parent / "muscle-mem"
    printed = ""
    for block in re.split(r"^\$ ", session, flags=re.M)[1:]:
        line, _, shown = block.partition("\n")
        if not line.startswith("muscle-mem "):
            continue
        out = subprocess.run(
            [str(command), *line.split()[1:]], capture_output=True, text=True, check=True
        ).stdout
        assert _timeless(out) == _timeless(shown), line
        printed += out
    assert "{name}" in printed


def _timeless(text: str) -> str:
    """Wall times differ from run to run; the rest must match to the character."""
    return re.sub(r"\d+(\.\d+)?(s|ms|µs)\b", "T", text)
