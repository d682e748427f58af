"""Looking inside a running engine: memory and store size, per implementation.

Workloads stay on the README API; what they cannot see through it (how much a store
holds) is read here, where knowing each implementation's internals is the point.
"""

from __future__ import annotations

import gc
import os
import resource
import tracemalloc
from typing import Any


def rss_kib() -> float:
    """Resident set size now (not the peak), from /proc: no psutil needed."""
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * resource.getpagesize() / 1024


def store_size(engine: Any, task: str) -> dict[str, float]:
    """What the engine's store holds for ``task``, in each implementation's own units."""
    if hasattr(engine, "task_key"):  # this project: a tree of nodes per task key
        tree = engine.store.tree(engine.task_key(task))
        size = {
            "nodes": len(tree),
            "snapshots": sum(len(node.pre) + len(node.post) for node in tree),
            "run_log": len(engine.store.runs()),
        }
        path = getattr(engine.store, "path", None)
        if path is not None:  # SQLite: the file and its write-ahead log
            wal = f"{path}-wal"
            size["file_kib"] = (
                os.path.getsize(path) + (os.path.getsize(wal) if os.path.exists(wal) else 0)
            ) / 1024
        return size
    # The original: a list of trajectories per tag tuple, one appended per run.
    trajectories = [t for per_tags in engine.db.trajectories.values() for t in per_tags]
    return {"trajectories": len(trajectories), "steps": sum(len(t.steps) for t in trajectories)}


class Probe:
    """Called by a workload at named moments; keeps memory and store size at each.

    Python allocations are traced from construction on, so ``py_kib`` counts what the
    workload allocated and still holds (tracemalloc misses SQLite's own C memory,
    which ``rss_kib`` includes).
    """

    def __init__(self) -> None:
        tracemalloc.start()
        self.results: dict[str, float] = {}

    def __call__(self, label: str, engine: Any, task: str) -> None:
        gc.collect()  # what is held, not garbage the collector hasn't reached yet
        self.results[f"{label}_py_kib"] = tracemalloc.get_traced_memory()[0] / 1024
        self.results[f"{label}_rss_kib"] = rss_kib()
        for name, value in store_size(engine, task).items():
            self.results[f"{label}_{name}"] = value
