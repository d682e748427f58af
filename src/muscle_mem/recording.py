"""The run context: what a run in progress records, and the helpers agents call.

Each engine run sets its own :class:`Recorder` in a context variable, so threads and
asyncio tasks sharing one engine each record their own steps and never mix them. Tools
append what they record to it; :func:`handoff` and :func:`report_usage` are how an agent
reads and adds to the run it is part of.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    records into a run of its own engine, never another's.
    """

    scope: object
    params: dict[str, Any]
    calls: list[RecordedCall] = field(default_factory=list)
    tokens: int = 0
    cost: float = 0.0
    # Whether the agent asked for handoff(): one that never did cannot have carried on
    # from where replay stopped, so the run records it as a restart.
    read_handoff: bool = False
    _templater: Templater | None = None  # made on the first recorded call: hits need none

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
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        raise ConfigurationError(
            f"report_usage(tokens=...) takes a non-negative int, got {tokens!r}"
        )
    if not isinstance(cost, (int, float)) or isinstance(cost, bool) or cost < 0:
        raise ConfigurationError(
            f"report_usage(cost=...) takes a non-negative number, got {cost!r}"
        )
    run = current_recorder.get()
    if run is not None:
        run.tokens += tokens
        run.cost += cost
