"""The data model: what a step, a replayed call, a handoff and an outcome are.

Small frozen dataclasses that import nothing from the engine or the stores, so every
other module can depend on them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, NamedTuple

TASK_KEY_PREFIX = "task1:"  # a task key's algorithm tag: "task1:" + blake2b-128 hex


class Status(str, enum.Enum):
    """What a run came to. An :class:`Outcome` is one of the first three; the run log
    also keeps ``ERROR``, a run whose agent (or replay, under "raise") raised."""

    HIT = "hit"  # replayed a whole recorded path
    MISS = "miss"  # nothing ran from cache: the agent solved the task
    HANDOFF = "handoff"  # replay ran or tried a step, then the agent took over
    ERROR = "error"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass(frozen=True)
class Param:
    """A reference to a param of the run, standing where its value stood in a call."""

    name: str


@dataclass(frozen=True)
class Redacted:
    """A tool's sensitive argument that was not a param: never stored, so never replayed."""

    argument: str


@dataclass(frozen=True)
class Text:
    """A string with params inside it: literal pieces alternating with :class:`Param`."""

    parts: tuple[str | Param, ...]


@dataclass(frozen=True)
class Step:
    """One recorded tool call, with params abstracted: what a trie node stands for.

    ``tool`` is the tool's qualified name, ``code`` the fingerprint of the tool's and its
    checks' source, ``call`` the canonical encoding of ``(args, kwargs)`` with param
    values replaced by :class:`Param`/:class:`Text` (``self`` of a method left out).
    """

    tool: str
    code: str
    call: bytes


@dataclass(frozen=True)
class ExecutedStep:
    """A tool call the engine replayed from cache, with its real arguments and result."""

    tool: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Any


@dataclass(frozen=True)
class Handoff:
    """Where replay stopped and what it had done: read by the agent that takes over.

    ``steps`` are the calls executed from cache (in order), ``at`` the index of the step
    where replay stopped, ``reason`` why.
    """

    steps: list[ExecutedStep]
    at: int
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What one run of the engine did. Truthy exactly on a full cache hit."""

    status: Status
    result: Any = None
    replayed: int = 0
    diverged_at: int | None = None
    reason: str | None = None
    duration_s: float = 0.0
    tokens: int = 0
    cost: float = 0.0
    task_key: str = field(default="", repr=False)

    @property
    def hit(self) -> bool:
        return self.status == Status.HIT

    def __bool__(self) -> bool:
        return self.status == Status.HIT


class RunRecord(NamedTuple):
    """One line of the run log: what a run did, without any param's value.

    A named tuple rather than a frozen dataclass: one is made per run, hits included,
    and this is four times cheaper to make.
    """

    task_key: str
    tags: tuple[str, ...]
    params: tuple[str, ...]  # names only: values may be secrets
    status: Status
    replayed: int
    recorded: int
    diverged_at: int | None
    reason: str | None
    started_at: float
    duration_s: float
    tokens: int = 0
    cost: float = 0.0
    path: str | None = None  # the node where the run's trajectory ended, if it reached one
    about: str | None = None  # the memory bank entity the caller named, as "kind:id"


class TaskInfo(NamedTuple):
    """What a store holds for one task key: its tags, how much is cached, when it was used."""

    task_key: str
    tags: tuple[str, ...]
    nodes: int
    paths: int  # recorded trajectories' ends
    created_at: float
    last_used: float
