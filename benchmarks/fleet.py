"""A fleet of workers on one PostgreSQL cache: hits per second, hit latency, round trips.

    python3 benchmarks/fleet.py                       # 2, 4 and 8 workers, 3 rounds
    python3 benchmarks/fleet.py --baseline main       # beside this project at a commit
    python3 benchmarks/fleet.py --write               # the table into docs/benchmarks.md

N worker processes share one database. Each runs ``--cycles`` cycles of two phases,
all workers in step (a barrier after each phase):

1. Record: each worker records one new path, a miss. In even cycles it is a new task
   key of its own; in odd cycles a new environment of the task key all workers share,
   so every other worker's copy of that tree goes stale.
2. Hit: each worker first runs every path the others recorded in phase 1, once (each
   must be a hit: a path recorded by one worker is a hit in the others on their next
   run), then ``--hits`` runs of paths recorded so far, chosen at random (all hit).

Hits per second are the fleet's hits in phase 2 over its wall time (first start to last
end, summed over cycles); latency is per hit, over all workers. Round trips are counted
on the wire (tests/wire.py relays each worker's connections and counts the server's
ReadyForQuery messages) in a second, shorter pass of the same plan, so the relay's hop
never touches the timings: a worker's round trips in phase 2, including its bookkeeping
written behind (flushed before the phase ends), over its hits there.

Both sides run this file's code in their own venv (see venvs.py); the database is
``$MUSCLE_MEM_BENCH_POSTGRES`` with a schema of its own, ``mm_fleet``, made anew for
every run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- begin: written by benchmarks/fleet.py, do not edit by hand -->"
END = "<!-- end: written by benchmarks/fleet.py -->"
SCHEMA = "mm_fleet"
STEPS = 5  # tool calls per path
SHARED = "fill in the shared form"
BARRIER_S = 600  # a worker that waits longer at a barrier has lost a sibling


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- one worker --------------------------------------------------------------------------


def recorded(worker: int, cycle: int) -> tuple[str, str]:
    """The path (task, environment) ``worker`` records in ``cycle``: the same plan in
    every process, so none needs to be told what the others recorded."""
    if cycle % 2 == 0:
        return f"fill in form {worker}-{cycle}", "v1"
    return SHARED, f"v{worker}-{cycle}"


def work(worker: int, spec: dict[str, Any], barrier: Any, results: Any) -> None:
    """One worker's cycles; puts its measurements on ``results``."""
    try:
        results.put(run_worker(worker, spec, barrier))
    except BaseException as error:  # the parent must hear of it, not wait at a barrier
        barrier.abort()
        results.put({"worker": worker, "error": f"{type(error).__name__}: {error}"})


def run_worker(worker: int, spec: dict[str, Any], barrier: Any) -> dict[str, Any]:
    url, workers, cycles, hits = spec["url"], spec["workers"], spec["cycles"], spec["hits"]
    relay = None
    if spec["counted"]:
        sys.path.insert(0, str(ROOT / "tests"))
        from wire import RoundTrips

        relay = RoundTrips(url)
        url = relay.url
    os.environ["MUSCLE_MEM_STORE"] = url

    from muscle_mem import Check, Engine

    environment = {"version": ""}

    def same(current: Any, stored: Any) -> bool:  # the README's equality compare
        return current == stored

    engine = Engine()

    @engine.function(pre_check=Check(lambda field, value: environment["version"], same))
    def fill(field: str, value: str) -> str:
        return value

    def agent(task: str) -> None:
        for i in range(STEPS):
            fill(f"field-{i}", f"value-{i}")

    engine.set_agent(agent)

    def run(task: str, version: str) -> bool:
        environment["version"] = version
        return bool(engine(task))

    def round_trips() -> int:
        return relay.count if relay is not None else 0

    rng = random.Random(worker)
    known: list[tuple[str, str]] = []
    latencies: list[float] = []
    phases: list[tuple[float, float]] = []
    others_hit = others = trips = 0
    for cycle in range(cycles):
        mine = recorded(worker, cycle)
        if run(*mine):
            raise RuntimeError(f"worker {worker}: its new path {mine} hit before it was recorded")
        barrier.wait(BARRIER_S)
        theirs = [recorded(other, cycle) for other in range(workers) if other != worker]
        known += [mine, *theirs]
        start, before = time.monotonic(), round_trips()
        for path in theirs:  # their next run, after the barrier: after it was recorded
            began = time.perf_counter()
            hit = run(*path)
            latencies.append(time.perf_counter() - began)
            others += 1
            others_hit += hit
        for _ in range(hits):
            path = rng.choice(known)
            began = time.perf_counter()
            if not run(*path):
                raise RuntimeError(f"worker {worker}: {path}, recorded before, missed")
            latencies.append(time.perf_counter() - began)
        # What this worker wrote behind in the phase belongs to its hits: written now, so
        # the relay counts it here. (A store that writes nothing behind has no _behind.)
        behind = getattr(engine.store, "_behind", None)
        if behind is not None:
            behind.flush()
        trips += round_trips() - before
        phases.append((start, time.monotonic()))
        barrier.wait(BARRIER_S)
    engine.close()
    if relay is not None:
        relay.close()
    return {
        "worker": worker,
        "latencies": latencies,
        "phases": phases,
        "others": others,
        "others_hit": others_hit,
        "round_trips": trips,
    }


# -- one fleet, inside a venv ------------------------------------------------------------


def fresh_schema(base: str) -> str:
    """Drop and recreate the fleet's schema; the URL of a store inside it."""
    import psycopg

    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        admin.execute(f"CREATE SCHEMA {SCHEMA}")
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{SCHEMA}"


def fleet(spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``spec["workers"]`` workers on a fresh schema; the fleet's measurements."""
    spec = {**spec, "url": fresh_schema(spec["base"])}
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(spec["workers"])
    results = context.Queue()
    processes = [
        context.Process(target=work, args=(worker, spec, barrier, results))
        for worker in range(spec["workers"])
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=BARRIER_S * 2) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    failed = [report["error"] for report in reports if "error" in report]
    if failed:
        raise RuntimeError("; ".join(failed))
    latencies = sorted(s for report in reports for s in report["latencies"])
    # The fleet's phase 2 of a cycle lasts from the first worker's start to the last end.
    wall = sum(
        max(report["phases"][c][1] for report in reports)
        - min(report["phases"][c][0] for report in reports)
        for c in range(spec["cycles"])
    )
    return {
        "hits": len(latencies),
        "hits_per_s": len(latencies) / wall,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
        "round_trips_per_hit": sum(r["round_trips"] for r in reports) / len(latencies),
        "others": sum(report["others"] for report in reports),
        "others_hit": sum(report["others_hit"] for report in reports),
    }


# -- the comparison, from any Python ---------------------------------------------------------


def measure(python: Path, spec: dict[str, Any]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MUSCLE_MEM_STORE")}
    done = subprocess.run(
        [str(python), str(Path(__file__)), "--fleet", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=BARRIER_S * 3,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the fleet failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(sides: dict[str, dict[int, dict[str, Any]]], labels: dict[str, str]) -> str:
    header = [
        "Workers",
        "Side",
        "Hits",
        "Hits/s",
        "p50 hit",
        "p99 hit",
        "Round trips per hit",
        "Others' new paths hit on their next run",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for workers in sorted(next(iter(sides.values()))):
        for side, by_workers in sides.items():
            m = by_workers[workers]
            lines.append(
                f"| {workers} | {labels[side]} | {m['hits']:,} | {m['hits_per_s']:,.0f} | "
                f"{m['p50_ms']:.2f} ms | {m['p99_ms']:.2f} ms | "
                f"{m['round_trips_per_hit']:.2f} | {m['others_hit']} of {m['others']} |"
            )
    return "\n".join(lines)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(runs[0])
    for metric in ("hits_per_s", "p50_ms", "p99_ms"):
        out[metric] = statistics.median(run[metric] for run in runs)
    return out


def compare(args: argparse.Namespace) -> str:
    import report
    import run as harness
    import stores
    import venvs

    pythons = {"ours": venvs.ensure("ours", log)}
    labels = {"ours": "ours"}
    if args.baseline:
        commit = venvs.resolve(args.baseline)
        pythons["baseline"] = venvs.ensure_baseline(commit, log)
        labels["baseline"] = f"baseline {venvs.git('rev-parse', '--short', commit)}"
    found = {side: harness.call_runner(python, "--about", 120) for side, python in pythons.items()}
    unreachable = found["ours"]["postgres_unreachable"]
    if unreachable:
        sys.exit(f"the fleet needs PostgreSQL: {unreachable}")
    base = stores.postgres_base()
    timed: dict[str, dict[int, list[dict[str, Any]]]] = {side: {} for side in pythons}
    counted: dict[str, dict[int, dict[str, Any]]] = {side: {} for side in pythons}
    started = time.perf_counter()
    for round_no in range(args.rounds):
        for index, workers in enumerate(args.workers):
            order = list(pythons) if (round_no + index) % 2 == 0 else list(pythons)[::-1]
            for side in order:
                spec = {
                    "base": base,
                    "workers": workers,
                    "cycles": args.cycles,
                    "hits": args.hits,
                    "counted": False,
                }
                timed[side].setdefault(workers, []).append(measure(pythons[side], spec))
                log(f"round {round_no + 1}/{args.rounds}, {workers} workers, {side}: timed")
                if round_no == 0:  # round trips don't drift with the machine: one pass
                    spec.update(counted=True, hits=max(10, args.hits // 4))
                    counted[side][workers] = measure(pythons[side], spec)
                    log(f"round 1/{args.rounds}, {workers} workers, {side}: counted")
    sides = {
        side: {
            workers: {
                **medians(runs),
                "round_trips_per_hit": counted[side][workers]["round_trips_per_hit"],
                "others": sum(run["others"] for run in runs) + counted[side][workers]["others"],
                "others_hit": sum(run["others_hit"] for run in runs)
                + counted[side][workers]["others_hit"],
            }
            for workers, runs in by_workers.items()
        }
        for side, by_workers in timed.items()
    }
    command = " ".join(
        ["python3 benchmarks/fleet.py", *(a for a in sys.argv[1:] if a != "--write")]
    )
    minutes = (time.perf_counter() - started) / 60
    machine, _, date = report.machine({**found, "original": found["ours"]})
    versions = ", ".join(
        f"{labels[side]}: muscle-mem {about['version']}" for side, about in found.items()
    )
    return "\n".join(
        [
            machine,
            f"- Python {found['ours']['python']}; {versions}; PostgreSQL at "
            f"{stores.postgres_base().split('@')[-1]}",
            date,
            *([harness.provenance(commit)] if args.baseline else []),
            f"- Command: `{command}` ({args.rounds} rounds, {minutes:.0f} min; hits/s and "
            "latencies are medians over rounds, round trips from one counted pass, the "
            "next-run check over all passes)",
            f"- Each worker: {args.cycles} cycles of one new path then {args.hits} hits "
            f"(counted pass: {max(10, args.hits // 4)}), {STEPS} steps a path",
            "",
            table(sides, labels),
        ]
    )


def write_docs(block: str) -> None:
    """Replace the fleet's part of docs/benchmarks.md, or add it before "Reproducing"."""
    text = DOCS.read_text()
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        DOCS.write_text(f"{before}{BEGIN}\n{block}\n{END}{after}")
        return
    marker = "## Reproducing it"
    section = f"## A fleet on one PostgreSQL database\n\n{BEGIN}\n{block}\n{END}\n\n"
    DOCS.write_text(text.replace(marker, section + marker, 1))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fleet", help=argparse.SUPPRESS)  # one run, inside a venv
    parser.add_argument(
        "--workers",
        type=lambda s: [int(n) for n in s.split(",")],
        default=[2, 4, 8],
        help="comma-separated fleet sizes (default 2,4,8)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--cycles", type=int, default=6, help="cycles in one run (default 6)")
    parser.add_argument("--hits", type=int, default=200, help="hits per worker per round")
    parser.add_argument("--baseline", metavar="REV", help="also run this project at REV")
    parser.add_argument("--out", type=Path, metavar="PATH", help="also write the table here")
    parser.add_argument("--write", action="store_true", help="write the table to docs/")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse(argv)
    if args.fleet:
        print(json.dumps(fleet(json.loads(args.fleet))))
        return
    block = compare(args)
    print(block)
    if args.out:
        args.out.write_text(block + "\n")
    if args.write:
        write_docs(block)
        log(f"wrote {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
