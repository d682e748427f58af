"""The day the demo plays: ten tasks on four properties, each through the engine.

1. audit MFF's conversion flow: nothing cached, the agent works it out;
2. the same audit on MMM: the same task with another param, replayed without the LLM;
3. the audit on MCAD, whose signup page has changed: replay stops at the step whose
   check fails and the agent takes over from there; 4. MCAD again: replayed;
5-6. build the missing signup and thank-you flows on MCAD, then MMD from the cache;
7-10. validate attribution on all four.

A later session on the same store plays the same day again. The world it finds is the
one the earlier sessions left (regenerated from the seed and the days already played),
so every task replays from the cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from muscle_mem import Status

from .agent import Agent
from .llm import LLM, Task
from .policy import SimulatedLLM
from .tools import Platform
from .world import World

if TYPE_CHECKING:
    from muscle_mem import Engine

    from .journal import Journal

DAY = (
    Task("audit", "MFF"),
    Task("audit", "MMM"),
    Task("audit", "MCAD"),
    Task("audit", "MCAD"),
    Task("build", "MCAD"),
    Task("build", "MMD"),
    Task("validate", "MFF"),
    Task("validate", "MMM"),
    Task("validate", "MCAD"),
    Task("validate", "MMD"),
)


def engine_arguments(task: Task) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """How a task is put to the engine: the property is a param, so one recorded audit
    serves every property whose checks pass."""
    return (task.text,), {
        "kind": task.kind,
        "property": task.code,
        "params": {"property": task.code},
        "tags": ["demo", task.kind],
        "about": f"brand:{task.code.lower()}",
    }


def days_played(engine: Engine) -> int:
    """How many days of the demo the engine's store has seen: one audit of MFF a day."""
    args, kwargs = engine_arguments(DAY[0])
    key = engine.task_key(*args, **kwargs)
    runs = engine.store.runs(about=kwargs["about"])
    return sum(1 for run in runs if run.task_key == key and run.status != Status.ERROR)


def settle(world: World, platform: Platform, days: int) -> None:
    """Bring a world fresh from :meth:`World.generate` to the morning after ``days``
    played days: the simulated policy does each day's tasks again, outside any engine,
    without latency. The result is the same for the same seed, in any process."""
    agent = Agent(SimulatedLLM(latency=0, tokens_per_call=0), platform)
    for day in range(1, days + 1):
        world.start_day(day)
        for task in DAY:
            agent(task.text, kind=task.kind, property=task.code)
    world.start_day(days + 1)


@dataclass(frozen=True)
class StepResult:
    """What one task of the day did, and what the agent alone would have needed."""

    number: int
    task: Task
    status: Status
    replayed: int
    diverged_at: int | None
    reason: str | None
    wall_s: float
    llm_calls: int
    tokens: int
    cost: float
    task_key: str
    alone_calls: int  # LLM calls the agent makes doing this task from scratch
    alone_tools_s: float  # the time its tools take when it does


class Session:
    """Runs the day's tasks through ``engine``, whose agent asks ``llm``."""

    def __init__(
        self, engine: Engine, platform: Platform, llm: LLM, journal: Journal | None = None
    ) -> None:
        self.engine = engine
        self.platform = platform
        self.llm = llm
        self.journal = journal

    def run(self, number: int, task: Task) -> StepResult:
        world = self.platform.world
        alone_calls, alone_tools_s = self.alone(task)
        seen = len(world.events)
        calls = self.llm.calls
        args, kwargs = engine_arguments(task)
        started = time.perf_counter()
        outcome = self.engine(*args, **kwargs)
        wall = time.perf_counter() - started
        if self.journal is not None:
            self.journal.record(number, task, outcome, world.events[seen:])
        return StepResult(
            number=number,
            task=task,
            status=outcome.status,
            replayed=outcome.replayed,
            diverged_at=outcome.diverged_at,
            reason=outcome.reason,
            wall_s=wall,
            llm_calls=self.llm.calls - calls,
            tokens=outcome.tokens,
            cost=outcome.cost,
            task_key=outcome.task_key,
            alone_calls=alone_calls,
            alone_tools_s=alone_tools_s,
        )

    def alone(self, task: Task) -> tuple[int, float]:
        """The LLM calls the agent needs for ``task`` without a cache, counted on a copy
        of the world (the simulated policy, no latency), and its tools' time."""
        llm = SimulatedLLM(latency=0, tokens_per_call=0)
        agent = Agent(llm, type(self.platform)(self.platform.world.copy()))
        started = time.perf_counter()
        agent(task.text, kind=task.kind, property=task.code)
        return llm.calls, time.perf_counter() - started
