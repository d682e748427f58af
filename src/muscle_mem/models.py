"""The data model: every value that crosses a module boundary.

What a step is and how its node is named, what a run recorded and matched, the one
change set a run hands its store, and what the user gets back (an outcome, a handoff).
Small immutable values that import nothing else of muscle-mem (errors.py, one layer up,
names :class:`Handoff`), so every other module can depend on them.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

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


class OnDivergence(str, enum.Enum):
    """What the engine does when replay cannot go on after it has started."""

    HANDOFF = "handoff"  # the agent carries on from where replay stopped
    RESTART = "restart"  # the agent starts the task over
    RAISE = "raise"  # raise DivergenceError


class Mode(str, enum.Enum):
    """How a run uses the cache, like vcrpy's record modes."""

    AUTO = "auto"  # replay what fits, else call the agent and learn what it does
    REPLAY = "replay"  # never call the agent: a miss or a divergence raises ReplayMissError
    RECORD = "record"  # call the agent and record what it does; replay nothing
    OFF = "off"  # a pass-through: call the agent; replay, record and log nothing


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
class FromResult:
    """Where a recorded value was found: in the result of an earlier step of its path.

    ``path`` leads into that result: field names, and None for "any element" (of a list,
    a tuple or a set, or any record of a dict of records keyed by their ids), so the
    location reads "any element of ``orders``" whoever's orders they are. With ``keys``
    the value was one of the keys of the dict there (an id). ``alone`` says whether the
    location held this one value alone when recorded (the data forced it) or several
    (the agent chose it among them).
    """

    step: int
    path: tuple[str | None, ...] = ()
    keys: bool = False
    alone: bool = True

    def __str__(self) -> str:
        where = "".join(
            "[*]" if part is None else f".{part}" if part.isidentifier() else f"[{part!r}]"
            for part in self.path
        ).lstrip(".")
        if self.keys:
            where = f"{where}.keys()" if where else "keys()"
        return f"step {self.step}: {where}" if where else f"step {self.step}"


@dataclass(frozen=True)
class Traced:
    """A recorded value with where it came from: the params and earlier results that held
    it. ``value`` is the literal the agent passed, kept where it is the agent's own
    choice: chosen among several candidates, or a word it may have used of its own
    accord (provenance.py). Where a param or a location that held it alone pins it
    down, the value is left out, so the step is the same for every customer.
    """

    sources: tuple[Param | FromResult, ...]
    value: Any = None


@dataclass(frozen=True)
class Step:
    """One recorded tool call, with params abstracted: what a trie node stands for.

    ``tool`` is the tool's qualified name (or its ``name=``), ``code`` the fingerprint of
    the tool's (or its ``version=``) and its checks' source, ``call`` the canonical
    encoding of ``(args, kwargs)`` with param values replaced by :class:`Param`/
    :class:`Text` (``self`` of a method left out), then, if they were passed in another
    order, its dicts' order (codec.encode_call).
    """

    tool: str
    code: str
    call: bytes


def _digest(*parts: bytes) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))  # length-prefixed: no ambiguous joins
        h.update(part)
    return h.hexdigest()


def root_id(task_key: str) -> str:
    """The id of a task key's root node."""
    return _digest(b"root", task_key.encode())


def node_id(parent_id: str, step: Step) -> str:
    """A node's id: a hash of its parent's id and its step, so equal paths share nodes."""
    # Only the canonical part of the call: what may follow a NUL is the order its dicts
    # were passed in (codec.encode_call), which replay hands back but identity ignores.
    call = step.call.partition(b"\0")[0]
    return _digest(parent_id.encode(), step.tool.encode(), step.code.encode(), call)


Which = Literal["pre", "post"]  # a node's two check slots
WHICH: tuple[Which, ...] = ("pre", "post")
# What a node keeps as de-duplicated sets: its checks' snapshots and, at a recorded end,
# the values of the params its path had no place for (see Changes.unused).
Slot = Literal["pre", "post", "end"]
SLOTS: tuple[Slot, ...] = ("pre", "post", "end")


# Snapshot, RecordedCall and Matched are made for every step of every run, hits included:
# slotted dataclasses, three times cheaper to make than frozen ones or named tuples.
# Nothing changes them once made.


@dataclass(slots=True)
class Snapshot:
    """A check's capture: its canonical encoding (its identity) and the value itself."""

    key: bytes
    value: Any


@dataclass(slots=True)
class RecordedCall:
    """A tool call the agent made during a run, with the environment around it."""

    step: Step
    pre: Snapshot | None
    post: Snapshot | None


@dataclass(slots=True)
class Matched:
    """A check that passed during replay: the stored snapshot it matched (``key``) and
    the capture taken now (``fresh``); with ``learn`` the fresh one replaces it."""

    node: str
    which: Which
    key: bytes
    fresh: Snapshot
    learn: bool

    @property
    def replaces(self) -> bool:
        """Whether refreshing puts the fresh capture in the matched snapshot's place."""
        return self.learn and self.fresh.key != self.key


class Learned(NamedTuple):
    """A snapshot added to a replayed node: a check failed on an environment the agent
    then handled from there."""

    node: str
    which: Which
    snapshot: Snapshot


class PathStep(NamedTuple):
    """A node of a newly recorded path: its id, computed once, its parent and its call."""

    id: str
    parent: str
    call: RecordedCall


class Changes(NamedTuple):
    """Everything one run changes in its task key's tree: the one value a store applies,
    in one transaction, alongside the run's :class:`RunRecord`. Immutable: a named
    tuple rather than a frozen dataclass, since one is made per run, hits included, and
    it is four times cheaper to make.

    - ``matched``: snapshots replay matched. Each moves up its node's least-recently-used
      order, or is replaced by the fresh capture when its check learns. Never added.
    - ``executed``: nodes replay ran; each counts a hit and is marked used now.
    - ``failed``: nodes whose check or tool failed where replay stopped; each counts a
      failure.
    - ``path``: the calls the agent made, as nodes hanging from ``graft_at`` (the root
      for a miss, the last replayed node for a handoff), each with its snapshots. Node
      ids hash their content, so storing a path that exists already changes nothing.
      The path's last node (``graft_at`` itself when the agent made no call) becomes
      a recorded end.
    - ``learned``: snapshots added to replayed nodes, only along a recorded path.
    - ``result``: what the agent returned, templated with the run's params and
      encoded, kept at the path's end for hits to return. When several runs end at
      one node the latest wins, even with None (its result could not be stored):
      a hit returns what the agent last returned there, never an older answer.
    - ``unused``: the params of the run that no call on the path was passed, with a
      digest of each one's value, encoded: added to the end's ``"end"`` set, so that a
      later run takes this path only where those params have a value the path was
      recorded with. (The task text or the answer holding a param doesn't count: the
      agent's choices may have depended on it unseen.) None when every param was passed.
    - ``text``: the task's own words, templated as the task key is (``"fill the form
      for {name}"``), for the store to keep with the key (:attr:`TaskInfo.text`). Set
      by runs that record a path; None leaves what the store has.

    Counting a hit on a node, or refreshing a snapshot, that another writer removed
    meanwhile is a no-op. When ``graft_at`` is gone, the path hangs from nothing: a
    store drops it (see :meth:`without_path`) rather than keep it unreachable.
    """

    task_key: str
    matched: tuple[Matched, ...] = ()
    executed: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    graft_at: str | None = None
    path: tuple[PathStep, ...] = ()
    learned: tuple[Learned, ...] = ()
    result: bytes | None = None
    unused: bytes | None = None
    text: str | None = None

    @classmethod
    def of_run(
        cls,
        task_key: str,
        *,
        matched: tuple[Matched, ...] = (),
        executed: tuple[str, ...] = (),
        failed: tuple[str, ...] = (),
        graft_at: str | None = None,
        calls: tuple[RecordedCall, ...] = (),
        learned: tuple[Learned, ...] = (),
        result: bytes | None = None,
        unused: bytes | None = None,
    ) -> Changes:
        """The change set of a run that recorded ``calls`` after ``graft_at`` (if any)."""
        path = []
        parent = graft_at
        if parent is not None:
            for call in calls:
                nid = node_id(parent, call.step)
                path.append(PathStep(nid, parent, call))
                parent = nid
        if graft_at is None:
            result = unused = None  # no path, no end to keep them at
        return cls(
            task_key, matched, executed, failed, graft_at, tuple(path), learned, result, unused
        )

    @property
    def end(self) -> str | None:
        """The node where the recorded path ends, if the run recorded one."""
        return self.path[-1].id if self.path else self.graft_at

    @property
    def structural(self) -> bool:
        """Whether another process's replay could see a difference after these changes
        (a new node, a new or replaced snapshot), rather than counts and times alone."""
        return self.graft_at is not None or any(m.replaces for m in self.matched)

    def without_path(self) -> Changes:
        """These changes with nothing recorded: for a store whose ``graft_at`` is gone."""
        return self._replace(graft_at=None, path=(), learned=(), result=None, unused=None)


@dataclass(frozen=True)
class ExecutedStep:
    """A tool call the engine replayed from cache, with its real arguments and result.

    ``arguments`` names every argument the tool ran with (defaults included, ``self``
    of a method left out); ``args`` and ``kwargs`` are the call as it was made.
    """

    tool: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Any
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Handoff:
    """Where replay stopped and what it had done: read by the agent that takes over.

    ``steps`` are the calls executed from cache (in order), ``at`` the index of the step
    where replay stopped, ``reason`` why.
    """

    steps: tuple[ExecutedStep, ...]
    at: int
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What one run of the engine did. Truthy exactly on a full cache hit.

    :attr:`steps` are the calls replayed from cache, in order (none on a miss).
    """

    status: Status
    result: Any = None
    replayed: int = 0
    diverged_at: int | None = None
    reason: str | None = None
    duration_s: float = 0.0
    tokens: int = 0
    cost: float = 0.0
    task_key: str = field(default="", repr=False)
    # The steps, or what makes them: naming every argument of every step costs more than
    # the rest of a hit, so a hit's steps are made the first time someone asks.
    _steps: tuple[ExecutedStep, ...] | Callable[[], tuple[ExecutedStep, ...]] = field(
        default=(), repr=False, compare=False
    )

    @property
    def steps(self) -> tuple[ExecutedStep, ...]:
        """The calls replayed from cache, in order, each with its arguments by name and
        its live result."""
        steps = self._steps
        if callable(steps):
            steps = steps()
            object.__setattr__(self, "_steps", steps)  # made once; frozen to everyone else
        return steps

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
    """What a store holds for one task key: its tags, how much is cached, when it was used,
    the task's own words and how many of its paths a person approved."""

    task_key: str
    tags: tuple[str, ...]
    nodes: int
    paths: int  # recorded trajectories' ends
    created_at: float
    last_used: float
    text: str = ""  # the task text, templated ("fill the form for {name}"); "" if unknown
    approved: int = 0  # how many of its recorded ends are approved
