"""The README's code and the quickstart script do what the README says they do."""

import re
import subprocess
import sys
from pathlib import Path

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
