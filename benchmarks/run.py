"""Benchmark this project against the original muscle-mem 0.1.0, and against the limit.

    python benchmarks/run.py            # every workload, both implementations, 5 rounds
    python benchmarks/run.py --quick    # a smoke run: small sizes, one round
    python benchmarks/run.py --write    # also put the table into docs/benchmarks.md
    python benchmarks/run.py --baseline main~3   # against this project at a commit

Each implementation runs in a venv of its own (see venvs.py), each workload run in a
fresh process (runner.py). A round runs every workload once on each implementation,
alternating which goes first, so that a slow spell of the machine does not land on one
side only; the table shows the median over rounds. benchmarks/README.md says what each
workload measures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import plan as planning
import report
import venvs
from plan import Case

ROOT = venvs.ROOT
RUNNER = ROOT / "benchmarks" / "runner.py"
CACHE = ROOT / "benchmarks" / ".cache"
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- begin: written by benchmarks/run.py, do not edit by hand -->"
END = "<!-- end: written by benchmarks/run.py -->"
DOCS_INTRO = """# Benchmarks

This project against the original muscle-mem 0.1.0 from PyPI, and against the plain
loop a replay can't beat. What each workload measures, and what to keep in mind when
comparing with the original: [benchmarks/README.md](../benchmarks/README.md).

"""


class CaseFailed(Exception):
    """A workload run that produced no measurements; the message goes in the table."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    # Nothing from this shell may choose the store or the modules a runner imports.
    hidden = {"PYTHONPATH", "PYTHONHOME", "MUSCLE_MEM_STORE"}
    return {name: value for name, value in os.environ.items() if name not in hidden}


def call_runner(python: Path, argument: str, timeout: float) -> dict:
    try:
        done = subprocess.run(
            [str(python), str(RUNNER), argument],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_env(),
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        raise CaseFailed(f"timed out after {timeout:.0f} s") from None
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CaseFailed(f"runner exited {done.returncode}: {last}") from None
    if "error" in answer:
        raise CaseFailed(answer["error"])
    return answer


def run_case(python: Path, case: Case, store: str, timeout: float) -> dict[str, float]:
    spec = {"workload": case.workload, "params": case.params, "store": store}
    return call_runner(python, json.dumps(spec), timeout)["results"]


def about(pythons: dict[str, Path]) -> dict[str, dict]:
    """Each venv's versions, checked: a mix-up would make every number meaningless."""
    found = {impl: call_runner(python, "--about", 120) for impl, python in pythons.items()}
    if "original" in found and found["original"]["version"] != venvs.ORIGINAL_VERSION:
        sys.exit(f"the original's venv runs muscle-mem {found['original']['version']}")
    if not found["ours"]["module"].startswith(str(ROOT / "src")):
        sys.exit(f"the venv for this project imports {found['ours']['module']}, not src/")
    # The baseline must be its own installed copy, not this checkout's src/.
    if "baseline" in found and not found["baseline"]["module"].startswith(str(venvs.VENVS)):
        sys.exit(f"the baseline's venv imports {found['baseline']['module']}")
    return found


def cold_store(python: Path, version: str, case: Case, rebuild: bool, timeout: float) -> Path:
    """The cold-start store, built by the engine once per version and kept in .cache/."""
    keys, steps = case.params["keys"], case.params["steps"]
    path = CACHE / f"cold-{version}-{keys}x{steps}.db"
    if path.exists() and not rebuild:
        return path
    building = path.with_name(path.name + ".building")
    for stale in CACHE.glob(f"{building.name}*"):
        stale.unlink()
    CACHE.mkdir(parents=True, exist_ok=True)
    log(f"building {path.relative_to(ROOT)} ({keys:,} tasks of {steps} steps)")
    build = Case("build", "build_cold_store", {"keys": keys, "steps": steps})
    took = run_case(python, build, f"sqlite:///{building}", timeout)["build_s"]
    os.replace(building, path)  # only a finished build is ever used
    log(f"built in {took:.1f} s")
    return path


def run_with_cold_copy(python: Path, case: Case, cold: Path, timeout: float) -> dict[str, float]:
    # A hit writes to its store: each run gets a copy, so every run starts alike.
    with tempfile.TemporaryDirectory(prefix="mm-cold-") as folder:
        copy = Path(folder) / "store.db"
        shutil.copyfile(cold, copy)
        return run_case(python, case, f"sqlite:///{copy}", timeout)


def medians(samples: list[dict[str, float]]) -> dict[str, float]:
    return {metric: statistics.median(s[metric] for s in samples) for metric in samples[0]}


def benchmark(args: argparse.Namespace) -> tuple[report.Report | report.Versus, dict[str, dict]]:
    pythons = {"ours": venvs.ensure("ours", log)}
    if args.baseline:
        pythons["baseline"] = venvs.ensure_baseline(args.baseline, log)
    else:
        pythons["original"] = venvs.ensure("original", log)
    found = about(pythons)
    plan = {case.key: case for case in planning.cases(args.quick, bool(args.baseline))}
    selected = [
        case
        for case in plan.values()
        if not args.only or case.key in args.only or case.workload in args.only
    ]
    results: report.Results = {}
    for case in selected:
        for impl in case.impls:
            unreachable = found[impl]["postgres_unreachable"]
            if case.store == "postgres" and unreachable:
                results[(case.key, impl)] = f"skipped: {unreachable}"
    cold = None
    if any(case.store == planning.COLD_STORE for case in selected):
        cold = cold_store(
            pythons["ours"],
            found["ours"]["version"],
            plan["cold"],
            args.rebuild_cache,
            args.timeout,
        )
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    for round_no in range(args.rounds):
        for index, case in enumerate(selected):
            if case.max_rounds is not None and round_no >= case.max_rounds:
                continue
            # Alternate who goes first, from round to round and from case to case.
            order = case.impls if (round_no + index) % 2 == 0 else case.impls[::-1]
            for impl in order:
                if (case.key, impl) in results:  # failed or skipped: don't retry
                    continue
                started = time.perf_counter()
                try:
                    if case.store == planning.COLD_STORE:
                        assert cold is not None
                        measured = run_with_cold_copy(pythons[impl], case, cold, args.timeout)
                    else:
                        measured = run_case(pythons[impl], case, case.store, args.timeout)
                except CaseFailed as failure:
                    results[(case.key, impl)] = f"failed: {failure}"
                    log(f"round {round_no + 1}/{args.rounds} {case.key} {impl}: FAILED {failure}")
                    continue
                samples.setdefault((case.key, impl), []).append(measured)
                took = time.perf_counter() - started
                log(f"round {round_no + 1}/{args.rounds} {case.key} {impl}: {took:.1f} s")
    for key, runs in samples.items():
        results.setdefault(key, medians(runs))
    if args.baseline:
        return report.Versus(plan, results, f"baseline {short(args.baseline)}"), found
    return report.Report(plan, results), found


def short(commit: str) -> str:
    return venvs.git("rev-parse", "--short", commit)


def provenance(baseline: str) -> str:
    """Which code each side ran: ours is the checkout as it is, edits included."""
    head = short("HEAD")
    edited = venvs.git("status", "--porcelain", "--", "src", "pyproject.toml")
    ours = f"{head} with uncommitted changes under src/" if edited else head
    return f"- Ours: this checkout at {ours}; baseline: {baseline}"


def write_docs(block: str) -> None:
    """Replace the generated part of docs/benchmarks.md; what is around it is kept."""
    text = DOCS.read_text() if DOCS.exists() else DOCS_INTRO
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
    else:
        before, after = text, "\n"
    DOCS.parent.mkdir(exist_ok=True)
    DOCS.write_text(f"{before}{BEGIN}\n{block}\n{END}{after}")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, help="rounds to run (default 5; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="small sizes: check that all runs")
    parser.add_argument(
        "--only", type=lambda s: set(s.split(",")), help="comma-separated case keys or workloads"
    )
    parser.add_argument("--write", action="store_true", help="write the table to docs/")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="compare with this project at a git revision instead of the original",
    )
    parser.add_argument("--out", type=Path, metavar="PATH", help="also write the table here")
    parser.add_argument(
        "--rebuild-cache", action="store_true", help="rebuild the cold-start store in .cache/"
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds one workload run may take"
    )
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.write and (args.quick or args.only):
        parser.error("--write takes a full run: a quick or partial table doesn't belong in docs")
    if args.write and args.baseline:
        parser.error("--write is for the table against the original; use --out with --baseline")
    if args.baseline:
        args.baseline = venvs.resolve(args.baseline)  # a branch name may move mid-run
    return args


def main(argv: list[str]) -> None:
    args = parse(argv)
    started = time.perf_counter()
    # Read before the run: a commit made while it runs is not what was measured.
    sides = [provenance(args.baseline)] if args.baseline else []
    table, found = benchmark(args)
    command = " ".join(["python benchmarks/run.py", *(a for a in argv if a != "--write")])
    block = "\n".join(
        [
            *report.machine(found, "baseline" if args.baseline else "original"),
            *sides,
            f"- Command: `{command}` ({args.rounds} round{'s' if args.rounds > 1 else ''}, "
            f"{(time.perf_counter() - started) / 60:.0f} min; medians over rounds of "
            "in-process medians)",
            "",
            table.markdown(),
        ]
    )
    print(block)
    if args.write:
        write_docs(block)
        log(f"wrote {DOCS.relative_to(ROOT)}")
    if args.out:
        args.out.write_text(block + "\n")
        log(f"wrote {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
