"""One run of the engine, from its task key to its run log line.

A :class:`Run` owns a run's lifecycle and is used as a context manager. Made, it has
read the task key's tree and is ready to replay; :meth:`Run.replay_steps` (or
:meth:`Run.areplay_steps`) executes the steps :attr:`Run.replay` chooses. If replay does
not hit, :meth:`Run.record` starts recording; for the engine's own drivers
(``__call__``, ``arun``) :meth:`Run.agent` is the context the agent runs in, where its
tool calls are recorded and :func:`~muscle_mem.handoff` says what replay did, while a
:class:`~muscle_mem.session.Session` records the calls a framework hands it.
:meth:`Run.finish` freezes what the run changed into one
:class:`~muscle_mem.models.Changes`, commits it with the run's log line and returns the
:class:`~muscle_mem.models.Outcome`. An exception that leaves the ``with`` block (or
:meth:`Run.fail`) instead logs an error run and keeps nothing the agent recorded.

The run's :class:`~muscle_mem.models.Mode` says which of these happen: ``"record"``
replays nothing, ``"replay"`` never calls the agent, and ``"off"`` neither reads nor
writes the store (not even the run log), so the engine is a pass-through.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from .codec import encode_call
from .errors import (
    DecodeError,
    DivergenceError,
    EncodeError,
    MuscleMemWarning,
    ReplayMissError,
)
from .models import (
    Changes,
    Handoff,
    Mode,
    OnDivergence,
    Outcome,
    RecordedCall,
    RunRecord,
    Status,
)
from .provenance import Tracer, unused_params
from .recording import (
    Recorder,
    begin_agent,
    current_handoff,
    current_recorder,
    end_agent,
    inside_tool,
)
from .replay import Replay
from .store import Store
from .templates import Templater
from .tools import Tool
from .trie import Node, Tree

logger = logging.getLogger("muscle_mem")

# The engines already told that their agent ignores handoff(): told once, not every run.
_warned_ignored_handoff: weakref.WeakSet[object] = weakref.WeakSet()


class Run:
    """One run: replay first, then (if it must) the agent; one change set at the end."""

    def __init__(
        self,
        *,
        scope: object,
        store: Store,
        tools: Mapping[str, Tool],
        context_for: Callable[[Tool], Any],
        agent: Callable[..., Any] | None,
        policy: OnDivergence,
        task_key: str,
        tags: tuple[str, ...],
        params: dict[str, Any],
        about: str | None,
        started: tuple[float, float],
        mode: Mode = Mode.AUTO,
        provenance: bool = True,
        inject: Mapping[str, Any] | None = None,
        text: Callable[[], str] | None = None,
        approved_only: bool = False,
    ) -> None:
        self.started_at, self._started = started  # the clock's time, and perf_counter's
        self.store = store
        self.policy = policy
        self.task_key = task_key
        self.tags = tags
        self.params = params
        self.about = about
        self.mode = mode
        self.replays = mode is Mode.AUTO or mode is Mode.REPLAY  # else straight to the agent
        self.provenance = provenance
        self._scope = scope
        self.recorder: Recorder | None = None  # made when the agent runs: hits need none
        # "off" must not touch the store: an empty tree of the key stands in for its own.
        tree = Tree(task_key) if mode is Mode.OFF else store.tree(task_key)
        self.replay = Replay(
            tree,
            params,
            tools,
            context_for,
            provenance=provenance,
            inject=inject,
            approved_only=approved_only,
        )
        self._agent = agent
        # The task's words, worked out only by a run that records (hits never need them).
        self._text = text
        self._over = False  # finished or failed: logged once
        # Usage reported while no agent records: a hit's own model call (a session's
        # fresh answer), logged with the hit when it is finished.
        self.tokens, self.cost = 0, 0.0

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        if error is not None:
            self.fail(error)

    def replay_steps(self) -> bool:
        """Execute the steps replay chooses while their checks pass (none unless the
        mode replays); whether that was a hit. A tool that raises stops replay there."""
        replay = self.replay
        while self.replays and (step := replay.next()) is not None:
            try:
                result = step.tool.call_sync(step.args, step.kwargs)
            except Exception as error:
                replay.raised(error)
            else:
                replay.done(result)
        return replay.hit

    async def areplay_steps(self) -> bool:
        """:meth:`replay_steps` with async tools awaited."""
        replay = self.replay
        while self.replays and (step := replay.next()) is not None:
            try:
                result = await step.tool.call_async(step.args, step.kwargs)
            except Exception as error:
                replay.raised(error)
            else:
                replay.done(result)
        return replay.hit

    def record(self) -> Recorder:
        """Replay did not hit: the recorder the rest of the run's calls go to.

        Raises :class:`ReplayMissError` instead in mode ``"replay"``, and
        :class:`DivergenceError` when replay diverged and the policy is ``"raise"``.
        """
        replay = self.replay
        if self.mode is Mode.REPLAY:
            assert replay.reason is not None  # replay stopped: it says why
            raise ReplayMissError(replay.reason, replay.handoff() if replay.diverged else None)
        if self.mode is not Mode.OFF and replay.diverged and self.policy is OnDivergence.RAISE:
            raise DivergenceError(replay.handoff())
        self.recorder = Recorder(self._scope, self.params)
        return self.recorder

    @property
    def handoff(self) -> Handoff | None:
        """What the agent carries on from: the handoff when replay diverged and the
        policy is ``"handoff"``; None when it starts the task over (a miss, a restart)."""
        replay = self.replay
        handed_over = (
            self.mode is not Mode.OFF and replay.diverged and self.policy is OnDivergence.HANDOFF
        )
        return replay.handoff() if handed_over else None

    def replay_outcome(self) -> Outcome:
        """The outcome of replay alone, before the run is finished: a hit (with the
        recorded result), or, when the agent is to run, a miss or a handoff with the
        steps replay ran and why it stopped."""
        replay = self.replay
        status = Status.HIT if replay.hit else Status.HANDOFF if replay.diverged else Status.MISS
        return Outcome(
            status=status,
            result=replay.result if replay.hit else None,
            replayed=replay.replayed,
            diverged_at=replay.at if replay.diverged else None,
            reason=replay.reason,
            duration_s=time.perf_counter() - self._started,
            task_key=self.task_key,
            _steps=replay.steps,
        )

    @contextmanager
    def agent(self) -> Iterator[Callable[..., Any]]:
        """The agent, with its tool calls recorded into this run while it runs.

        Raises what :meth:`record` raises. In mode ``"off"`` the agent runs outside the
        run: its tools record nothing.
        """
        assert self._agent is not None, "a run driven by a session has no agent to call"
        recorder = self.record()
        run_token = current_recorder.set(recorder)
        # A pass-through's agent is still a run of this engine in progress, so a tool it
        # calls from a thread is never taken for another run's; its own calls pass
        # straight through, as calls inside a tool do.
        inside_token = inside_tool.set(self.mode is Mode.OFF)
        handoff_token = current_handoff.set(self.handoff)
        begin_agent(recorder)  # for the tools it calls from threads it starts
        try:
            yield self._agent
        finally:
            end_agent(recorder)
            current_handoff.reset(handoff_token)
            inside_tool.reset(inside_token)
            current_recorder.reset(run_token)

    def add_usage(self, tokens: int, cost: float) -> None:
        """Count usage (checked by the caller) that no agent's recorder holds: a hit's."""
        self.tokens += tokens
        self.cost += cost

    def finish(self, result: Any = None) -> Outcome:
        """Commit what the run changed and log it: replay hit, or the agent succeeded."""
        self._over = True
        if self.mode is Mode.OFF:  # a pass-through: nothing to commit, nothing logged
            duration = time.perf_counter() - self._started
            return Outcome(Status.MISS, result, duration_s=duration, task_key=self.task_key)
        replay, recorder = self.replay, self.recorder
        if recorder is None:  # replay hit: the agent never ran
            status, changes, reason = Status.HIT, replay.changes(), None
            result = replay.result
        else:
            status = Status.HANDOFF if replay.diverged else Status.MISS
            calls = tuple(recorder.calls)
            changes = self._learned(status, recorder, calls, result)
            reason = None
            if status is Status.MISS and not calls:
                # Else every such run is a miss "with nothing recorded" and no hint why.
                reason = (
                    f"{replay.reason}; the agent called no tool of this engine, so nothing "
                    "was recorded (are its tools decorated with this engine's @function or "
                    "@method, and called while the agent runs?)"
                )
        record = self._record(status, changes, reason)
        self._commit(changes, record)
        return Outcome(
            status=status,
            result=result,
            replayed=record.replayed,
            diverged_at=record.diverged_at,
            reason=record.reason,
            duration_s=record.duration_s,
            tokens=record.tokens,
            cost=record.cost,
            task_key=self.task_key,
            _steps=replay.steps,
        )

    def _learned(
        self, status: Status, recorder: Recorder, calls: tuple[RecordedCall, ...], result: Any
    ) -> Changes:
        """What the agent's run teaches the tree. An agent that carried on from a handoff
        (it read ``handoff()``) adds its calls after the replayed prefix, one trajectory
        with it; a miss, a restart, or an agent that never read ``handoff()`` (so could
        not know what replay did) records its calls as a path of its own from the root."""
        replay = self.replay
        handed_over = status is Status.HANDOFF and self.policy is OnDivergence.HANDOFF
        if handed_over and recorder.read_handoff and (calls or replay.replayed):
            # Snapshots replay learned belong only to such a continued path, and its
            # calls may use what the replayed steps returned.
            graft, learned, before = replay.node, True, replay.results
        elif calls:
            if handed_over and replay.replayed:
                self._warn_ignored_handoff()
            graft, learned, before = replay.tree.root, False, []
        else:
            return replay.changes()
        template = Templater(self.params).template(result)
        unused = None
        if self.provenance:
            calls, template, unused = self._trace(graft, before, recorder, calls, template)
        return replay.changes(
            graft_at=graft.id,
            calls=calls,
            learned=learned,
            result=self._keep(template, result),
            unused=unused,
        )._replace(text=None if self._text is None else self._text())

    def _trace(
        self,
        graft: Node,
        before: list[Any],
        recorder: Recorder,
        calls: tuple[RecordedCall, ...],
        result: Any,
    ) -> tuple[tuple[RecordedCall, ...], Any, bytes | None]:
        """The path's calls and result (templated) with the values they read from earlier
        results traced to them (see provenance.py), and the params it has no place for,
        with their values' digests (Changes.unused). ``before`` are the results of the
        replayed steps above ``graft``, which the path continues."""
        tracer = Tracer(self.params, [*before, *recorder.results])
        traced, used = tracer.trace_calls(calls, len(before), recorder.readable())
        result = tracer.trace(result, range(len(before) + len(traced)))
        with contextlib.suppress(DecodeError):  # else its params count as unused
            used |= self.replay.tree.path_params(graft)
        unused = [name for name in self.params if name not in used]
        return tuple(traced), result, unused_params(self.params, unused)

    def _keep(self, template: Any, result: Any) -> bytes | None:
        """The agent's result as the path's end keeps it: ``template``, the result
        templated as tool arguments are, encoded. A result that is not data does not
        stop the path being recorded; its hits return None."""
        try:
            return encode_call(template, "the agent's result")
        except EncodeError:
            # Named by type only: the message is the same for every run, so Python
            # shows it once, and a value that may be secret never reaches a log.
            warnings.warn(
                f"muscle-mem: the agent returned a {type(result).__qualname__}, which "
                "cannot be stored as data; the path is recorded, and its hits return "
                "None as their result",
                MuscleMemWarning,
                stacklevel=4,
            )
            return None

    def fail(self, error: BaseException) -> None:
        """The agent raised (or replay stopped under "raise", or in mode "replay"): keep
        nothing it recorded. Nothing at all once the run is over (finished or failed):
        a run is logged once."""
        if self._over:
            return
        self._over = True
        if self.mode is Mode.OFF:
            return  # a pass-through logs nothing, failures included
        replayed = isinstance(error, (DivergenceError, ReplayMissError))
        reason = self.replay.reason if replayed else repr(error)
        changes = self.replay.changes()
        self._commit(changes, self._record(Status.ERROR, changes, reason))

    def _warn_ignored_handoff(self) -> None:
        scope = self._scope
        if scope in _warned_ignored_handoff:
            return
        _warned_ignored_handoff.add(scope)
        logger.warning(
            "the agent of a handoff never called muscle_mem.handoff(), so it may have "
            "repeated the %d step(s) replay had already done (task %s); what it did is "
            "recorded as a path of its own from the start. To carry on instead, read "
            "muscle_mem.handoff() in the agent and skip the steps in its .steps",
            self.replay.replayed,
            self.task_key,
        )

    def _record(self, status: Status, changes: Changes, reason: str | None = None) -> RunRecord:
        replay, recorder = self.replay, self.recorder
        if reason is None and not replay.hit:
            reason = replay.reason
        if status is Status.ERROR:
            path = None
        elif changes.graft_at is not None:
            path = changes.end
        else:
            path = replay.node.id if replay.hit else None
        return RunRecord(
            task_key=self.task_key,
            tags=self.tags,
            params=tuple(self.params),
            status=status,
            replayed=replay.replayed,
            recorded=len(changes.path),
            diverged_at=replay.at if replay.diverged else None,
            reason=reason,
            started_at=self.started_at,
            duration_s=time.perf_counter() - self._started,
            tokens=self.tokens + (recorder.tokens if recorder is not None else 0),
            cost=self.cost + (recorder.cost if recorder is not None else 0.0),
            path=path,
            about=self.about,
        )

    def _commit(self, changes: Changes, record: RunRecord) -> None:
        self.store.commit(changes, record)
        logger.debug(
            "%s %s: replayed %d, recorded %d, %.4fs%s",
            record.status,
            self.task_key,
            record.replayed,
            record.recorded,
            record.duration_s,
            f" ({record.reason})" if record.reason else "",
        )
