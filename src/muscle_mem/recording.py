"""The run context: what a run in progress records, and the helpers agents call.

Each engine run sets its own :class:`Recorder` in a context variable, so threads and
asyncio tasks sharing one engine each record their own steps and never mix them. Tools
append what they record to it; :func:`handoff` and :func:`report_usage` are how an agent
reads and adds to the run it is part of.

Context variables do not reach the threads an agent starts (a ``ThreadPoolExecutor``,
a framework's parallel tool calls), so while the agent runs, its recorder is also
listed among its engine's runs in progress (:func:`runs_in_progress`): a tool called
with no run in its context belongs to the one run of its engine in progress, if there
is exactly one.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError
from .models import Handoff, RecordedCall
from .templates import Templater


@dataclass
class Recorder:
    """The recording side of one run: the calls its tools made, and its usage.

    ``scope`` is the engine the run belongs to, compared by identity only: a tool
    records into a run of its own engine, never another's. ``calls`` are in the order
    the calls started, even when tools run in parallel threads and end in another.
    """

    scope: object
    params: dict[str, Any]
    calls: list[RecordedCall] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)  # what each of ``calls`` returned
    tokens: int = 0
    cost: float = 0.0
    # Whether the agent asked for handoff(): one that never did cannot have carried on
    # from where replay stopped, so the run records it as a restart.
    read_handoff: bool = False
    _templater: Templater | None = None  # made on the first recorded call: hits need none
    _started: list[int] = field(default_factory=list)  # each call's start number
    _returned: list[int] = field(default_factory=list)  # start numbers, in return order
    _seen: dict[int, int] = field(default_factory=dict)  # start number -> calls returned
    _numbers: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> int:
        """A call starts: its number, by which it takes its place among the calls."""
        with self._lock:
            number = next(self._numbers)
            self._seen[number] = len(self._returned)
            return number

    def add(self, number: int, call: RecordedCall, result: Any = None) -> None:
        """Add the call that started as ``number`` and returned ``result``, in start order."""
        with self._lock:
            at = bisect.bisect(self._started, number)
            self._started.insert(at, number)
            self.calls.insert(at, call)
            self.results.insert(at, result)
            self._returned.append(number)

    def readable(self) -> list[list[int]]:
        """For each call, the positions among :attr:`calls` of those that had returned
        when it started: the only results its arguments can have been read from (calls
        made in parallel cannot read each other's)."""
        position = {number: i for i, number in enumerate(self._started)}
        return [
            sorted(position[n] for n in self._returned[: self._seen[number]] if n in position)
            for number in self._started
        ]

    def add_usage(self, tokens: int, cost: float) -> None:
        """Count a model call's usage (checked by :func:`check_usage`); from any thread."""
        with self._lock:
            self.tokens += tokens
            self.cost += cost

    def template_call(self, args: Iterable[Any], kwargs: Mapping[str, Any]) -> Any:
        templater = self._templater
        if templater is None:
            templater = self._templater = Templater(self.params)
        return (
            tuple(templater.template(a) for a in args),
            {k: templater.template(v) for k, v in kwargs.items()},
        )


current_recorder: ContextVar[Recorder | None] = ContextVar("muscle_mem_run", default=None)
# True while a tool (or a check's capture) runs: calls made from inside it belong to it.
inside_tool: ContextVar[bool] = ContextVar("muscle_mem_inside_tool", default=False)
current_handoff: ContextVar[Handoff | None] = ContextVar("muscle_mem_handoff", default=None)


# The runs whose agent is running, by engine (the id of their scope).
_in_progress: dict[int, list[Recorder]] = {}
_in_progress_lock = threading.Lock()


def begin_agent(recorder: Recorder) -> None:
    """The run's agent starts: its tools may be called from threads it starts."""
    with _in_progress_lock:
        _in_progress.setdefault(id(recorder.scope), []).append(recorder)


def end_agent(recorder: Recorder) -> None:
    with _in_progress_lock:
        runs = _in_progress[id(recorder.scope)]
        # By identity: recorders are dataclasses, and two runs' may compare equal.
        runs[:] = [run for run in runs if run is not recorder]
        if not runs:
            del _in_progress[id(recorder.scope)]


def runs_in_progress(scope: object) -> tuple[Recorder, ...]:
    """The runs of the engine ``scope`` whose agent is running now."""
    with _in_progress_lock:
        return tuple(_in_progress.get(id(scope), ()))


def handoff() -> Handoff | None:
    """The handoff the agent is running under: what replay did and why it stopped.

    None outside a handoff (a plain miss, or no engine run at all).
    """
    run = current_recorder.get()
    if run is not None:
        run.read_handoff = True
    return current_handoff.get()


def report_usage(tokens: int = 0, cost: float = 0.0) -> None:
    """Add an LLM call's tokens and cost to the current run's :class:`Outcome`.

    Call it from the agent (or an integration) after each model call. Outside an engine
    run there is nothing to attach it to, and it does nothing.
    """
    check_usage(tokens, cost)
    run = current_recorder.get()
    if run is not None:
        run.add_usage(tokens, cost)


def check_usage(tokens: Any, cost: Any) -> None:
    """Refuse usage that is not a count of tokens and an amount of money."""
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        raise ConfigurationError(
            f"report_usage(tokens=...) takes a non-negative int, got {tokens!r}"
        )
    # Not inf or nan either: no price is, and the run log could not add them up.
    if not isinstance(cost, (int, float)) or isinstance(cost, bool) or not 0 <= cost < math.inf:
        raise ConfigurationError(
            f"report_usage(cost=...) takes a finite non-negative number, got {cost!r}"
        )
