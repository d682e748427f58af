"""The in-memory store: the reference every other store must agree with."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Collection

from ..errors import ConfigurationError
from ..models import Changes, RunRecord, TaskInfo
from ..trie import DEFAULT_SNAPSHOT_CAP, Tree
from .base import Store, to_approve


class MemoryStore(Store):
    """Keeps everything in this process; gone when it exits.

    Its run log keeps the latest ``keep_runs`` runs: a long-lived process that hits its
    cache all day must not grow without end (persistent stores keep every run).
    """

    url = "memory://"
    in_memory = True

    def __init__(self, snapshot_cap: int = DEFAULT_SNAPSHOT_CAP, *, keep_runs: int = 1_000) -> None:
        if snapshot_cap < 1:
            raise ConfigurationError(f"snapshot_cap must be at least 1, got {snapshot_cap}")
        if keep_runs < 0:
            raise ConfigurationError(f"keep_runs must be 0 or more, got {keep_runs}")
        self.snapshot_cap = snapshot_cap
        self._trees: dict[str, Tree] = {}
        self._tasks: dict[str, tuple[tuple[str, ...], float]] = {}  # tags, created at
        self._used: dict[str, float] = {}
        self._texts: dict[str, str] = {}
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

    def commit(self, changes: Changes, run: RunRecord) -> None:
        now = time.time()
        self.tree(changes.task_key).apply(changes, now)
        with self._lock:
            self._runs.append(run)
            self._tasks.setdefault(changes.task_key, (run.tags, now))
            self._used[changes.task_key] = now
            if changes.text is not None:
                self._texts[changes.task_key] = changes.text

    def tasks(self) -> list[TaskInfo]:
        with self._lock:
            known = [
                (key, self._trees[key], info, self._texts.get(key, ""))
                for key, info in self._tasks.items()
            ]
        infos = [
            TaskInfo(
                key,
                tags,
                len(tree),
                sum(node.terminal for node in tree),
                created,
                self._used.get(key, created),
                text,
                sum(node.terminal and node.approved for node in tree),
            )
            for key, tree, (tags, created), text in known
            if len(tree)
        ]
        return sorted(infos, key=lambda info: info.last_used, reverse=True)

    def remove(self, task_key: str, nodes: Collection[str] | None = None) -> int:
        with self._lock:
            tree = self._trees.get(task_key)
            if tree is None:
                return 0
            doomed = set(tree.nodes) - {tree.root.id} if nodes is None else tree.below(nodes)
            kept = Tree(task_key, self.snapshot_cap)
            kept.merge(_without(tree, doomed))
            self._trees[task_key] = kept  # replays under way keep the tree they started on
            return len(tree) - len(kept)

    def approve(
        self, task_key: str, ends: Collection[str] | None = None, approved: bool = True
    ) -> int:
        with self._lock:
            tree = self._trees.get(task_key) or Tree(task_key)
            recorded = {node.id: node.approved for node in tree if node.terminal}
            changed = to_approve(task_key, recorded, ends, approved)
            for nid in changed:
                tree.nodes[nid].approved = approved
        return len(changed)

    def merge(self, tree: Tree, tags: tuple[str, ...], text: str | None = None) -> tuple[int, int]:
        now = time.time()
        added = self.tree(tree.task_key).merge(tree)
        with self._lock:
            if text is not None:
                self._texts.setdefault(tree.task_key, text)
            self._tasks.setdefault(tree.task_key, (tags, now))
            self._used.setdefault(tree.task_key, max((n.last_used for n in tree), default=now))
        return added

    def runs(self, *, since: float | None = None, about: str | None = None) -> list[RunRecord]:
        with self._lock:
            runs = list(self._runs)
        return [
            run
            for run in runs
            if (since is None or run.started_at >= since) and (about is None or run.about == about)
        ]


def _without(tree: Tree, doomed: set[str]) -> Tree:
    """A view of ``tree`` with the ``doomed`` nodes left out, for :meth:`Tree.merge`."""
    view = Tree(tree.task_key, tree.snapshot_cap)
    view.nodes = {nid: node for nid, node in tree.nodes.items() if nid not in doomed}
    return view
