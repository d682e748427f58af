"""What the web view shows, gathered from the library's public API into plain values.

:mod:`.render` turns these into HTML and never reads the store; the server and the
static report gather the same values, so both show the same figures as ``muscle-mem
stats``, ``show`` and ``runs`` (:func:`muscle_mem.stats.compute` makes them all).
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import MuscleMemError
from ..models import TASK_KEY_PREFIX, RunRecord, Slot, Status, TaskInfo
from ..stats import TaskStats, compute, saved_by_hit
from ..store import Store
from ..trie import Node

#: Period widths a timeline may take, so that a few seconds of a demo and a year of
#: production both come out as a few dozen points.
_WIDTHS = (1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400)
MAX_PERIODS = 48
#: Steps a heat map shows each of; a run diverging further in shows only the steps
#: where runs did.
HEAT_STEPS = 30
#: Snapshots a step shows per check, the most recently matched first.
SHOWN_SNAPSHOTS = 5


@dataclass(frozen=True)
class Task:
    """A task key as the view names it, with its figures from the run log."""

    task_key: str
    text: str  # the templated task text, "" when the store does not know it
    tags: tuple[str, ...]
    info: TaskInfo | None  # None: the run log names it, the cache no longer holds it
    stats: TaskStats | None  # None: no run of it is logged

    @property
    def short(self) -> str:
        """The first 12 hex digits of the key, without its algorithm tag."""
        bare = self.task_key.removeprefix(TASK_KEY_PREFIX)
        return bare[:12] if bare != self.task_key else self.task_key

    @property
    def name(self) -> str:
        return self.text or self.short


@dataclass(frozen=True)
class Period:
    """One stretch of the timeline: its runs, and what hits saved up to its end."""

    start: float
    runs: int
    hits: int
    time_saved_s: float  # since the first run
    tokens_saved: int
    cost_saved: float

    @property
    def hit_rate(self) -> float:
        return self.hits / self.runs if self.runs else 0.0


@dataclass(frozen=True)
class Timeline:
    width_s: float
    periods: tuple[Period, ...]


@dataclass(frozen=True)
class HeatRow:
    """Runs that diverged, by the step replay stopped at (``counts[i]`` at ``steps[i]``)."""

    label: str
    counts: tuple[int, ...]
    task_key: str | None = None  # the row's task, on the overview
    path: int | None = None  # the row's path number, on a task's page


@dataclass(frozen=True)
class HeatMap:
    steps: tuple[int, ...]
    rows: tuple[HeatRow, ...]

    @property
    def peak(self) -> int:
        return max((max(row.counts) for row in self.rows), default=0)


@dataclass(frozen=True)
class Unreadable:
    """A stored value this process cannot decode, and why."""

    reason: str


@dataclass(frozen=True)
class StepView:
    """A node of a task's tree: the call (its template: params and references kept), the
    checks' snapshots, counts, and the path number when a recorded trajectory ends here."""

    id: str
    index: int  # the step's place in its path, 0 for the first call
    tool: str
    call: tuple[tuple[Any, ...], dict[str, Any]] | Unreadable
    # (value, when last matched if the store knows), the most recently matched first,
    # at most SHOWN_SNAPSHOTS of each check
    pre: tuple[tuple[Any, float | None], ...]
    post: tuple[tuple[Any, float | None], ...]
    pre_count: int
    post_count: int
    hits: int
    failures: int
    last_used: float
    path: int | None
    approved: bool
    children: tuple[StepView, ...] = field(default=())


@dataclass(frozen=True)
class TaskTree:
    task: Task
    steps: tuple[StepView, ...]  # the root's children
    paths: int
    approved: int  # of the paths
    heat: HeatMap


@dataclass(frozen=True)
class RunFilter:
    """Which runs the log shows: all of them when every field is empty."""

    status: str = ""
    tag: str = ""
    task: str = ""  # a task key
    since_s: int = 0  # only runs of the last this many seconds; 0: all

    def admits(self, run: RunRecord, now: float) -> bool:
        return (
            (not self.status or run.status == self.status)
            and (not self.tag or self.tag in run.tags)
            and (not self.task or run.task_key == self.task)
            and (not self.since_s or run.started_at >= now - self.since_s)
        )


#: The windows the run log offers, in seconds, with their names.
SINCE = (
    (3600, "last hour"),
    (86400, "last day"),
    (7 * 86400, "last week"),
    (30 * 86400, "last 30 days"),
)


@dataclass(frozen=True)
class RunLog:
    runs: tuple[RunRecord, ...]  # newest first, at most the limit asked
    matching: int  # how many runs the filter admits
    total: int  # how many the log holds
    filter: RunFilter
    statuses: tuple[str, ...]
    tags: tuple[str, ...]
    tasks: tuple[Task, ...]  # every task key the log or the cache names, for the filter

    def name(self, task_key: str) -> str:
        return next((t.name for t in self.tasks if t.task_key == task_key), task_key)


@dataclass(frozen=True)
class Briefs:
    """The memory bank's brief of each scope it knows; ``note`` says why there is none."""

    scopes: tuple[tuple[str, str], ...]  # (scope, markdown brief)
    note: str = ""


@dataclass(frozen=True)
class Overview:
    tasks: tuple[Task, ...]
    total: TaskStats
    timeline: Timeline
    heat: HeatMap
    store: str


class Reading(NamedTuple):
    """One read of the store: the run log, oldest first, and what the cache holds. A
    page makes one; the report, which shows every task, makes one for all of them."""

    runs: list[RunRecord]
    infos: dict[str, TaskInfo]


class Cache:
    """Reads one store (and the memory bank in it) for the view.

    Each call reads afresh unless given a :class:`Reading`, so a page shows what agents
    recorded since the last one. Not for several threads at once: the server calls it
    from one thread.
    """

    def __init__(self, store: Store, bank: Any = None, bank_note: str = "") -> None:
        self.store = store
        self.bank = bank  # a MemoryBank, or None with bank_note saying why
        self.bank_note = bank_note

    def read(self) -> Reading:
        return Reading(self.store.runs(), {info.task_key: info for info in self.store.tasks()})

    def overview(self, reading: Reading | None = None) -> Overview:
        """Every task key the cache holds or the run log names, most runs first, with
        the log's total, its timeline, and where runs diverged."""
        runs, infos = reading or self.read()
        figures = compute(runs)
        by_key = {task.task_key: task for task in figures.tasks}
        keys = list(by_key) + [key for key in infos if key not in by_key]
        tasks = [_task(key, infos.get(key), by_key.get(key)) for key in keys]
        return Overview(
            tuple(tasks),
            figures.total,
            timeline(runs),
            _heat_by_task(tasks, runs),
            self.store.url,
        )

    def task(self, task_key: str, reading: Reading | None = None) -> TaskTree | None:
        """The task key's tree, or None if neither the cache nor the log knows it."""
        log, infos = reading or self.read()
        runs = [run for run in log if run.task_key == task_key]
        info = infos.get(task_key)
        if info is None and not runs:
            return None
        figures = compute(runs).tasks
        task = _task(task_key, info, figures[0] if figures else None)
        tree = self.store.tree(task_key)
        ends = tree.ends()
        numbers = {end.id: number for number, end in enumerate(ends, 1)}
        times = self.store.snapshot_times(task_key)
        steps = tuple(_step(child, 0, numbers, times) for child in tree.root.children)
        approved = sum(end.approved for end in ends)
        return TaskTree(task, steps, len(ends), approved, _heat_by_path(numbers, runs))

    def runs(self, wanted: RunFilter, limit: int, reading: Reading | None = None) -> RunLog:
        """The runs ``wanted`` admits, newest first: ``limit`` of them (0: all)."""
        log, infos = reading or self.read()
        now = time.time()
        kept = sorted(
            (run for run in log if wanted.admits(run, now)), key=lambda run: -run.started_at
        )
        keys = dict.fromkeys([*infos, *(run.task_key for run in log)])
        return RunLog(
            tuple(kept[:limit] if limit else kept),
            len(kept),
            len(log),
            wanted,
            tuple(status.value for status in Status),
            tuple(sorted({tag for run in log for tag in run.tags})),
            tuple(
                sorted(
                    (_task(key, infos.get(key), None) for key in keys),
                    key=lambda task: task.name.lower(),
                )
            ),
        )

    def briefs(self, budget_chars: int = 2000, limit: int = 200) -> Briefs:
        if self.bank is None:
            return Briefs((), self.bank_note or "no memory bank in this store")
        scopes = sorted(
            {entity.ref for entity in self.bank.entities()}
            | {
                found.scope
                for type in ("learning", "decision")
                for found in self.bank.recall(type=type, limit=1000)
                if found.scope
            }
        )
        if not scopes:
            return Briefs((), "the memory bank is empty")
        note = f"the first {limit} of {len(scopes)} scopes" if len(scopes) > limit else ""
        return Briefs(
            tuple((scope, self.bank.brief(scope, budget_chars)) for scope in scopes[:limit]),
            note,
        )


def timeline(runs: Sequence[RunRecord]) -> Timeline:
    """The runs in at most :data:`MAX_PERIODS` periods of equal width: how many, how
    many hits, and what the hits saved up to each period's end (the last one's figures
    are :func:`~muscle_mem.stats.compute`'s total)."""
    if not runs:
        return Timeline(0, ())
    first = min(run.started_at for run in runs)
    last = max(run.started_at for run in runs)
    width = next((w for w in _WIDTHS if (last - first) / w < MAX_PERIODS), _WIDTHS[-1])
    start = math.floor(first / width) * width
    count = int((last - start) // width) + 1
    ran, hits = Counter[int](), Counter[int]()
    for run in runs:
        at = int((run.started_at - start) // width)
        ran[at] += 1
        hits[at] += run.status == Status.HIT
    time_in: dict[int, float] = defaultdict(float)
    tokens_in: dict[int, int] = defaultdict(int)
    cost_in: dict[int, float] = defaultdict(float)
    for hit in saved_by_hit(runs):
        at = int((hit.run.started_at - start) // width)
        time_in[at] += hit.time_s
        tokens_in[at] += hit.tokens
        cost_in[at] += hit.cost
    periods, time_s, tokens, cost = [], 0.0, 0, 0.0
    for i in range(count):
        time_s, tokens, cost = time_s + time_in[i], tokens + tokens_in[i], cost + cost_in[i]
        periods.append(Period(start + i * width, ran[i], hits[i], time_s, tokens, cost))
    return Timeline(width, tuple(periods))


def _task(key: str, info: TaskInfo | None, stats: TaskStats | None) -> Task:
    tags = info.tags if info is not None else stats.tags if stats is not None else ()
    return Task(key, info.text if info is not None else "", tags, info, stats)


def _step(
    node: Node, index: int, numbers: dict[str, int], times: dict[tuple[str, str, bytes], float]
) -> StepView:
    assert node.step is not None
    try:
        call: tuple[tuple[Any, ...], dict[str, Any]] | Unreadable = node.template()[0]
    except MuscleMemError as error:
        call = Unreadable(str(error))
    return StepView(
        id=node.id,
        index=index,
        tool=node.step.tool,
        call=call,
        pre=_snapshots(node, "pre", times),
        post=_snapshots(node, "post", times),
        pre_count=len(node.pre),
        post_count=len(node.post),
        hits=node.hits,
        failures=node.failures,
        last_used=node.last_used,
        path=numbers.get(node.id),
        approved=node.approved,
        children=tuple(_step(child, index + 1, numbers, times) for child in node.children),
    )


def _snapshots(
    node: Node, which: Slot, times: dict[tuple[str, str, bytes], float]
) -> tuple[tuple[Any, float | None], ...]:
    snapshots = node.snapshots(which)
    shown: list[tuple[Any, float | None]] = []
    for key in reversed(snapshots.keys()[-SHOWN_SNAPSHOTS:]):
        try:
            value = snapshots.value(key)
        except (KeyError, MuscleMemError) as error:  # evicted meanwhile, or unreadable here
            value = Unreadable(str(error))
        shown.append((value, times.get((node.id, which, key))))
    return tuple(shown)


def _heat(rows: Iterable[tuple[str, Counter[int], str | None, int | None]]) -> HeatMap:
    """A heat map of the rows (label, runs by step, task key, path) that have runs: a
    column per step up to the last one a run diverged at, or, past
    :data:`HEAT_STEPS` of them, only those steps."""
    listed = [row for row in rows if row[1]]
    seen = sorted({step for row in listed for step in row[1]})
    steps = tuple(range(seen[-1] + 1)) if seen and seen[-1] < HEAT_STEPS else tuple(seen)
    return HeatMap(
        steps,
        tuple(
            HeatRow(label, tuple(counts[s] for s in steps), key, path)
            for label, counts, key, path in listed
        ),
    )


def _heat_by_task(tasks: Sequence[Task], runs: Iterable[RunRecord]) -> HeatMap:
    """Per task key, how many runs diverged at each step."""
    by_key: dict[str, Counter[int]] = defaultdict(Counter)
    for run in runs:
        if run.diverged_at is not None:
            by_key[run.task_key][run.diverged_at] += 1
    return _heat((task.name, by_key[task.task_key], task.task_key, None) for task in tasks)


def _heat_by_path(numbers: dict[str, int], runs: Iterable[RunRecord]) -> HeatMap:
    """Per path a diverged run went on to record (numbered as the tree shows them), how
    many runs diverged at each step; runs whose path is not in the cache in one row."""
    by_path: dict[int | None, Counter[int]] = defaultdict(Counter)
    for run in runs:
        if run.diverged_at is not None:
            by_path[numbers.get(run.path or "")][run.diverged_at] += 1
    numbered = sorted(n for n in by_path if n is not None)
    rows = [(f"path {n}", by_path[n], None, n) for n in numbered]
    return _heat([*rows, ("no path cached", by_path[None], None, None)])
