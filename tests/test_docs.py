"""The README's code and the quickstart script do what the README says they do.

Tiers (see conftest): the README's Python and the quickstart make a plain ``Engine()``,
so they run on every store kind through ``$MUSCLE_MEM_STORE``; the walk-throughs that
name their own SQLite file run once.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_walkthrough_runs_and_its_page_change_hands_off(store_url):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    engine, page = namespace["engine"], namespace["page"]
    with engine:  # it opened $MUSCLE_MEM_STORE: closed at the end
        page["selectors"]["greeting"] = "#welcome"
        handed = engine("fill the signup form", "Ana", params={"name": "Ana"})
        assert (handed.status, handed.diverged_at, handed.replayed) == ("handoff", 1, 1)
        assert engine("fill the signup form", "Bob", params={"name": "Bob"})
        assert page["fields"] == {"name": "Bob", "greeting": "Hello Bob!"}


def test_quickstart_prints_miss_hit_handoff_hit(store_url):  # the script inherits it
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    statuses = re.findall(r"^\w+\s+(hit|miss|handoff)\b", out, re.M)
    assert statuses == ["miss", "hit", "handoff", "hit"]


def test_readme_terminal_walkthrough_is_what_the_command_prints(tmp_path, monkeypatch):
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
        out = subprocess.run(  # in a terminal 80 columns wide, as the README shows it
            [str(command), *line.split()[1:]],
            env={**os.environ, "COLUMNS": "80"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert _timeless(out) == _timeless(shown), line
        printed += out
    assert "{name}" in printed


def _timeless(text: str) -> str:
    """Wall times differ from run to run; the rest must match to the character."""
    return re.sub(r"\d+(\.\d+)?(s|ms|µs)\b", "T", text)


def test_readme_memory_bank_example_runs_and_its_brief_says_what_was_stored(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(from muscle_mem import MemoryBank\n.*?)```", readme, re.S)[1]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    bank = namespace["bank"]
    brief = bank.brief("brand:voyage", budget_chars=1500)
    assert "video beats image" in brief and "Voyage Summer 2024" in brief
    assert [a.kind for a in bank.shortfalls()] == ["audience"]
    assert bank.recall(text="video", scope="brand:voyage")[0].type == "learning"
    bank.close()


def test_readme_demo_excerpt_is_what_the_demo_prints(tmp_path):
    readme = (ROOT / "README.md").read_text()
    excerpt = re.search(r"```text\n(  #  task.*?)```", readme, re.S)[1]
    printed = subprocess.run(
        [str(Path(sys.executable).parent / "muscle-mem"), "demo", "--llm-latency", "0"],
        cwd=tmp_path,
        env={**os.environ, "MUSCLE_MEM_STORE": str(tmp_path / "demo.db")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # At --llm-latency 0 only wall times differ from the README's run at the default.
    assert _without_wall_times(excerpt) in _without_wall_times(printed)


def _without_wall_times(text: str) -> str:
    text = re.sub(r"^wall time .*\n", "", text, flags=re.M)
    return re.sub(r"\d+\.\d+ s\b", "T s", text)


def test_readme_framework_hook_misses_then_hits_with_another_context():
    readme = (ROOT / "README.md").read_text()
    code = re.search(
        r"```python\n(from muscle_mem import Engine\n\nengine = .*?)```", readme, re.S
    )[1]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    hook = namespace["hook"]
    first = hook("what does it cost?", {"pricing": "$10"})
    assert (first.status, first.result) == ("miss", "$10")
    hit = hook("what does it cost?", {"pricing": "$12"})  # another context, read at replay
    assert (hit.status, hit.steps[0].result, hit.steps[0].arguments) == (
        "hit",
        "$12",
        {"topic": "pricing"},
    )
