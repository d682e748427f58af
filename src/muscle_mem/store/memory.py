"""The in-memory store: the reference every other store must agree with."""

from __future__ import annotations

import threading
from collections import deque

from ..models import RunRecord
from ..trie import DEFAULT_SNAPSHOT_CAP, Tree, Update
from .base import Store


class MemoryStore(Store):
    """Keeps everything in this process; gone when it exits.

    Its run log keeps the latest ``keep_runs`` runs: a long-lived process that hits its
    cache all day must not grow without end (persistent stores keep every run).
    """

    def __init__(self, snapshot_cap: int = DEFAULT_SNAPSHOT_CAP, *, keep_runs: int = 1_000) -> None:
        if snapshot_cap < 1:
            raise ValueError(f"snapshot_cap must be at least 1, got {snapshot_cap}")
        if keep_runs < 0:
            raise ValueError(f"keep_runs must be 0 or more, got {keep_runs}")
        self.snapshot_cap = snapshot_cap
        self._trees: dict[str, Tree] = {}
        self._runs: deque[RunRecord] = deque(maxlen=keep_runs)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryStore(task_keys={len(self._trees)}, runs={len(self._runs)})"

    def tree(self, task_key: str) -> Tree:
        tree = self._trees.get(task_key)
        if tree is None:
            with self._lock:
                tree = self._trees.setdefault(task_key, Tree(task_key, self.snapshot_cap))
        return tree

    def commit(self, update: Update, run: RunRecord) -> None:
        self.tree(update.task_key).apply(update)
        with self._lock:
            self._runs.append(run)

    def runs(self, *, since: float | None = None, about: str | None = None) -> list[RunRecord]:
        with self._lock:
            runs = list(self._runs)
        return [
            run
            for run in runs
            if (since is None or run.started_at >= since) and (about is None or run.about == about)
        ]
