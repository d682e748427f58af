"""Whether the cache pays: figures per task key and in total, from the run log.

A hit saves what the agent would have spent on it. What the agent spends on a path is
known from the misses that recorded that very path (the run log says where each run's
trajectory ended), so a hit is set against their mean duration, tokens and cost; when
none of them is in the log (older than ``since``, or imported from another store), the
mean of the task key's misses stands in. A hit with neither saves nothing we can count.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from .models import RunRecord, Status

TOTAL = "total"


@dataclass(frozen=True)
class TaskStats:
    """The figures of one task key (or, with ``task_key == "total"``, of all of them)."""

    task_key: str
    tags: tuple[str, ...]
    runs: int
    hits: int
    misses: int
    handoffs: int
    errors: int
    divergences: int
    #: replay's step index where runs diverged, most frequent first: [(step, runs), ...]
    diverged_at: tuple[tuple[int, int], ...]
    #: the most common reasons replay stopped: [(reason, runs), ...]
    reasons: tuple[tuple[str, int], ...]
    time_saved_s: float
    tokens_saved: int
    cost_saved: float
    tokens: int  # what the runs spent
    cost: float
    last_run: float

    @property
    def hit_rate(self) -> float:
        return self.hits / self.runs if self.runs else 0.0

    @property
    def divergence_rate(self) -> float:
        return self.divergences / self.runs if self.runs else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(hit_rate=self.hit_rate, divergence_rate=self.divergence_rate)
        data["diverged_at"] = [{"step": s, "runs": n} for s, n in self.diverged_at]
        data["reasons"] = [{"reason": r, "runs": n} for r, n in self.reasons]
        return data


@dataclass(frozen=True)
class Stats:
    """Per task key, most runs first, and the total over them."""

    tasks: tuple[TaskStats, ...]
    total: TaskStats

    def to_dict(self) -> dict[str, Any]:
        return {
            "tasks": [task.to_dict() for task in self.tasks],
            "total": self.total.to_dict(),
        }


def compute(runs: Iterable[RunRecord], *, tags: Iterable[str] = ()) -> Stats:
    """The figures of ``runs``, keeping those that carry all of ``tags``."""
    wanted = set(tags)
    by_task: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        if wanted.issubset(run.tags):
            by_task[run.task_key].append(run)
    tasks = sorted(
        (_figures(key, kept, _savings(kept)) for key, kept in by_task.items()),
        key=lambda t: (-t.runs, t.task_key),
    )
    saved = (
        sum(t.time_saved_s for t in tasks),
        sum(t.tokens_saved for t in tasks),
        sum(t.cost_saved for t in tasks),
    )
    every = [run for kept in by_task.values() for run in kept]
    return Stats(tuple(tasks), _figures(TOTAL, every, saved))


def saved_by_hit(runs: Iterable[RunRecord]) -> list[Saved]:
    """Each hit among ``runs`` with what it saved, the first started first: what
    :func:`compute` adds up, for a caller that spreads it over time."""
    by_task: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_task[run.task_key].append(run)
    saved = [hit for kept in by_task.values() for hit in _saved(kept)]
    return sorted(saved, key=lambda hit: hit.run.started_at)


@dataclass(frozen=True)
class Saved:
    """What one hit saved: the time, tokens and cost its path took the agent, less its own."""

    run: RunRecord
    time_s: float
    tokens: int
    cost: float


def _saved(runs: list[RunRecord]) -> Iterator[Saved]:
    """What each hit among one task key's ``runs`` saved."""
    # A miss that recorded nothing (the agent called no tool) is never replayed.
    misses = [run for run in runs if run.status == Status.MISS and run.path is not None]
    by_path: dict[str | None, list[RunRecord]] = defaultdict(list)
    for run in misses:
        by_path[run.path].append(run)
    means: dict[str | None, tuple[float, float, float]] = {}  # per baseline, once
    for run in runs:
        if run.status != Status.HIT:
            continue
        path = run.path if run.path in by_path else None
        if path not in means:
            baseline = by_path[path] if path is not None else misses
            if not baseline:
                continue
            means[path] = (
                _mean(r.duration_s for r in baseline),
                _mean(r.tokens for r in baseline),
                _mean(r.cost for r in baseline),
            )
        duration, tokens, cost = means[path]
        yield Saved(run, duration - run.duration_s, round(tokens) - run.tokens, cost - run.cost)


def _savings(runs: list[RunRecord]) -> tuple[float, int, float]:
    """Time, tokens and cost the hits among one task key's ``runs`` saved."""
    hits = list(_saved(runs))
    return (
        sum((hit.time_s for hit in hits), 0.0),
        sum(hit.tokens for hit in hits),
        sum((hit.cost for hit in hits), 0.0),
    )


def _figures(task_key: str, runs: list[RunRecord], saved: tuple[float, int, float]) -> TaskStats:
    statuses = Counter(run.status for run in runs)
    steps = Counter(run.diverged_at for run in runs if run.diverged_at is not None)
    reasons = Counter(run.reason for run in runs if run.diverged_at is not None and run.reason)
    return TaskStats(
        task_key=task_key,
        tags=runs[-1].tags if runs and task_key != TOTAL else (),
        runs=len(runs),
        hits=statuses[Status.HIT],
        misses=statuses[Status.MISS],
        handoffs=statuses[Status.HANDOFF],
        errors=statuses[Status.ERROR],
        divergences=steps.total(),
        diverged_at=tuple(steps.most_common()),
        reasons=tuple(reasons.most_common(3)),
        time_saved_s=saved[0],
        tokens_saved=saved[1],
        cost_saved=saved[2],
        tokens=sum(run.tokens for run in runs),
        cost=sum(run.cost for run in runs),
        last_run=max((run.started_at for run in runs), default=0.0),
    )


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items)


def seconds(value: float) -> str:
    """A duration as people read it: ``0s``, ``850µs``, ``12ms``, ``3.4s``, ``2.5min``,
    ``1.2h`` (the command line and the web view print time saved this way)."""
    sign, value = ("-" if value < 0 else ""), abs(value)
    if value == 0:
        return "0s"
    if value < 1e-3:
        return f"{sign}{value * 1e6:.0f}µs"
    if value < 1:
        return f"{sign}{value * 1e3:.0f}ms"
    if value < 120:
        return f"{sign}{value:.1f}s"
    if value < 7200:
        return f"{sign}{value / 60:.1f}min"
    return f"{sign}{value / 3600:.1f}h"
