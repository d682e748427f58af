"""muscle-mem under LangChain 1.x and LangGraph: an agent middleware and a ToolNode hook.

::

    from muscle_mem.integrations.langchain import MuscleMemMiddleware

    mm = MuscleMemMiddleware(engine, tools, checks={"type_into": Check(capture=field)})
    agent = create_agent(model, tools, middleware=[mm])
    outcome = mm.invoke(agent, "fill the form for Jane", params={"name": "Jane"})
    outcome.result["messages"]          # the agent's own result: {"messages": [...]}
    # LangGraph alone: ToolNode(tools, wrap_tool_call=mm.wrap_tool_call,
    #                           awrap_tool_call=mm.awrap_tool_call)

**Where it records.** At the framework's tool layer (``wrap_tool_call`` /
``awrap_tool_call``, the hook ``create_agent`` middleware and ``ToolNode`` share): every
LangChain tool is registered with ``engine.tool(name=<its LangChain name>, version=<a
hash of its description, its argument schema and its function's source>)``, and a call is
recorded with the arguments the model produced, never the framework's context. The
context (the request, its ``ToolRuntime``) reaches the tool through ``inject=``: at
record time the framework's own handler runs it, so middleware further in, argument
validation and ``ToolRuntime`` injection work as without muscle-mem; at replay the adapter
invokes the tool itself, outside the graph, with a ``ToolRuntime`` it builds from the
run's ``context=`` (and ``store=``), a state holding the messages replayed so far, and a
fresh tool call id. A tool that answers with an error (a ``ToolMessage`` with status
``"error"``) is never recorded.

**Why a session, not an agent for ``engine.set_agent``.** The framework drives the run:
tool calls arrive in the middleware, from the graph's worker threads or tasks, in
parallel. :meth:`MuscleMemMiddleware.invoke` opens ``engine.session(task, ...)``,
replays, and only on a miss or handoff invokes the graph, the middleware recording each
call into that session (found through a context variable the graph's threads and
tasks inherit). The engine's agent stays free for another use, and a hand-built LangGraph
graph needs no middleware support: ``ToolNode``'s ``wrap_tool_call`` is enough.

**A hit** runs no model: the replayed calls come back as the graph's own result,
``{"messages": [HumanMessage(task), AIMessage(tool_calls=...), ToolMessage, ...,
AIMessage(answer)]}``, grouped into the model turns they were recorded in (the parallel
calls of one turn in one ``AIMessage``). The answer is the recorded one with this run's
params (and values from this run's results) filled in; ``final="llm"`` spends one model
call on a fresh answer from the replayed history instead, its tokens logged with the hit.

**A handoff** invokes the graph with the replayed calls as its history (each an
``AIMessage`` with its tool call and the ``ToolMessage`` of its live result) and a note
saying where and why replay stopped, so the model makes only the missing calls; they are
recorded after the replayed ones.

**Parallel tool calls** (one ``AIMessage`` with several tool calls, run concurrently by
the graph) are recorded in the order the model listed them: a call starts its step only
once the call before it in that message has started its own, then runs concurrently.

**Decorated tools.** A function decorated with ``@engine.function`` under ``@tool`` may
take what LangChain injects (a ``ToolRuntime``, an ``InjectedToolArg``-marked argument, a
``RunnableConfig``) without ``inject=``: importing this module registers those types
(:func:`muscle_mem.register_context_type`), so they are left out of its steps.

**Checks** are given per LangChain tool name: ``checks={name: Check}`` are pre-checks
(what must hold before the call is safe to repeat), ``post_checks={name: Check}`` are
judged after it. A capture is called with the tool's arguments by name, as the model
gave them (``capture=lambda selector, text: page[selector]``).

**Usage**: the ``usage_metadata`` of every model message the graph produced in a run is
summed and reported into it (``Outcome.tokens``), so ``muscle-mem stats`` counts what a
hit saved. LangChain's messages carry no cost, so none is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import inspect
import json
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Protocol

from muscle_mem import Check, ConfigurationError, Engine, Outcome, Session, register_context_type

from ._common import final_option, handoff_note, tool_checks

try:
    from langchain.agents.middleware import AgentMiddleware
    from langchain_core.messages import (
        AIMessage,
        AnyMessage,
        BaseMessage,
        HumanMessage,
        ToolMessage,
    )
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import (
        BaseTool,
        InjectedToolArg,
        InjectedToolCallId,
        StructuredTool,
        Tool,
    )
    from langgraph.prebuilt.tool_node import (
        InjectedState,
        InjectedStore,
        ToolCallRequest,
        ToolRuntime,
    )
except ImportError as error:  # pragma: no cover - the message is the point
    raise ImportError(
        "muscle_mem.integrations.langchain needs LangChain 1.x and LangGraph: "
        "pip install 'muscle-mem[langchain]'"
    ) from error

__all__ = ["MuscleMemMiddleware"]

# What LangChain injects into a tool, never the model: a ToolRuntime, an argument marked
# Annotated[..., InjectedToolArg] (InjectedState, InjectedStore, InjectedToolCallId...)
# and a RunnableConfig. A tool decorated with @engine.function that takes one records
# without inject=: it is left out of its steps, and replay takes it from inject=.
register_context_type(ToolRuntime, InjectedToolArg, RunnableConfig)

log = logging.getLogger("muscle_mem")

# The name under which each proxy takes the framework's context (inject=): never part of
# a recorded step, so a tool's own argument of that name is refused rather than shadowed.
CALL = "langchain_call"
# How long a parallel call waits for the call before it (in its model turn) to start its
# step. Only an outer middleware that answers that call without running it can make it
# wait so long; the order is then the order the calls came, and a warning says so.
ORDER_TIMEOUT_S = 10.0
FINALS = {
    "recorded": "the recorded answer, no model call",
    "llm": "one model call on the replayed history",
}
# Tools whose code is their func/coroutine; any other BaseTool's is its class's _run.
_SOURCE_TOOLS = (StructuredTool, Tool)

# The run in progress: the graph's worker threads and tasks inherit it from invoke().
_recording: ContextVar[_Recording | None] = ContextVar("muscle_mem_langchain", default=None)


class MuscleMemMiddleware(AgentMiddleware):
    """Record an agent's tool calls and replay them: see the module's docstring.

    ``tools`` are the LangChain tools the agent uses (those it may call; a tool not
    given here is run, never recorded). ``checks`` and ``post_checks`` map a tool's name
    to a :class:`~muscle_mem.Check`. ``final`` says what a hit answers: ``"recorded"``
    (default: the recorded answer, params filled in, no model call) or ``"model"`` (one
    call of ``model`` with the replayed history, for an answer that reflects today's
    results). ``store`` is the LangGraph store replayed tools taking ``InjectedStore``
    or a ``ToolRuntime`` get.
    """

    def __init__(
        self,
        engine: Engine,
        tools: Iterable[BaseTool],
        *,
        checks: Mapping[str, Check] | None = None,
        post_checks: Mapping[str, Check] | None = None,
        final: str = "recorded",
        model: Any = None,
        store: Any = None,
    ) -> None:
        if not isinstance(engine, Engine):
            raise ConfigurationError(
                f"MuscleMemMiddleware(engine, tools) takes a muscle_mem.Engine first, "
                f"got {type(engine).__qualname__}"
            )
        final_option(final, FINALS)
        if final == "llm" and model is None:
            raise ConfigurationError(
                "final='llm' answers a hit with one model call: pass the chat model, "
                "MuscleMemMiddleware(..., final='llm', model=model)"
            )
        self.engine = engine
        self.final = final
        self.model = model
        self.store = store
        self._specs: dict[str, _Spec] = {}
        for tool in tools:
            if not isinstance(tool, BaseTool):
                raise ConfigurationError(
                    f"MuscleMemMiddleware takes LangChain tools (BaseTool, e.g. made with "
                    f"@tool), got {type(tool).__qualname__}"
                )
            if tool.name in self._specs:
                raise ConfigurationError(f"two of the tools given are named {tool.name!r}")
            self._specs[tool.name] = _Spec.of(tool)
        if not self._specs:
            raise ConfigurationError("MuscleMemMiddleware needs the agent's tools, got none")
        call, among = "MuscleMemMiddleware", "the tools given"
        pre = tool_checks(checks, "checks", call=call, known=self._specs, among=among)
        post = tool_checks(post_checks, "post_checks", call=call, known=self._specs, among=among)
        for name, spec in self._specs.items():
            engine.tool(
                _proxy(name),
                name=name,
                version=spec.version,
                inject=[CALL],
                pre_check=_adapted(pre.get(name)),
                post_check=_adapted(post.get(name)),
            )

    # -- the hooks: create_agent's middleware, or ToolNode(wrap_tool_call=...) -------

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Any]
    ) -> Any:
        recording = self._recording_for(request)
        if recording is None:
            return handler(request)
        return recording.record(request, handler)

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[Any]]
    ) -> Any:
        recording = self._recording_for(request)
        if recording is None:
            return await handler(request)
        return await recording.arecord(request, handler)

    def _recording_for(self, request: ToolCallRequest) -> _Recording | None:
        recording = _recording.get()
        if recording is None or recording.owner is not self:
            return None  # the graph runs outside invoke(): nothing to record into
        if request.tool_call["name"] not in self._specs:
            return None
        return recording

    # -- running a task ------------------------------------------------------------

    def invoke(
        self,
        graph: Any,
        task: str,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        context: Any = None,
        config: RunnableConfig | None = None,
        about: Any = None,
        mode: str | None = None,
    ) -> Outcome:
        """Run ``task`` (the user's message) through the cache: replay it, else invoke
        ``graph`` (a ``create_agent`` agent, or any graph whose state has ``messages``)
        and record its tool calls. The :class:`~muscle_mem.Outcome`'s ``result`` is the
        graph's result, ``{"messages": [...]}``, on a hit as on a miss or handoff.
        ``context`` is the graph's runtime context (``graph.invoke(..., context=)``);
        ``params``, ``tags``, ``about`` and ``mode`` are ``engine(...)``'s."""
        _check_task(task)
        replaying = _Replaying(self, task, context, config, sync=True)
        with self._session(task, params, tags, about, mode, replaying) as session:
            outcome = _replay(session)
            if outcome.hit:
                messages = replaying.turns(_recorded_turns(outcome.result))
                if self.final == "llm":
                    return _answered(session, messages, self.model.invoke(messages))
                return _answered(session, messages, _recorded_answer(outcome.result))
            messages = _start(task, session, replaying)
            with self._record_into(session, sync=True) as recording:
                result = graph.invoke({"messages": messages}, config, **_context(context))
            return _commit(session, recording, messages, result)

    async def ainvoke(
        self,
        graph: Any,
        task: str,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        context: Any = None,
        config: RunnableConfig | None = None,
        about: Any = None,
        mode: str | None = None,
    ) -> Outcome:
        """:meth:`invoke` for async code: ``graph.ainvoke``, async tools awaited."""
        _check_task(task)
        replaying = _Replaying(self, task, context, config, sync=False)
        with self._session(task, params, tags, about, mode, replaying) as session:
            outcome = await session.areplay(commit_hit=False)
            if outcome.hit:
                messages = replaying.turns(_recorded_turns(outcome.result))
                if self.final == "llm":
                    return _answered(session, messages, await self.model.ainvoke(messages))
                return _answered(session, messages, _recorded_answer(outcome.result))
            messages = _start(task, session, replaying)
            with self._record_into(session, sync=False) as recording:
                result = await graph.ainvoke({"messages": messages}, config, **_context(context))
            return _commit(session, recording, messages, result)

    @contextlib.contextmanager
    def _record_into(self, session: Session, *, sync: bool) -> Iterator[_Recording]:
        """While the graph runs: its tool calls (in its threads and tasks, which inherit
        the context) record into ``session``."""
        recording = _Recording(self, session, sync=sync)
        token = _recording.set(recording)
        try:
            yield recording
        finally:
            _recording.reset(token)

    def _session(
        self,
        task: str,
        params: Mapping[str, Any] | None,
        tags: Iterable[str] | None,
        about: Any,
        mode: str | None,
        replaying: _Replaying,
    ) -> Session:
        return self.engine.session(
            task, params=params, tags=tags, about=about, mode=mode, inject={CALL: replaying}
        )


# -- one tool ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Spec:
    """A LangChain tool, with what replay must inject into it as the graph would."""

    tool: BaseTool
    version: str
    runtime: tuple[str, ...]  # arguments given the ToolRuntime
    state: tuple[tuple[str, str | None], ...]  # InjectedState: (argument, field or None)
    store: tuple[str, ...]  # InjectedStore

    @staticmethod
    def of(tool: BaseTool) -> _Spec:
        schema = tool.tool_call_schema
        model_args = _fields(schema)
        if CALL in model_args:
            raise ConfigurationError(
                f"tool {tool.name!r} has an argument named {CALL!r}, the name muscle-mem's "
                "LangChain adapter passes the framework's context under; rename it"
            )
        runtime, state, store = [], [], []
        for name, field in _fields(tool.get_input_schema()).items():
            if name in model_args:
                continue
            marks = getattr(field, "metadata", ())
            annotation = getattr(field, "annotation", None)
            if _is_runtime(annotation):
                runtime.append(name)
            elif any(_is_mark(m, InjectedState) for m in marks):
                found = next(m for m in marks if _is_mark(m, InjectedState))
                state.append((name, getattr(found, "field", None)))
            elif any(_is_mark(m, InjectedStore) for m in marks):
                store.append(name)
            elif not any(_is_mark(m, InjectedToolCallId) for m in marks):
                raise ConfigurationError(
                    f"tool {tool.name!r} takes {name!r}, injected by the framework, which "
                    "muscle-mem can't supply when it replays the tool outside the graph; "
                    "it supplies ToolRuntime, InjectedState, InjectedStore and "
                    "InjectedToolCallId"
                )
        return _Spec(tool, _version(tool, schema), tuple(runtime), tuple(state), tuple(store))


def _fields(schema: Any) -> dict[str, Any]:
    fields = getattr(schema, "model_fields", None)
    if isinstance(fields, dict):
        return fields
    # A tool built from a JSON schema (an MCP tool through langchain-mcp-adapters).
    properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
    return dict.fromkeys(properties)


def _is_runtime(annotation: Any) -> bool:
    target = getattr(annotation, "__origin__", annotation)
    return inspect.isclass(target) and issubclass(target, ToolRuntime)


def _is_mark(mark: Any, kind: type) -> bool:
    return isinstance(mark, kind) or (inspect.isclass(mark) and issubclass(mark, kind))


def _version(tool: BaseTool, schema: Any) -> str:
    """What stands for the tool's code: its description and argument schema (what the
    model sees), and its function's source where it has one, so that editing any of
    them never replays steps recorded before."""
    shape = schema.model_json_schema() if hasattr(schema, "model_json_schema") else schema
    parts = [tool.description or "", json.dumps(shape, sort_keys=True, default=repr)]
    for func in (getattr(tool, "func", None), getattr(tool, "coroutine", None)):
        if func is not None:
            try:
                parts.append(inspect.getsource(func))
            except (OSError, TypeError):  # a builtin, a REPL: the schema stands alone
                parts.append(getattr(func, "__qualname__", repr(func)))
    if not isinstance(tool, _SOURCE_TOOLS):  # a BaseTool subclass: its _run holds the code
        with_run = getattr(type(tool), "_run", None)
        try:
            parts.append(inspect.getsource(with_run) if with_run else "")
        except (OSError, TypeError):
            parts.append(type(tool).__qualname__)
    return "lc1:" + hashlib.blake2b("\n".join(parts).encode(), digest_size=16).hexdigest()


def _proxy(name: str) -> Callable[..., Any]:
    """The callable registered as tool ``name``: it runs the call in whatever context is
    injected, the framework's handler (recording) or the adapter's replay."""

    async def call(*, langchain_call: _Runner, **arguments: Any) -> Any:
        return await langchain_call.run(name, arguments)

    call.__qualname__ = call.__name__ = f"langchain:{name}"
    return call


def _adapted(check: Check | None) -> Check | None:
    """``check`` with its capture called on the model's arguments alone, the injected
    context left out; fingerprinted as the user's capture (``__wrapped__``)."""
    if check is None:
        return None
    capture = check.capture

    @functools.wraps(capture)
    def by_arguments(*, langchain_call: Any = None, **arguments: Any) -> Any:
        return capture(**arguments)

    return Check(by_arguments, check.compare, check.threshold, check.learn)


def _result_of(message: ToolMessage) -> Any:
    """A step's result: the ToolMessage's content, parsed when it is a JSON object or
    list (LangChain serialises a tool's dict that way), so that values in it can be
    traced by provenance; a value inside a longer string can't be."""
    content = message.content
    if isinstance(content, str) and content[:1] in ("{", "["):
        try:
            return json.loads(content)
        except ValueError:
            pass
    return content


class _ToolFailed(Exception):
    """The tool answered with an error ToolMessage: the framework gets it, and the call is
    not recorded (a session drops a call whose tool raised)."""

    def __init__(self, message: ToolMessage) -> None:
        super().__init__(message.content)
        self.message = message


# -- recording: one invoke() of the graph --------------------------------------------


class _Runner(Protocol):
    """What a proxy is injected with: the framework's handler while recording
    (:class:`_Live`), the adapter's own invocation at replay (:class:`_Replaying`)."""

    async def run(self, name: str, arguments: dict[str, Any]) -> Any: ...


class _Recording:
    """The session a graph's tool calls record into, with their order and turns."""

    def __init__(self, owner: MuscleMemMiddleware, session: Session, *, sync: bool) -> None:
        self.owner, self.session, self.sync = owner, session, sync
        self.lock = threading.Lock()
        self.sizes: dict[tuple[str, ...], int] = {}  # each model turn's recorded calls
        self.started: dict[str, threading.Event] = {}
        self.astarted: dict[str, asyncio.Event] = {}

    def record(self, request: ToolCallRequest, handler: Callable[..., Any]) -> Any:
        turn, call_id, before = self._place(request)
        if before is not None and not self._event(before).wait(ORDER_TIMEOUT_S):
            _late(request, before)
        live = _Live(self, request, handler, call_id)
        try:
            self.session.call(request.tool_call["name"], langchain_call=live, **_args(request))
        except _ToolFailed as failed:
            return failed.message
        finally:
            self.mark_started(call_id)
        self._recorded(turn)
        return live.message

    async def arecord(self, request: ToolCallRequest, handler: Callable[..., Any]) -> Any:
        turn, call_id, before = self._place(request)
        if before is not None:
            try:
                await asyncio.wait_for(self._aevent(before).wait(), ORDER_TIMEOUT_S)
            except asyncio.TimeoutError:
                _late(request, before)
        live = _Live(self, request, handler, call_id)
        try:
            await self.session.acall(
                request.tool_call["name"], langchain_call=live, **_args(request)
            )
        except _ToolFailed as failed:
            return failed.message
        finally:
            self.mark_started(call_id)
        self._recorded(turn)
        return live.message

    def _place(self, request: ToolCallRequest) -> tuple[tuple[str, ...], str, str | None]:
        """The call's model turn (its AIMessage's id and tool call ids), its id, and the
        id of the call listed before it in that turn, which must start its step first."""
        call_id = request.tool_call.get("id") or f"unnamed-{id(request)}"
        message_id, ids = "", tuple[str, ...]((call_id,))
        for message in reversed(_messages(request.state)):
            if isinstance(message, AIMessage) and any(
                c.get("id") == call_id for c in message.tool_calls
            ):
                # The message's id too: a model may reuse call ids from turn to turn.
                message_id = message.id or ""
                ids = tuple(c.get("id") or "" for c in message.tool_calls)
                break
        turn = (message_id, *ids)
        with self.lock:
            self.sizes.setdefault(turn, 0)  # turns in the order they were first seen
        at = ids.index(call_id)
        return turn, call_id, ids[at - 1] if at > 0 else None

    def _event(self, call_id: str) -> threading.Event:
        with self.lock:
            return self.started.setdefault(call_id, threading.Event())

    def _aevent(self, call_id: str) -> asyncio.Event:
        with self.lock:
            return self.astarted.setdefault(call_id, asyncio.Event())

    def mark_started(self, call_id: str) -> None:
        """The call's step has its place (or it never will): the next one may start."""
        if self.sync:
            self._event(call_id).set()
        else:  # async calls all run on the graph's event loop, this thread
            self._aevent(call_id).set()

    def _recorded(self, turn: tuple[str, ...]) -> None:
        with self.lock:
            self.sizes[turn] += 1

    def turns(self) -> list[int]:
        with self.lock:
            return [size for size in self.sizes.values() if size]


class _Live:
    """A call the framework is making: its handler runs the tool, as without muscle-mem."""

    def __init__(
        self, recording: _Recording, request: ToolCallRequest, handler: Any, call_id: str
    ) -> None:
        self.recording, self.request, self.handler, self.call_id = (
            recording,
            request,
            handler,
            call_id,
        )
        self.message: Any = None

    async def run(self, name: str, arguments: dict[str, Any]) -> Any:
        self.recording.mark_started(self.call_id)  # its step has its number by now
        message = self.handler(self.request)
        if inspect.isawaitable(message):
            message = await message
        self.message = message
        if not isinstance(message, ToolMessage):
            raise ConfigurationError(
                f"tool {name!r} answered with a {type(message).__qualname__}, not a "
                "ToolMessage (a Command updating the graph's state?); muscle-mem can't "
                "replay a state update: leave this tool out of MuscleMemMiddleware's tools"
            )
        if message.status == "error":
            raise _ToolFailed(message)
        return _result_of(message)


def _args(request: ToolCallRequest) -> dict[str, Any]:
    args = request.tool_call.get("args") or {}
    if CALL in args:
        raise ConfigurationError(f"the model passed an argument named {CALL!r}")
    return dict(args)


def _late(request: ToolCallRequest, before: str) -> None:
    log.warning(
        "tool call %s waited %.0fs for call %s of its model turn to start and went ahead: "
        "their recorded order follows the calls, not the model's list",
        request.tool_call.get("id"),
        ORDER_TIMEOUT_S,
        before,
    )


def _messages(state: Any) -> list[Any]:
    if isinstance(state, dict):
        return list(state.get("messages", ()))
    if isinstance(state, list):
        return state
    return list(getattr(state, "messages", ()))


# -- replay: the adapter runs the tools outside the graph -----------------------------


class _Replaying:
    """Runs replayed calls as the graph's ToolNode would, keeping the messages they make."""

    def __init__(
        self,
        owner: MuscleMemMiddleware,
        task: str,
        context: Any,
        config: RunnableConfig | None,
        *,
        sync: bool,
    ) -> None:
        self.owner, self.context, self.sync = owner, context, sync
        self.config: RunnableConfig = config or {}
        self.history: list[AnyMessage] = [HumanMessage(task)]
        self.calls: list[tuple[dict[str, Any], ToolMessage]] = []

    async def run(self, name: str, arguments: dict[str, Any]) -> Any:
        spec = self.owner._specs[name]
        call_id = f"call_mm_{uuid.uuid4().hex[:16]}"
        tool_call = {"name": name, "args": dict(arguments), "id": call_id, "type": "tool_call"}
        asked = AIMessage("", tool_calls=[tool_call])
        state = {"messages": [*self.history, asked]}
        given = {**arguments, **self._injected(spec, state, call_id)}
        invocation = {**tool_call, "args": given}
        if self.sync:
            message = spec.tool.invoke(invocation, self.config)
        else:
            message = await spec.tool.ainvoke(invocation, self.config)
        if not isinstance(message, ToolMessage):
            raise ConfigurationError(
                f"tool {name!r} answered with a {type(message).__qualname__}, not a ToolMessage"
            )
        if message.status == "error":
            raise RuntimeError(f"tool {name!r} answered with an error: {message.content}")
        self.history += [asked, message]
        self.calls.append((tool_call, message))
        return _result_of(message)

    def _injected(self, spec: _Spec, state: dict[str, Any], call_id: str) -> dict[str, Any]:
        given: dict[str, Any] = {}
        if spec.runtime:
            runtime = ToolRuntime(
                state=state,
                context=self.context,
                config=self.config,
                stream_writer=lambda _chunk: None,  # nothing streams a replay
                tool_call_id=call_id,
                store=self.owner.store,
                tools=[s.tool for s in self.owner._specs.values()],
            )
            given.update(dict.fromkeys(spec.runtime, runtime))
        for name, field in spec.state:
            given[name] = state if field is None else state.get(field)
        if spec.store:
            if self.owner.store is None:
                raise ConfigurationError(
                    f"tool {spec.tool.name!r} takes an InjectedStore: give the store to "
                    "MuscleMemMiddleware(..., store=store) so replay can pass it"
                )
            given.update(dict.fromkeys(spec.store, self.owner.store))
        return given

    def handed_over(self, steps: int) -> list[AnyMessage]:
        """The history a handoff resumes from: the first ``steps`` replayed calls."""
        return self._grouped([1] * steps, self.calls[:steps])

    def turns(self, sizes: Sequence[int]) -> list[AnyMessage]:
        """A hit's messages: the task, then the replayed calls in their model turns."""
        if sum(sizes) != len(self.calls) or any(s <= 0 for s in sizes):
            sizes = [1] * len(self.calls)
        return [self.history[0], *self._grouped(sizes, self.calls)]

    @staticmethod
    def _grouped(
        sizes: Sequence[int], calls: Sequence[tuple[dict[str, Any], ToolMessage]]
    ) -> list[AnyMessage]:
        messages: list[AnyMessage] = []
        at = 0
        for size in sizes:
            group = calls[at : at + size]
            at += size
            messages.append(AIMessage("", tool_calls=[dict(c) for c, _ in group]))
            messages.extend(m for _, m in group)
        return messages


# -- a run's start and end -----------------------------------------------------------


def _check_task(task: Any) -> None:
    if not isinstance(task, str) or not task.strip():
        raise ConfigurationError(
            f"invoke(graph, task) takes the user's message as a non-empty string, got {task!r}"
        )


def _replay(session: Session) -> Outcome:
    """``session.replay()`` on one event loop for all its steps: the proxies are async
    (an async graph's handler must be awaited), and ``replay()`` would start a loop per
    step for them, a third of a hit's time. A hit is held open until it is answered, so
    a ``final="llm"`` call is logged with it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(session.areplay(commit_hit=False))
    return session.replay(commit_hit=False)  # a loop runs in this thread already


def _context(context: Any) -> dict[str, Any]:
    return {} if context is None else {"context": context}


def _start(task: str, session: Session, replaying: _Replaying) -> list[AnyMessage]:
    """What the graph starts from: the task, and after a handoff the replayed calls and
    a note saying where and why replay stopped, so the model makes only what is missing."""
    messages: list[AnyMessage] = [HumanMessage(task)]
    handoff = session.handoff
    if handoff is not None and handoff.steps:
        messages += replaying.handed_over(len(handoff.steps))
        messages.append(HumanMessage(handoff_note(len(handoff.steps), handoff.reason)))
    return messages


def _commit(
    session: Session, recording: _Recording, messages: list[AnyMessage], result: Any
) -> Outcome:
    produced = _messages(result)[len(messages) :]
    tokens = sum(_tokens(m) for m in produced if isinstance(m, AIMessage))
    if tokens:
        session.report_usage(tokens=tokens)
    handoff = session.handoff
    replayed = len(handoff.steps) if handoff is not None else 0
    answers = [m for m in produced if isinstance(m, AIMessage) and not m.tool_calls]
    recorded = {
        "answer": answers[-1].content if answers else None,
        "turns": [1] * replayed + recording.turns(),
    }
    outcome = session.commit(recorded)
    return dataclasses.replace(outcome, result=result)


def _tokens(message: Any) -> int:
    usage = getattr(message, "usage_metadata", None)
    return int(usage.get("total_tokens", 0)) if usage else 0


def _recorded_turns(recorded: Any) -> list[int]:
    turns = recorded.get("turns") if isinstance(recorded, dict) else None
    return [t for t in turns if isinstance(t, int)] if isinstance(turns, list) else []


def _recorded_answer(recorded: Any) -> AIMessage:
    answer = recorded.get("answer") if isinstance(recorded, dict) else None
    return AIMessage(answer if isinstance(answer, (str, list)) else "")


def _answered(session: Session, messages: list[AnyMessage], answer: BaseMessage) -> Outcome:
    """Log the hit held open, with the answer's tokens (a fresh one's), and return it with
    the graph's result: the task, the replayed calls and the answer."""
    tokens = _tokens(answer)
    if tokens:
        session.report_usage(tokens=tokens)
    outcome = session.commit()
    return dataclasses.replace(outcome, result={"messages": [*messages, answer]})
