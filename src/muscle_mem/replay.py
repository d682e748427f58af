"""Replay: walking a task key's tree, one step at a time, while the checks allow it.

:class:`Replay` decides and the run executes: ``next()`` chooses the next step (or
says replay is over), the run's driver calls the tool (synchronously or awaited) and
reports back with ``done()`` or ``raised()``. That keeps one replay for sync and async.
What replay observed (the snapshots it matched, the nodes it ran and those that failed)
is its own until :meth:`Replay.changes` freezes it into the run's change set.
"""

from __future__ import annotations

import logging
import reprlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .checks import CompareRaised
from .codec import encode
from .errors import DecodeError, EncodeError
from .models import (
    TASK_KEY_PREFIX,
    Changes,
    ExecutedStep,
    Handoff,
    Learned,
    Matched,
    RecordedCall,
    Snapshot,
    Step,
)
from .provenance import unused_params
from .templates import MissingParam, NotStored, Pending, Unresolved, unresolved
from .tools import NotInjected, Tool
from .trie import Node, SnapshotSet, Tree

logger = logging.getLogger("muscle_mem")

# Choosing among several continuations looks this far ahead, at most: this many steps
# down, and this many nodes in all (shared out among the candidates), each a pre-check
# judged with a capture taken at most once per tool and arguments.
LOOKAHEAD_DEPTH = 8
LOOKAHEAD_NODES = 64
_ENDS = LOOKAHEAD_DEPTH + 1  # the reach of a path that holds to a recorded end

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60


def _short_key(task_key: str) -> str:
    """The start of a task key that names it for the command line (as `muscle-mem ls`
    shows it)."""
    return task_key.removeprefix(TASK_KEY_PREFIX)[:12]


def _describe(value: Any) -> str:
    """A short description of a capture for a miss's reason, cheap whatever its size.

    reprlib truncates only after calling ``repr``, and printing a 384-float array costs
    a millisecond, more than the whole replay: arrays are described by their shape.
    """
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, type):
        return f"<{type(value).__name__} of shape {tuple(shape)}>"
    return _short.repr(value)


@dataclass(slots=True)
class Candidate:
    """A recorded continuation whose pre-check passes now, ready to run."""

    node: Node
    tool: Tool
    args: tuple[Any, ...]  # self first, for a method
    kwargs: dict[str, Any]
    score: float
    pre: Matched | None


class Replay:
    """The state of one replay through a tree.

    ``tools`` finds the engine's tool for a recorded name, ``context_for`` the object to
    inject as ``self`` into a method tool (None if there is none), ``inject`` the values
    of the arguments tools take from the run (``inject=``), by name. With
    ``provenance``, replay takes a path only if each param is passed to one of its calls
    or has a value the path was recorded with; with ``approved_only``, only a path a
    person approved (:meth:`~muscle_mem.store.Store.approve`).
    """

    def __init__(
        self,
        tree: Tree,
        params: dict[str, Any],
        tools: Mapping[str, Tool],
        context_for: Callable[[Tool], Any],
        *,
        provenance: bool = True,
        inject: Mapping[str, Any] | None = None,
        approved_only: bool = False,
    ) -> None:
        self.tree = tree
        self.approved_only = approved_only
        self.params = params
        self.tools = tools
        self.context_for = context_for
        self.inject: Mapping[str, Any] = {} if inject is None else inject
        # The params a path must have a place for, or have been recorded with.
        self._open = frozenset(params) if provenance else frozenset()
        self._admitted: dict[str, bool] = {}  # node id -> whether a path for us ends below
        self._entries: dict[frozenset[str], bytes | None] = {}
        self.results: list[Any] = []  # what the steps run so far returned, in order
        self.result: Any = None  # on a hit: the recorded result, rebuilt for this run
        self.node = tree.root
        self._matched: list[Matched] = []
        self._executed: list[str] = []
        self._failed: list[str] = []
        self._learned: list[Learned] = []
        self._done: list[tuple[Candidate, Any]] = []  # steps run, with their results
        self._hints: deque[bytes] = deque(maxlen=4)  # snapshots matched at the last steps
        self.attempted = False  # a tool was called, even if it then raised
        self.hit = False
        self.at: int | None = None
        self.reason: str | None = None
        self._current: Candidate | None = None

    @property
    def replayed(self) -> int:
        return len(self._done)

    @property
    def diverged(self) -> bool:
        """Replay stopped after it had executed or attempted a step: a handoff."""
        return self.at is not None and self.attempted

    def handoff(self) -> Handoff:
        assert self.at is not None and self.reason is not None
        # Built only when asked for: a hit never needs it.
        return Handoff(self.steps(), self.at, self.reason)

    def steps(self) -> tuple[ExecutedStep, ...]:
        """The steps run so far, in order, each with its arguments by name (the
        arguments supplied by ``inject`` left out, as they were when recorded)."""
        steps = []
        for c, result in self._done:
            args, kwargs = c.tool.strip(_user_args(c.tool, c.args), c.kwargs)
            arguments = c.tool.arguments_by_name(c.args, c.kwargs)
            steps.append(ExecutedStep(c.tool.name, args, dict(kwargs), result, arguments))
        return tuple(steps)

    def changes(
        self,
        *,
        graft_at: str | None = None,
        calls: tuple[RecordedCall, ...] = (),
        learned: bool = False,
        result: bytes | None = None,
        unused: bytes | None = None,
    ) -> Changes:
        """What this replay observed as one change set, with the ``calls`` the agent
        recorded after the node ``graft_at``, the encoded ``result`` it returned and the
        params it had no place for (``unused``); ``learned`` keeps the snapshots replay
        learned (they belong only to a path the agent carried on)."""
        return Changes.of_run(
            self.tree.task_key,
            matched=tuple(self._matched),
            executed=tuple(self._executed),
            failed=tuple(self._failed),
            graft_at=graft_at,
            calls=calls,
            learned=tuple(self._learned) if learned else (),
            result=result,
            unused=unused,
        )

    def next(self) -> Candidate | None:
        """The next step to run, or None when replay is over (see ``hit``/``at``)."""
        if self.at is not None:
            return None  # stopped by a failed check or a raising tool
        node = self.node
        if not node.children:
            if node is self.tree.root:
                self._stop("nothing has been recorded for this task yet")
            else:
                self._end(node)
            return None
        captures: dict[tuple[str, bytes], Snapshot | Exception] = {}
        reasons: list[str] = []
        failed: list[str] = []
        best: Candidate | None = None
        passing: list[Candidate] | None = None  # made only when a second one passes
        for child in node.children:
            candidate = self._candidate(child, captures, reasons, failed)
            if candidate is None:
                continue
            if best is None:
                best = candidate
            elif passing is None:
                passing = [best, candidate]
            else:
                passing.append(candidate)
        if passing is not None:
            best = self._choose(passing, captures)
        if best is None:
            if node.terminal and self._end_admits(node):
                self._end(node)  # no continuation fits, but a trajectory ended here
            else:
                self._failed.extend(failed)
                self._stop("; ".join(reasons))
            return None
        self._current = best
        return best

    def done(self, result: Any) -> None:
        """The chosen step ran and returned ``result``; check what it left behind."""
        current = self._take()
        node, tool = current.node, current.tool
        self._done.append((current, result))
        self.results.append(result)
        post: Matched | None = None
        check = tool.post_check
        if check is not None:
            try:
                fresh = tool.capture(check, "post", current.args, current.kwargs)
            except Exception as error:
                self._stop_after(node, f"the post-check capture of {tool.name} raised {error!r}")
                return
            assert fresh is not None
            try:
                found = node.post.match(check, fresh, self._hints)
            except CompareRaised as raised:
                self._stop_after(
                    node, f"the post-check compare of {tool.name} raised {raised.error!r}"
                )
                return
            if found is None:
                self._learned.append(Learned(node.id, "post", fresh))
                self._stop_after(
                    node,
                    f"the post-check of {tool.name} failed: {self._explain(node.post, fresh)}",
                )
                return
            post = Matched(node.id, "post", found[1], fresh, check.learn)
        for matched in (current.pre, post):
            if matched is not None:
                self._matched.append(matched)
                if not self._hints or self._hints[0] != matched.key:
                    self._hints.appendleft(matched.key)  # distinct: a key is tried once
        self._executed.append(node.id)
        self.node = node

    def raised(self, error: BaseException) -> None:
        """The chosen step's tool raised ``error``: replay stops before it."""
        current = self._take()
        self._failed.append(current.node.id)
        self._stop(f"{current.tool.name} raised {type(error).__name__}: {error}")

    def _take(self) -> Candidate:
        current, self._current = self._current, None
        assert current is not None, "done()/raised() without a step from next()"
        self.attempted = True
        return current

    def _end(self, node: Node) -> None:
        """Replay reached a recorded end: a hit, if the recorded result can be rebuilt."""
        if not (node.terminal and self._end_admits(node)):
            self._stop("no recorded path ends here (rows of this task may be missing)")
            return
        try:
            self.result = node.recorded_result(self.params, self.results)
        except Unresolved:
            # The steps ran, but the answer they lead to can't be told: the agent gives it.
            found = unresolved(node.result_template(), self.params, self.results)
            assert found is not None
            self._stop(f"the recorded result{_place(found[0])} {found[1]}")
            return
        except (DecodeError, MissingParam, NotStored, Pending) as error:
            # The steps have run: the hit stands, without the result it can't rebuild.
            logger.warning(
                "%s: the recorded result can't be returned: %r", self.tree.task_key, error
            )
        self.hit = True

    def _admits(self, node: Node) -> bool:
        """Whether a recorded end this run may take lies at or below ``node``. A walk
        down to the first such end, remembered for every node on the way."""
        admitted = self._admitted
        known = admitted.get(node.id)
        if known is not None:
            return known
        # Most trees are mostly chains: follow a lone child without a stack.
        chain = []
        while not (node.terminal and self._end_admits(node)):
            children = node.children
            if len(children) != 1:
                found = bool(children) and self._search(node)
                break
            chain.append(node)
            node = children[0]
            known = admitted.get(node.id)
            if known is not None:
                found = known
                break
        else:
            found = True
            admitted[node.id] = True
        for above in chain:
            admitted[above.id] = found
        return found

    def _search(self, node: Node) -> bool:
        """:meth:`_admits` below a node with several children: depth first."""
        admitted = self._admitted
        stack = [(node, iter(node.children))]
        while stack:
            parent, children = stack[-1]
            child = next(children, None)
            if child is None:
                admitted[parent.id] = False  # its whole subtree was searched
                stack.pop()
                continue
            known = admitted.get(child.id)
            if known is False:
                continue
            if known or (child.terminal and self._end_admits(child)):
                for above, _ in stack:
                    admitted[above.id] = True
                admitted[child.id] = True
                return True
            stack.append((child, iter(child.children)))
        return False

    def _needs(self, end: Node) -> frozenset[str]:
        """The params of this run that no call on the path to ``end`` is passed.

        Only arguments count. A param the task text or the answer holds, but no call
        was passed, may still have steered what the agent chose (which order, which
        variant): another value for it is another request."""
        if not self._open:
            return self._open
        try:
            return self._open - self.tree.path_params(end)
        except DecodeError:
            return self._open

    def _end_admits(self, end: Node) -> bool:
        """Whether this run may take the path recorded to ``end``: approved, if the run
        takes approved paths only, and every param it has no place for has a value the
        path was recorded with."""
        return (end.approved or not self.approved_only) and self._params_admit(end)

    def _params_admit(self, end: Node) -> bool:
        """Whether every param this run has and the path to ``end`` has no place for has
        a value the path was recorded with."""
        needs = self._needs(end)
        if not needs:
            return True
        entry = self._entries.get(needs, b"")
        if entry == b"":
            entry = self._entries[needs] = unused_params(self.params, sorted(needs))
        return entry is not None and entry in end.ends

    def _why_not(self, node: Node) -> str:
        """Why no recorded end at or below ``node`` can be taken by this run."""
        stack = [node]
        while stack:
            below = stack.pop()
            if below.terminal and self._params_admit(below):  # so it is not approved
                return (
                    "the path recorded through it is not approved, and this run replays "
                    "approved paths only: review it with `muscle-mem show`, then approve it "
                    f"with `muscle-mem approve {_short_key(self.tree.task_key)}` (or "
                    "store.approve(task_key))"
                )
            if below.terminal:
                names = ", ".join(repr(n) for n in sorted(self._needs(below)))
                return (
                    f"no path recorded through it has a place for param(s) {names}, nor "
                    "was recorded with their values: the request differs"
                )
            stack.extend(below.children)
        return "no recorded path through it reaches a recorded end (rows may be missing)"

    def _stop(self, reason: str) -> None:
        self.at = len(self._done)
        self.reason = f"step {self.at}: {reason}"

    def _stop_after(self, node: Node, reason: str) -> None:
        """A post-check failed: the step ran, so the agent goes on from after it."""
        self._failed.append(node.id)
        self.node = node
        self.at = len(self._done) - 1
        self.reason = f"step {self.at}: {reason}"

    def _choose(
        self,
        passing: list[Candidate],
        captures: dict[tuple[str, bytes], Snapshot | Exception],
    ) -> Candidate | None:
        """Among several continuations whose pre-check passes, the one whose recorded
        pre-checks hold furthest ahead, then the best scored, then the most recently used.

        A capture only reads, so the next steps' pre-checks can be judged now, before
        anything runs, with the captures already taken here (one per tool and
        arguments). Judged now they are a forecast: a step may change what a later
        capture sees, so this only ranks; every step is still checked when it comes up.
        Candidates are tried best first by (score, last used): the first whose path holds
        to a recorded end wins, as nothing after it could rank higher.
        """
        if not passing:
            return None
        passing.sort(key=lambda c: (c.score, c.node.last_used), reverse=True)
        budget = max(1, LOOKAHEAD_NODES // len(passing))  # each candidate's fair share
        best, best_reach = passing[0], -1
        for candidate in passing:
            reach = self._reach(candidate.node, 1, frozenset(), captures, [budget])
            if reach > best_reach:
                best, best_reach = candidate, reach
            if reach == _ENDS:
                break
        return best

    def _reach(
        self,
        node: Node,
        depth: int,
        above: frozenset[Step],
        captures: dict[tuple[str, bytes], Snapshot | Exception],
        budget: list[int],
    ) -> int:
        """How many distinct steps, from ``node`` (whose pre-check holds) on, have
        pre-checks that hold now along the best path below it; ``_ENDS`` if such a path
        reaches a recorded end within :data:`LOOKAHEAD_DEPTH` steps and ``budget[0]``
        nodes. ``node`` is ``depth`` steps ahead; ``above`` are the steps judged on the
        way to it.

        Distinct, because a step the path repeats (an agent listing a folder again after
        a handoff) is judged on the same capture again: it holds, but says nothing new.
        """
        if not node.children or (node.terminal and self._end_admits(node)):
            return _ENDS
        assert node.step is not None
        path = above | {node.step}
        reach = len(path)
        if depth >= LOOKAHEAD_DEPTH:
            return reach
        for child in node.children:
            if budget[0] <= 0:
                break
            budget[0] -= 1
            try:
                if self._candidate(child, captures, None, None) is None:
                    continue
            except Pending:  # its arguments come from a result not known yet: no forecast
                continue
            reach = max(reach, self._reach(child, depth + 1, path, captures, budget))
            if reach == _ENDS:
                break
        return reach

    def _candidate(
        self,
        child: Node,
        captures: dict[tuple[str, bytes], Snapshot | Exception],
        reasons: list[str] | None,
        failed: list[str] | None,
    ) -> Candidate | None:
        """``child`` ready to run if its pre-check passes now; if not, why not goes to
        ``reasons`` and a failed check to ``failed`` (None for a look ahead: no reasons)."""
        ahead = reasons is None
        if reasons is None:
            reasons = []  # cheap reasons are built and dropped; explaining is skipped
        step = child.step
        assert step is not None
        tool = self.tools.get(step.tool)
        if tool is None:
            reasons.append(f"{step.tool} is not a tool of this engine")
            return None
        if tool.code != step.code:
            reasons.append(f"{tool.name} or its checks changed since it was recorded")
            return None
        if not self._admits(child):
            if not ahead:
                reasons.append(f"{tool.name}: {self._why_not(child)}")
            return None
        try:
            args, kwargs, templated = child.arguments(self.params, self.results, ahead)
        except Unresolved:
            if not ahead:
                stop = unresolved(child.template()[0], self.params, self.results)
                assert stop is not None
                reasons.append(f"{tool.name}'s {_argument(tool, stop[0])} {stop[1]}")
            return None
        except Pending:
            if ahead:
                raise
            reasons.append(f"{tool.name}'s recorded arguments refer to a step after it")
            return None
        except DecodeError as error:
            reasons.append(f"{tool.name}'s recorded arguments can't be read: {error}")
            return None
        except MissingParam as missing:
            reasons.append(f"{tool.name} needs param {missing.args[0]!r}, not given to this run")
            return None
        except NotStored as redacted:
            reasons.append(
                f"{tool.name}'s sensitive argument {redacted.args[0]!r} was not a param when "
                "recorded, so it was not stored; pass it as a param to make the step replayable"
            )
            return None
        recorded = (args, kwargs)  # what the capture is looked up by: never injected values
        try:
            args, kwargs = tool.supply(args, kwargs, self.inject)
        except NotInjected as missing:
            name = missing.args[0]
            reasons.append(
                f"{tool.name} takes its argument {name!r} from the run (inject=), and this "
                f"run has none: pass inject={{{name!r}: ...}} to the run or session"
            )
            return None
        if tool.is_method:
            instance = self.context_for(tool)
            if instance is None:
                reasons.append(
                    f"{tool.name} is a method and no {tool.owner} was given to engine.set_context()"
                )
                return None
            args = (instance, *args)
        check = tool.pre_check
        if check is None:
            return Candidate(child, tool, args, kwargs, 1.0, None)
        # Without params the recorded bytes name the call; with them, the resolved args do.
        fresh = self._capture(
            tool, args, kwargs, recorded, None if templated else step.call, captures
        )
        if isinstance(fresh, Exception):
            reasons.append(f"the pre-check capture of {tool.name} raised {fresh!r}")
            if failed is not None:
                failed.append(child.id)
            return None
        try:
            found = child.pre.match(check, fresh, self._hints)
        except CompareRaised as raised:
            reasons.append(f"the pre-check compare of {tool.name} raised {raised.error!r}")
            if failed is not None:
                failed.append(child.id)
            return None
        if found is None:
            if failed is not None:
                reasons.append(
                    f"the pre-check of {tool.name} failed: {self._explain(child.pre, fresh)}"
                )
                failed.append(child.id)
            return None
        return Candidate(
            child,
            tool,
            args,
            kwargs,
            found[0],
            Matched(child.id, "pre", found[1], fresh, check.learn),
        )

    def _capture(
        self,
        tool: Tool,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        recorded: tuple[tuple[Any, ...], dict[str, Any]],
        call: bytes | None,
        captures: dict[tuple[str, bytes], Snapshot | Exception],
    ) -> Snapshot | Exception:
        """The pre-check capture for a call, taken once per distinct tool and arguments
        (``recorded``: the call as recorded, without ``self`` or injected arguments)."""
        if call is None:
            try:
                call = encode(recorded)
            except EncodeError as error:
                return error
        key = (tool.name, call)
        fresh = captures.get(key)
        if fresh is None:
            try:
                fresh = tool.capture(tool.pre_check, "pre", args, kwargs)
            except Exception as error:
                fresh = error
            captures[key] = fresh  # type: ignore[assignment]
        return fresh  # type: ignore[return-value]

    @staticmethod
    def _explain(snapshots: SnapshotSet, fresh: Snapshot) -> str:
        latest_key = snapshots.latest()  # not a copy of them all: a miss must stay cheap
        if latest_key is None:
            return f"now {_describe(fresh.value)}, nothing recorded"
        try:
            latest = snapshots.value(latest_key, fresh.value)
        except (KeyError, DecodeError):
            latest = "?"
        return (
            f"now {_describe(fresh.value)}, matched none of {len(snapshots)} recorded "
            f"snapshot(s) (latest {_describe(latest)})"
        )


def _argument(tool: Tool, where: list[Any]) -> str:
    """The argument at ``where`` in a call's ``(args, kwargs)``, named as the tool names it."""
    kind, at, *inside = where
    name = tool.argument_name(at) if kind == 0 else str(at)
    return name + _place(inside)


def _place(inside: list[Any]) -> str:
    return "".join(f"[{part!r}]" for part in inside)


def _user_args(tool: Tool, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A call's arguments as the agent passed them: without the injected ``self``."""
    return args[1:] if tool.is_method else args
