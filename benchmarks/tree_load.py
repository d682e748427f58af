"""Reading a big tree from a SQLite store, this checkout against other commits.

A process reads a task key's tree once, the first time a run asks for it (see
``store/sql.py``), and every row it reads is checked before it is used (issue #16).
This loads one tree of ``--steps`` nodes holding ``--snapshots`` snapshots in all into
a new store object, ``--rounds`` times, each side in its own process and the sides
taking turns, and prints the median of each side and the ratio of medians. Each side
writes its store with its own code (``Tree.insert`` and ``merge``, which every compared
version has), so each reads a file in its own format.

    python3 benchmarks/tree_load.py --baseline 5e0f99d --baseline 359a33b

``--instructions`` counts instructions with ``valgrind --tool=callgrind`` instead of
timing (one load per side): seconds on the shared 2-core VM drift by 20-40%, counts
do not. A baseline's ``src`` is taken with ``git archive`` and put first on
``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Writes the store: one path of `steps` calls, its snapshots spread over its nodes'
# pre-checks, each an encoded page of a few hundred bytes, as a browser agent keeps.
BUILD = """
import sys
from muscle_mem.codec import encode, encode_call
from muscle_mem.models import Step
from muscle_mem.store.sqlite import SQLiteStore
from muscle_mem.trie import Tree

path, steps, snapshots = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tree = Tree("bench: pay the invoices")
node = tree.root
for i in range(steps):
    node = tree.insert(node, Step("click", "def click(i): ...", encode_call(((i,), {}))))
    for j in range(i, snapshots, steps):
        page = {
            "url": f"https://example.com/invoices?page={j}",
            "title": f"Invoices, page {j}",
            "rows": [{"id": j * 10 + k, "amount": f"{k}.00", "paid": k % 2 == 0} for k in range(4)],
        }
        node.pre.load(encode(page))
node.terminal = True
node.result = encode("paid")
store = SQLiteStore(path)
store.merge(tree, ())
store.close()
"""

# Loads the tree `rounds` times, each into a new store object (nothing kept from the
# last load), and prints each load's seconds. The first run of it, untimed, migrates a
# store an older version wrote; 0 rounds measure the interpreter's start alone.
LOAD = """
import sys, time, warnings
from muscle_mem.store.sqlite import SQLiteStore

path, rounds = sys.argv[1], int(sys.argv[2])
warnings.simplefilter("error")  # a damaged row would make the figures meaningless
for _ in range(rounds):
    store = SQLiteStore(path)
    start = time.perf_counter()
    tree = store.tree("bench: pay the invoices")
    took = time.perf_counter() - start
    store.close()
    assert sum(len(node.pre) for node in tree) > 0
    print(took)
"""


def run(src: Path, script: Path, *args: str, valgrind: bool = False) -> str:
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, str(script), *args]
    if valgrind:
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{script.name} failed under {src}:\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def instructions(src: Path, script: Path, store: Path, rounds: int) -> int:
    found = re.search(
        r"Collected : (\d+)", run(src, script, str(store), str(rounds), valgrind=True)
    )
    if found is None:
        raise SystemExit("valgrind printed no count")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", action="append", required=True, help="a git revision")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--snapshots", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--instructions", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "build.py").write_text(BUILD)
        (folder / "load.py").write_text(LOAD)
        sides = {"ours": ROOT / "src"}
        for revision in args.baseline:
            archive = folder / f"{revision}.tar"
            subprocess.run(
                ["git", "archive", "-o", str(archive), revision, "src"], cwd=ROOT, check=True
            )
            with tarfile.open(archive) as tar:
                tar.extractall(folder / revision, filter="data")
            sides[revision] = folder / revision / "src"
        stores = {}
        for name, src in sides.items():
            stores[name] = folder / f"{name}.db"
            run(src, folder / "build.py", str(stores[name]), str(args.steps), str(args.snapshots))
            run(src, folder / "load.py", str(stores[name]), "1")  # migrated, warmed
        what = f"{args.snapshots:,} snapshots on {args.steps} nodes"
        if args.instructions:
            # One load against none: what is left is the load's (startup cancels out).
            counts = {
                name: instructions(src, folder / "load.py", stores[name], 1)
                - instructions(src, folder / "load.py", stores[name], 0)
                for name, src in sides.items()
            }
            print(f"| Loading a tree ({what}) | instructions | ours / it |")
            print("|---|---|---|")
            for name, count in counts.items():
                print(f"| {name} | {count:,} | {counts['ours'] / count:.2f}x |")
            return
        times: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.rounds):  # the sides take turns, so drift hits them alike
            for name, src in sides.items():
                out = run(src, folder / "load.py", str(stores[name]), "3")
                times[name].append(min(float(line) for line in out.split()))
        medians = {name: statistics.median(seconds) for name, seconds in times.items()}
        print(f"| Loading a tree ({what}) | median of {args.rounds} | ours / it |")
        print("|---|---|---|")
        for name, median in medians.items():
            print(f"| {name} | {median * 1000:.1f} ms | {medians['ours'] / median:.2f}x |")


if __name__ == "__main__":
    main()
