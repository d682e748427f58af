"""A hit's cost in instructions, this checkout against another commit.

Seconds on this 2-core VM drift by 20-40% within minutes; instructions counted by
``valgrind --tool=callgrind`` do not, so a small change in the hit path shows up here
when the timed benchmarks can't resolve it. Each side runs the same script twice, with
no hits and with ``--hits`` hits, and the difference divided by the hits is one hit's
instructions (startup and recording cancel out).

    python3 benchmarks/hit_instructions.py --baseline de9d783 [--steps 10] [--hits 300]

Needs valgrind and this checkout's venv (numpy not needed). The baseline's ``src`` is
taken with ``git archive`` into a temporary folder and put first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# One engine, one recorded path of ``steps`` calls, then ``hits`` hits. With a param,
# every step's argument is filled in from it, as when serving another customer.
HITS = """
import sys
from muscle_mem import Check, Engine
steps, hits, with_param = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "param"
engine = Engine()
env = {"v": 1}

@engine.function(pre_check=Check(lambda i, who=None: env["v"]))
def act(i, who=None):
    return i

def agent(task):
    for i in range(steps):
        act(i, who=task.split()[-1] if with_param else None)

engine.set_agent(agent)
engine("do it for Ann", params={"who": "Ann"} if with_param else None)
for _ in range(hits):
    outcome = engine(
        "do it for Bob" if with_param else "do it for Ann",
        params={"who": "Bob"} if with_param else None,
    )
    assert outcome.hit, outcome
"""


def instructions(src: Path, script: Path, *args: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         str(script), *args],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"valgrind printed no count:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_hit(src: Path, script: Path, steps: int, hits: int, form: str) -> float:
    idle = instructions(src, script, str(steps), "0", form)
    busy = instructions(src, script, str(steps), str(hits), form)
    return (busy - idle) / hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="a git revision to compare with")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--hits", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        archive = folder / "baseline.tar"
        subprocess.run(
            ["git", "archive", "-o", str(archive), args.baseline, "src"], cwd=ROOT, check=True
        )
        with tarfile.open(archive) as tar:
            tar.extractall(folder / "baseline", filter="data")
        script = folder / "hits.py"
        script.write_text(HITS)
        print(f"| Hit ({args.steps} steps) | ours | {args.baseline} | ours / baseline |")
        print("|---|---|---|---|")
        for form in ("plain", "param"):
            ours = per_hit(ROOT / "src", script, args.steps, args.hits, form)
            base = per_hit(folder / "baseline" / "src", script, args.steps, args.hits, form)
            label = "no params" if form == "plain" else "a param at every step"
            print(f"| {label} | {ours:,.0f} | {base:,.0f} | {ours / base:.2f}x |")


if __name__ == "__main__":
    main()
