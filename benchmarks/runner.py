"""Run one workload inside an implementation's venv and print its measurements as JSON.

    python benchmarks/runner.py '{"workload": "many_environments", "params": {"k": 200}}'
    python benchmarks/runner.py --about

The spec may also name a ``store`` ("memory", "sqlite", "postgres" or a
``sqlite:///path``; see :mod:`stores`). The last line printed is a JSON object: the
measurements under ``results``, or ``error``. run.py starts one process per workload
run, so no run inherits another's caches, allocations or garbage. ``--about`` prints
the implementation's version and whether the benchmark's PostgreSQL server is usable.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import inspect
import json
import os
import sys
import traceback

import stores
import workloads
from introspect import Probe

import muscle_mem


def run(spec: dict) -> dict:
    workload = workloads.WORKLOADS[spec["workload"]]
    params = dict(spec.get("params", {}))
    probe = None
    if "probe" in inspect.signature(workload).parameters:
        probe = params["probe"] = Probe()
    # The original prints coloured text on every run; its cost stays in the measurement
    # (it is part of the original), its text goes nowhere.
    with (
        stores.engine_factory(spec.get("store", "memory")) as make_engine,
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stdout(devnull),
    ):
        results = workload(make_engine, **params)
    if probe is not None:
        results.update(probe.results)
    return results


def main(argv: list[str]) -> int:
    # The original has no __version__; both have their distribution's metadata.
    version = importlib.metadata.version("muscle-mem")
    report: dict = {"version": version, "module": muscle_mem.__file__}
    if argv == ["--about"]:  # what run.py's table header says about this venv
        report["python"] = sys.version.split()[0]
        report["postgres_unreachable"] = stores.postgres_unreachable()
        print(json.dumps(report))
        return 0
    try:
        report["results"] = run(json.loads(argv[0]))
    except Exception as error:
        traceback.print_exc()
        report["error"] = f"{type(error).__name__}: {error}"
    print(json.dumps(report))
    return 0 if "results" in report else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
