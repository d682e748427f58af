"""Session: a run of the engine that a framework drives, one step at a time.

``engine(task)`` owns the control flow: it replays, then calls the agent. A hook that
lives inside a framework (a PydanticAI capability, a LangChain middleware, an MCP proxy
whose tool calls arrive as separate requests) cannot hand the engine its agent, so
:class:`Session` turns the run inside out. It is the same :class:`~muscle_mem.run.Run`
(the same replay, recording, commit and run log line), with each phase a call:

1. :meth:`Session.replay` (or :meth:`Session.areplay`) replays while the checks pass.
   A hit is committed there and then, unless ``commit_hit=False`` holds it open for
   the framework to answer it (one model call for a fresh answer, say) and
   :meth:`Session.commit` it with that call's usage; otherwise it returns the outcome
   so far (a miss, or a handoff with the steps replay ran and why it stopped) and the
   session records.
2. :meth:`Session.call` (or :meth:`Session.acall`) runs one of the engine's tools by
   name and records it, from any thread or asyncio task; calls take their places in the
   order they started, as a run's parallel tool calls do.
3. :meth:`Session.commit` stores the path and returns the final outcome;
   :meth:`Session.fail` (or an exception leaving the ``with`` block) logs an error run
   and keeps nothing.

A session's states, guarded by one lock, so misuse from any thread fails the same way::

    new --replay()--> recording --commit()/fail()--> over
      |--replay(commit_hit=False) hits--> held --commit()/fail()--> over
      \\--replay() hits, or raises; fail()--> over
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

from .errors import ConfigurationError
from .models import Handoff, Mode, OnDivergence, Outcome
from .recording import Recorder, check_usage, inside_tool
from .run import Run
from .tools import Tool

_NEW, _REPLAYING, _RECORDING, _OVER = "new", "replaying", "recording", "over"
_HELD = "a cache hit held open (commit_hit=False)"
_HIT = "it was a cache hit"


class Session:
    """One run of a task whose steps a framework drives: see the module's docstring.

    Made by :meth:`Engine.session <muscle_mem.Engine.session>`. Use it as a context
    manager (``with`` or ``async with``): an exception leaving the block fails the
    session (unless it is over), and leaving it after :meth:`replay` without
    :meth:`commit` or :meth:`fail` fails it and raises :class:`ConfigurationError`,
    since what it recorded would otherwise be lost silently.

    On a hit, :meth:`replay` has committed the run: :meth:`commit` is then a no-op that
    returns the hit's outcome (so a hook may call it either way), :meth:`fail` a no-op,
    and :meth:`call` an error, since the task is done. With ``replay(commit_hit=False)``
    the hit is held open instead: :meth:`report_usage` adds the usage of what the
    framework spends answering it, and :meth:`commit` logs the hit with that usage (or
    :meth:`fail` logs an error), so ``muscle-mem stats`` counts every token.

    Only calls made through :meth:`call` are recorded: the session is named, never set
    in a context variable, so a decorated tool the framework calls directly records
    nothing here (nor does :func:`muscle_mem.report_usage`; use :meth:`report_usage`).
    """

    def __init__(self, run: Run, tools: Mapping[str, Tool]) -> None:
        self._run = run
        self._tools = tools
        self._lock = threading.Lock()
        self._state = _NEW
        self._ended = ""  # why the session is over, for the messages of later calls
        self._running = 0  # calls in progress: commit() must not leave one behind
        self._recorder: Recorder | None = None
        self._handoff: Handoff | None = None
        self._outcome: Outcome | None = None  # the hit's, or the committed one

    def __repr__(self) -> str:
        return f"<muscle_mem Session {self._run.task_key} {self._state}>"

    @property
    def task_key(self) -> str:
        return self._run.task_key

    @property
    def handoff(self) -> Handoff | None:
        """After :meth:`replay` stopped part-way under ``on_divergence="handoff"``: the
        steps it ran and why it stopped. The framework carries on from there, and its
        calls are recorded after those steps. None when the framework should do the
        whole task (a miss, ``on_divergence="restart"``, or before :meth:`replay`)."""
        return self._handoff

    # -- replay --------------------------------------------------------------------

    def replay(self, *, commit_hit: bool = True) -> Outcome:
        """Replay the recorded steps while their checks pass; the outcome so far.

        A hit (truthy) is committed and ends the session; with ``commit_hit=False`` it
        is held open until :meth:`commit` (or :meth:`fail`), which must follow, so that
        usage reported in between is logged with it. Otherwise the outcome is a
        miss, or a handoff whose ``steps``, ``diverged_at`` and ``reason`` say what
        replay did and why it stopped; the session then records calls. Raises as
        ``engine()`` does: :class:`ReplayMissError` in mode ``"replay"`` and
        :class:`DivergenceError` under ``on_divergence="raise"`` (the run logged as an
        error, the session over). Async tools are run to completion; in async code use
        :meth:`areplay`.
        """
        self._start_replay(commit_hit)
        try:
            hit = self._run.replay_steps()
        except BaseException as error:
            self._end_failed(error)
            raise
        return self._replayed(hit, commit_hit)

    async def areplay(self, *, commit_hit: bool = True) -> Outcome:
        """:meth:`replay` with async tools awaited."""
        self._start_replay(commit_hit)
        try:
            hit = await self._run.areplay_steps()
        except BaseException as error:
            self._end_failed(error)
            raise
        return self._replayed(hit, commit_hit)

    def _start_replay(self, commit_hit: object) -> None:
        if not isinstance(commit_hit, bool):
            raise ConfigurationError(
                f"replay(commit_hit=...) takes True or False, got {commit_hit!r}"
            )
        with self._lock:
            if self._state is not _NEW:
                raise ConfigurationError(
                    f"session.replay() runs once, first, and this session is {self._where()}; "
                    "start a new engine.session(...) to replay again"
                )
            self._state = _REPLAYING

    def _replayed(self, hit: bool, commit_hit: bool) -> Outcome:
        run = self._run
        if hit and not commit_hit:
            self._outcome = run.replay_outcome()
            with self._lock:
                self._state = _HELD
            return self._outcome
        if hit:
            try:
                outcome = run.finish()
            except BaseException:  # the store failed: the run is over, nothing logged
                self._end("failed")
                raise
            self._outcome = outcome
            self._end(_HIT)
            return outcome
        try:
            recorder = run.record()
        except BaseException as error:  # mode "replay", or on_divergence="raise"
            self._end_failed(error)
            raise
        # The framework is handed the outcome (and the handoff) directly, so its calls
        # carry on from where replay stopped, as an agent's that read handoff() do.
        recorder.read_handoff = run.policy is OnDivergence.HANDOFF
        self._handoff = run.handoff
        with self._lock:
            self._recorder = recorder
            self._state = _RECORDING
        return run.replay_outcome()

    # -- recording -----------------------------------------------------------------

    def call(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run the engine's tool ``name`` with these arguments and record the call (a
        method tool takes its instance first; injected arguments are passed here like
        any other and left out of the step). Returns what the tool returned; if it
        raises, the call is not recorded and the exception propagates. Thread-safe. An
        async tool is run to completion; in async code use :meth:`acall`."""
        tool, recorder = self._enter_call(name, "call")
        try:
            if self._run.mode is Mode.OFF:  # a pass-through: nothing records
                token = inside_tool.set(True)
                try:
                    return tool.call_sync(args, kwargs)
                finally:
                    inside_tool.reset(token)
            return tool.call_recorded(recorder, args, kwargs)
        finally:
            self._leave_call()

    async def acall(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """:meth:`call` from async code: an async tool is awaited, a sync one called."""
        tool, recorder = self._enter_call(name, "acall")
        try:
            if self._run.mode is Mode.OFF:
                token = inside_tool.set(True)
                try:
                    return await tool.call_async(args, kwargs)
                finally:
                    inside_tool.reset(token)
            return await tool.acall_recorded(recorder, args, kwargs)
        finally:
            self._leave_call()

    def _enter_call(self, name: str, method: str) -> tuple[Tool, Recorder]:
        with self._lock:
            if self._state is not _RECORDING:
                raise ConfigurationError(
                    f"session.{method}({name!r}): the session is {self._where()}; calls are "
                    "recorded after session.replay() missed or handed off, until commit()"
                )
            tool = self._tools.get(name)
            if tool is None:
                known = ", ".join(repr(n) for n in sorted(self._tools)[:10]) or "none"
                raise ConfigurationError(
                    f"session.{method}({name!r}): this engine has no tool named {name!r} "
                    f"(it has {known}); register it with engine.tool(call, name={name!r})"
                )
            assert self._recorder is not None
            self._running += 1
            return tool, self._recorder

    def _leave_call(self) -> None:
        with self._lock:
            self._running -= 1

    def report_usage(self, tokens: int = 0, cost: float = 0.0) -> None:
        """Add a model call's tokens and cost to this session's run, as
        :func:`muscle_mem.report_usage` does inside an agent; while the session records
        (after a :meth:`replay` that did not hit) or holds a hit (``commit_hit=False``),
        before :meth:`commit`."""
        check_usage(tokens, cost)
        with self._lock:
            if self._state is _HELD:
                self._run.add_usage(tokens, cost)
                return
            if self._state is not _RECORDING:
                raise ConfigurationError(
                    f"session.report_usage(): the session is {self._where()}; usage counts "
                    "toward a run the framework is doing, after replay() and before commit() "
                    "(on a hit, only one held open with replay(commit_hit=False))"
                )
            assert self._recorder is not None
            self._recorder.add_usage(tokens, cost)

    # -- the end -------------------------------------------------------------------

    def commit(self, result: Any = None) -> Outcome:
        """The framework finished the task with ``result``: store the recorded path (its
        end keeps ``result``, templated, for hits to return) and log the run; the final
        :class:`Outcome`. After a committed hit, the hit's outcome, unchanged. A hit held
        open (``commit_hit=False``) is logged now, with the usage reported since; a hit
        learns nothing, so ``result`` is stored nowhere, but it is the outcome's result
        when it is not None (the framework's answer; else the recorded one)."""
        with self._lock:
            if self._state is _OVER and self._ended == _HIT:
                assert self._outcome is not None
                return self._outcome
            if self._state is _HELD:
                # Over before the store is written: if it fails, nothing is logged (as
                # for a hit replay() commits), and the session does not end twice.
                self._state, self._ended = _OVER, "failed"
                outcome = self._run.finish()
                self._ended = _HIT
                if result is not None:
                    outcome = dataclasses.replace(outcome, result=result)
                self._outcome = outcome
                return outcome
            if self._state is not _RECORDING:
                raise ConfigurationError(
                    f"session.commit(): the session is {self._where()}; commit() ends a "
                    "session once, after session.replay()"
                )
            if self._running:
                raise ConfigurationError(
                    f"session.commit(): {self._running} call(s) of this session are still "
                    "running; commit once they have returned, so that they are recorded"
                )
            self._state, self._ended = _OVER, "committed"
        outcome = self._outcome = self._run.finish(result)
        return outcome

    def fail(self, error: BaseException) -> None:
        """The framework failed the task: log an error run with ``error`` as its reason
        and keep nothing the session recorded. A no-op after a committed hit, which
        stands; a hit held open (``commit_hit=False``) is logged as an error instead."""
        if not isinstance(error, BaseException):
            raise ConfigurationError(
                f"session.fail(error) takes the exception that ended the task, got {error!r}"
            )
        with self._lock:
            if self._state is _OVER and self._ended == _HIT:
                return
            if self._state is _OVER:
                raise ConfigurationError(
                    f"session.fail(): the session is {self._where()}; it ends once"
                )
        self._end_failed(error)

    def _end_failed(self, error: BaseException) -> None:
        self._end("failed")
        self._run.fail(error)

    def _end(self, why: str) -> None:
        with self._lock:
            self._state, self._ended = _OVER, why

    def _where(self) -> str:
        """The state, as the messages of misuse say it."""
        if self._state is _OVER:
            return f"over ({self._ended})"
        if self._state is _NEW:
            return "new: call session.replay() (or await session.areplay()) first"
        return self._state

    # -- as a context manager ------------------------------------------------------

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        with self._lock:
            state = self._state
        if error is not None:
            if state is not _OVER:
                self._end_failed(error)
            return
        if state is _RECORDING or state is _REPLAYING or state is _HELD:
            left = ConfigurationError(
                "the session's with-block ended without session.commit(result) or "
                "session.fail(error): nothing it recorded was kept, and the run is logged "
                "as an error (a hit held open with commit_hit=False too); commit (or fail) "
                "the session before leaving the block"
            )
            self._end_failed(left)
            raise left

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        self.__exit__(kind, error, traceback)
