"""muscle-mem under the OpenAI Agents SDK (``pip install 'muscle-mem[openai-agents]'``).

::

    from muscle_mem.integrations.openai_agents import CachedRunner

    runner = CachedRunner(engine, agent, checks={"type_into": Check(capture=selector)})
    out = await runner.run("fill the form for Jane", params={"name": "Jane"}, context=page)
    out.status, out.replayed, out.result.final_output   # out.result: an agents.RunResult

**Why a runner, over** ``engine.session``. The SDK has no hook that may end a run
before its first model call, so a hit is decided before ``Runner.run``, and the
adapter, not the SDK, drives the run: :meth:`CachedRunner.run` opens an
``engine.session(input, params=, tags=)``, replays, and only on a miss or a handoff
calls ``Runner.run``. A session (rather than ``engine.set_agent``) because calls are
recorded into it by name from the SDK's tool tasks, and the engine keeps no agent, so
one engine serves several runners.

**Recording (the tool layer).** Each :class:`agents.FunctionTool` of the agent becomes
an engine tool under its SDK name (``engine.tool(..., name=tool.name, version=...)``;
the version hashes its description, its JSON schema and, for ``@function_tool``
functions, their source, so an edited tool never replays old steps). The runner runs a
clone of the agent whose tools' ``on_invoke_tool`` records the call, with the JSON
arguments the model produced as the step's arguments by name. The SDK's
``ToolContext`` is an injected argument (``inject=``): never recorded, and at replay
a ``ToolContext`` is built around the ``context=`` of the run, so tools taking the
context replay like any other. A check's capture receives that context first, then
the model's arguments by name: ``Check(capture=lambda ctx, field, value:
ctx.context.selectors[field])``. Importing this module also registers
``RunContextWrapper`` as a context type (:func:`muscle_mem.register_context_type`), so a
function decorated with ``@engine.function`` under ``@function_tool`` may take the
context without ``inject=``.

**Parallel tool calls.** The SDK runs one model turn's calls as concurrent tasks. A
step's place is the order its call started, so each call waits until the calls the
model listed before it in the same turn have started (not finished): the recorded
order is the model's, and replay runs them in that order, one after the other.

**Hits** run no model: ``out.result`` is a ``RunResult`` whose ``new_items`` are the
replayed calls and their outputs, and whose ``final_output`` is the answer recorded with
the path, params filled in (``final="recorded"``, default). ``final="llm"`` spends one
model call, the agent with no tools and the replayed calls as its input, on a fresh
answer. **Handoffs** run the agent with the task and the replayed calls as its input
items, and a note saying where and why replay stopped, so the model makes only the missing
calls; what it does is recorded after them.

**Usage.** The tokens of every model call the runner makes (``Usage.total_tokens``;
the SDK knows no cost) are reported into the run, so ``engine.stats()`` counts what hits
saved; a hit's ``final="llm"`` call too (the hit is logged once it is answered).

Refused at construction: hosted tools (web search, file search, computer use run at
OpenAI: not replayable), handoffs to other agents (their tools would not be recorded)
and tools that need approval (the run pauses part-way). Streaming
(``Runner.run_streamed``) has no cached path.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import hashlib
import inspect
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import muscle_mem
from muscle_mem import Check, Engine, Outcome, register_context_type
from muscle_mem.errors import ConfigurationError
from muscle_mem.models import ExecutedStep, Status

from ._common import final_option, handoff_note, run_sync, tool_checks

try:
    from agents import Agent, FunctionTool, RunContextWrapper, RunHooks, Runner
    from agents.items import ItemHelpers, MessageOutputItem, ToolCallItem, ToolCallOutputItem
    from agents.result import RunResult
    from agents.tool import maybe_invoke_function_tool_failure_error_function
    from agents.tool_context import ToolContext
    from openai.types.responses import (
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputText,
    )
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "muscle_mem.integrations.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'muscle-mem[openai-agents]'"
    ) from error

__all__ = ["FINALS", "CachedRunner"]

# A tool decorated with @engine.function that takes the SDK's context (a
# RunContextWrapper, or its ToolContext subclass) records without inject=: the context is
# left out of its steps, and replay takes it from the run's inject=.
register_context_type(RunContextWrapper)

log = logging.getLogger("muscle_mem")

FINALS = {
    "recorded": "the answer recorded with the path, params filled in; no model call",
    "llm": "one model call, tools disabled, on the replayed calls",
}
# The name a tool's SDK context is injected under: one no JSON schema property can take,
# since the model's arguments are passed by name next to it.
_CONTEXT = "_muscle_mem_tool_context"
# How long a call waits for the calls listed before it in its model turn to start:
# a tool guardrail that rejects an earlier call means it never starts, and then the
# order falls back to the order the SDK started them.
_ORDER_TIMEOUT_S = 10.0


class _Turns:
    """The order the model listed one run's function calls in, per turn, and which of
    them have started: what puts parallel calls' steps in the model's order."""

    def __init__(self) -> None:
        self.place: dict[str, tuple[int, int]] = {}  # call id -> (turn, index in it)
        self.started: list[list[asyncio.Event]] = []

    def add_turn(self, call_ids: list[str]) -> None:
        turn = len(self.started)
        self.started.append([asyncio.Event() for _ in call_ids])
        for index, call_id in enumerate(call_ids):
            self.place[call_id] = (turn, index)

    async def wait_for_earlier(self, call_id: str) -> None:
        place = self.place.get(call_id)
        if place is None:
            return
        turn, index = place
        for event in self.started[turn][:index]:
            try:
                await asyncio.wait_for(event.wait(), _ORDER_TIMEOUT_S)
            except asyncio.TimeoutError:
                log.warning(
                    "openai-agents: call %s waited %.0f s for an earlier call of its turn "
                    "to start; recorded in the order the SDK started them",
                    call_id,
                    _ORDER_TIMEOUT_S,
                )
                return

    def mark_started(self, call_id: str) -> None:
        place = self.place.get(call_id)
        if place is not None:
            self.started[place[0]][place[1]].set()


class _RunState:
    """What the tools of one :meth:`CachedRunner.run` record into."""

    def __init__(self, session: muscle_mem.Session) -> None:
        self.session = session
        self.turns = _Turns()


# The run in progress in this asyncio task (and the tool tasks the SDK starts from it).
_current: contextvars.ContextVar[_RunState | None] = contextvars.ContextVar(
    "muscle_mem_openai_agents_run", default=None
)


class _Hooks(RunHooks[Any]):
    """Notes each model turn's function calls, in the model's order; every hook is
    passed on to the user's ``hooks=``, if any."""

    def __init__(self, state: _RunState, tools: frozenset[str], inner: RunHooks[Any] | None):
        self._state = state
        self._tools = tools
        self._inner = inner

    async def on_llm_end(self, context: Any, agent: Any, response: Any) -> None:
        calls = [
            item.call_id
            for item in response.output
            if getattr(item, "type", None) == "function_call" and item.name in self._tools
        ]
        if calls:
            self._state.turns.add_turn(calls)
        if self._inner is not None:
            await self._inner.on_llm_end(context, agent, response)

    async def on_llm_start(self, *args: Any) -> None:
        if self._inner is not None:
            await self._inner.on_llm_start(*args)

    async def on_agent_start(self, *args: Any) -> None:
        if self._inner is not None:
            await self._inner.on_agent_start(*args)

    async def on_agent_end(self, *args: Any) -> None:
        if self._inner is not None:
            await self._inner.on_agent_end(*args)

    async def on_handoff(self, *args: Any) -> None:
        if self._inner is not None:
            await self._inner.on_handoff(*args)

    async def on_tool_start(self, *args: Any) -> None:
        if self._inner is not None:
            await self._inner.on_tool_start(*args)

    async def on_tool_end(self, *args: Any) -> None:
        if self._inner is not None:
            await self._inner.on_tool_end(*args)


def _version(tool: FunctionTool) -> str:
    """What stands for a tool's code: its description and JSON schema (what the model
    sees) and, for a ``@function_tool`` function, its source (what runs)."""
    try:
        function = tool.__wrapped__  # raises for tools not made by @function_tool
    except AttributeError:
        source = ""
    else:
        try:
            source = inspect.getsource(function)
        except (OSError, TypeError):  # no file (a REPL, a notebook): the bytecode
            code = getattr(function, "__code__", None)
            source = code.co_code.hex() if code is not None else repr(function)
    described = json.dumps(
        [tool.name, tool.description, tool.params_json_schema, source], sort_keys=True
    )
    return "oa1:" + hashlib.sha256(described.encode()).hexdigest()[:32]


def _arguments(args_json: str) -> dict[str, Any] | None:
    """The model's JSON arguments as a dict, or None when they are not an object (the
    SDK answers the model with an error then; such a call is not recorded)."""
    if not args_json.strip():
        return {}
    try:
        arguments = json.loads(args_json)
    except ValueError:
        return None
    return arguments if isinstance(arguments, dict) else None


class CachedRunner:
    """Runs an OpenAI Agents SDK ``Agent`` through a muscle-mem ``Engine``: see the
    module's docstring.

    ``checks`` and ``post_checks`` map a tool's SDK name to the :class:`Check` run
    before (after) each of its calls; a capture takes the tool's context, then its
    arguments by name. ``final`` is what a hit answers with: ``"recorded"`` (the answer
    recorded with the path, params filled in; no model call) or ``"llm"`` (one model
    call, tools disabled, on the replayed calls). Registering the agent's tools on
    ``engine`` replaces tools of the same names another runner registered there.
    """

    def __init__(
        self,
        engine: Engine,
        agent: Agent[Any],
        *,
        checks: Mapping[str, Check] | None = None,
        post_checks: Mapping[str, Check] | None = None,
        final: str = "recorded",
    ) -> None:
        if not isinstance(engine, Engine):
            raise ConfigurationError(
                f"CachedRunner(engine, agent) takes a muscle_mem.Engine first, got "
                f"{type(engine).__qualname__}"
            )
        if not isinstance(agent, Agent):
            raise ConfigurationError(
                f"CachedRunner(engine, agent) takes an agents.Agent, got {type(agent).__qualname__}"
            )
        self.final: str = final_option(final, FINALS)
        self.engine = engine
        other = [t for t in agent.tools if not isinstance(t, FunctionTool)]
        if other:
            hosted = ", ".join(sorted(getattr(t, "name", type(t).__name__) for t in other))
            raise ConfigurationError(
                f"agent {agent.name!r} has tools that run outside this process ({hosted}): "
                "muscle-mem can neither record nor replay them; give the runner an agent "
                "with function tools only"
            )
        if agent.handoffs:
            raise ConfigurationError(
                f"agent {agent.name!r} hands off to other agents, whose tool calls this "
                "runner would not record; cache each agent with a runner of its own"
            )
        tools: list[FunctionTool] = list(agent.tools)  # type: ignore[arg-type]
        approved = sorted(t.name for t in tools if t.needs_approval is not False)
        if approved:
            raise ConfigurationError(
                f"agent {agent.name!r} has tools that need approval ({', '.join(approved)}): "
                "such a run pauses part-way, and a paused path would be cached as a whole "
                "task; give the runner an agent whose tools run without approval"
            )
        names = {t.name for t in tools}
        among = f"the function tools of agent {agent.name!r}"
        pre = tool_checks(checks, "checks", call="CachedRunner", known=names, among=among)
        post = tool_checks(
            post_checks, "post_checks", call="CachedRunner", known=names, among=among
        )
        self.tool_names = frozenset(names)
        wrapped = []
        for tool in tools:
            body, handles_errors = _body(tool)
            engine.tool(
                _replayable(tool, body),
                name=tool.name,
                version=_version(tool),
                pre_check=pre.get(tool.name),
                post_check=post.get(tool.name),
                inject=[_CONTEXT],
            )
            recording = _recording(tool, handles_errors)
            wrapped.append(dataclasses.replace(tool, on_invoke_tool=recording))
        self.agent = agent
        self._recording_agent = agent.clone(tools=wrapped)

    def __repr__(self) -> str:
        return f"<muscle_mem CachedRunner {self.agent.name!r} tools={sorted(self.tool_names)}>"

    async def run(
        self,
        input: str | list[Any],
        *,
        params: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        context: Any = None,
        final: str | None = None,
        about: Any = None,
        **runner_kwargs: Any,
    ) -> Outcome:
        """Run the task ``input`` (a prompt, or input items): replay it if the checks
        allow, else run the agent with ``Runner.run`` and record its tool calls.

        ``params``, ``tags`` and ``about`` are ``engine()``'s; ``context`` is the SDK's
        run context, which replayed tools get too; ``final`` overrides the runner's for
        this run; anything else goes to ``Runner.run`` (``max_turns``, ``hooks``,
        ``run_config``...). Returns the engine's :class:`Outcome`, whose ``result`` is
        the SDK's ``RunResult`` on a hit, a miss and a handoff alike.
        """
        final = self.final if final is None else final_option(final, FINALS)
        if "context" in runner_kwargs or "input" in runner_kwargs:
            raise ConfigurationError("CachedRunner.run takes input and context= itself")
        session = self.engine.session(
            input,
            params=params,
            tags=tags,
            about=about,
            inject={_CONTEXT: RunContextWrapper(context=context)},
        )
        async with session:
            # A hit is held open until answered, so a final="llm" call is logged with it.
            outcome = await session.areplay(commit_hit=False)
            if outcome.hit:
                answered = await self._hit(session, input, outcome, context, final, runner_kwargs)
                return dataclasses.replace(session.commit(), result=answered)
            history = _items(input)
            handoff = session.handoff
            if outcome.status is Status.HANDOFF and handoff is not None and handoff.steps:
                history += _history(handoff.steps)
                note = handoff_note(len(handoff.steps), handoff.reason)
                history.append({"role": "user", "content": note})
            state = _RunState(session)
            hooks = _Hooks(state, self.tool_names, runner_kwargs.pop("hooks", None))
            token = _current.set(state)
            try:
                result = await Runner.run(
                    self._recording_agent, history, context=context, hooks=hooks, **runner_kwargs
                )
            finally:
                _current.reset(token)
            session.report_usage(tokens=result.context_wrapper.usage.total_tokens)
            done = session.commit(result.final_output)
        return dataclasses.replace(done, result=result)

    def run_sync(self, input: str | list[Any], **kwargs: Any) -> Outcome:
        """:meth:`run` from synchronous code (outside an event loop)."""
        return run_sync(lambda: self.run(input, **kwargs), "CachedRunner.run_sync")

    async def _hit(
        self,
        session: muscle_mem.Session,
        input: str | list[Any],
        outcome: Outcome,
        context: Any,
        final: str,
        runner_kwargs: dict[str, Any],
    ) -> RunResult:
        """A hit as the SDK's ``RunResult``: the replayed calls, then the answer (with
        ``final="llm"``, one model call's, its usage reported into the hit)."""
        items = _run_items(self.agent, outcome.steps)
        answered = None
        if final == "llm":
            # The agent without tools answers from the replayed calls: one model call.
            answered = await Runner.run(
                self.agent.clone(tools=[]),
                _items(input) + _history(outcome.steps),
                context=context,
                **runner_kwargs,
            )
            session.report_usage(tokens=answered.context_wrapper.usage.total_tokens)
            items += answered.new_items
            answer = answered.final_output
        else:
            answer = outcome.result
            if isinstance(answer, str):
                items.append(MessageOutputItem(agent=self.agent, raw_item=_message(answer)))
        return RunResult(
            input=input,
            new_items=items,
            raw_responses=answered.raw_responses if answered else [],
            final_output=answer,
            input_guardrail_results=answered.input_guardrail_results if answered else [],
            output_guardrail_results=answered.output_guardrail_results if answered else [],
            tool_input_guardrail_results=[],
            tool_output_guardrail_results=[],
            context_wrapper=answered.context_wrapper if answered else RunContextWrapper(context),
            _last_agent=self.agent,
        )


def _body(tool: FunctionTool) -> tuple[Any, bool]:
    """What runs ``tool``'s body, and whether the SDK turns its exceptions into an error
    string for the model.

    The SDK's invoker of a ``@function_tool`` does that, and a string recorded would be a
    step replayed as a success. openai-agents 0.24 has no public way to run the body
    with its exceptions, nor to change the failure policy of a tool already made
    (``function_tool(failure_error_function=None)`` is the only one, when it is made),
    so this calls the body the invoker wraps, ``_invoke_tool_impl`` (private, hence
    getattr), and the runner turns an exception into the SDK's error string after the
    session has dropped the call. Without it (a hand-made ``FunctionTool``, whose
    ``on_invoke_tool`` raises as it is; or an SDK that renamed it) the public invoker
    runs: its exceptions propagate as without muscle-mem, and when that invoker is the
    SDK's own a warning says that failing calls may then be recorded.
    """
    original = tool.on_invoke_tool
    body = getattr(original, "_invoke_tool_impl", None)
    if body is not None:
        return body, True
    made_by_sdk = type(original).__module__ if not inspect.isfunction(original) else ""
    if (made_by_sdk or getattr(original, "__module__", "")).startswith("agents."):
        # The SDK's own invoker (of a @function_tool), which may catch what it runs.
        log.warning(
            "openai-agents: the invoker of tool %r wraps no _invoke_tool_impl (has the SDK "
            "changed?): a call of it that fails comes back as the SDK's error message and "
            "may be recorded as a step; pin openai-agents to a version muscle-mem supports",
            tool.name,
        )
    return original, False


def _replayable(tool: FunctionTool, body: Any) -> Any:
    """The engine's tool for ``tool``: its body (see :func:`_body`) called with a
    ``ToolContext`` and the arguments as JSON. While recording, the context is the SDK's
    own; at replay it is the run's ``context=`` wrapped, and a ``ToolContext`` is made
    around it."""

    async def call(_muscle_mem_tool_context: RunContextWrapper[Any], **arguments: Any) -> Any:
        ctx = _muscle_mem_tool_context
        args_json = json.dumps(arguments)
        if not isinstance(ctx, ToolContext):  # replay: a context of our making
            ctx = ToolContext(
                context=ctx.context,
                usage=ctx.usage,
                tool_name=tool.name,
                tool_call_id=f"mm_{uuid.uuid4().hex[:24]}",
                tool_arguments=args_json,
            )
        else:
            state = _current.get()
            if state is not None:  # its step has its place: later calls may start
                state.turns.mark_started(ctx.tool_call_id)
        return await body(ctx, args_json)

    return call


def _recording(tool: FunctionTool, handles_errors: bool) -> Any:
    """The ``on_invoke_tool`` of the runner's copy of ``tool``: the call goes through
    the session of the run in progress, which records it (and drops it if it raises).
    ``handles_errors``: the tool's own invoker would have answered an exception with an
    error message for the model, so this does too, as the SDK would."""
    original = tool.on_invoke_tool

    async def on_invoke_tool(ctx: ToolContext[Any], args_json: str) -> Any:
        state = _current.get()
        arguments = _arguments(args_json)
        if state is None or arguments is None:
            return await original(ctx, args_json)  # outside a run, or not an object
        await state.turns.wait_for_earlier(ctx.tool_call_id)
        try:
            return await state.session.acall(tool.name, ctx, **arguments)
        except muscle_mem.MuscleMemError:
            raise  # misuse or a store failure: not the tool's error to show the model
        except Exception as error:
            if not handles_errors:
                raise
            message = await maybe_invoke_function_tool_failure_error_function(
                function_tool=tool, context=ctx, error=error
            )
            if message is None:
                raise
            return message
        finally:
            state.turns.mark_started(ctx.tool_call_id)  # even if it failed before its body

    return on_invoke_tool


def _items(input: str | list[Any]) -> list[Any]:
    if isinstance(input, str):
        return [{"role": "user", "content": input}]
    return list(input)


def _call_ids(steps: Sequence[ExecutedStep]) -> list[str]:
    return [f"mm_{i}_{uuid.uuid4().hex[:16]}" for i in range(len(steps))]


def _history(steps: Sequence[ExecutedStep]) -> list[Any]:
    """Replayed calls as input items: each call, then its output."""
    items: list[Any] = []
    for step, call_id in zip(steps, _call_ids(steps), strict=True):
        call = _function_call(step, call_id)
        items.append(call.model_dump(exclude_none=True))
        items.append(ItemHelpers.tool_call_output_item(call, step.result))
    return items


def _run_items(agent: Agent[Any], steps: Sequence[ExecutedStep]) -> list[Any]:
    """Replayed calls as the SDK's run items, as a run would have made them."""
    items: list[Any] = []
    for step, call_id in zip(steps, _call_ids(steps), strict=True):
        call = _function_call(step, call_id)
        items.append(ToolCallItem(agent=agent, raw_item=call))
        output = ItemHelpers.tool_call_output_item(call, step.result)
        items.append(ToolCallOutputItem(agent=agent, raw_item=output, output=step.result))
    return items


def _function_call(step: ExecutedStep, call_id: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        type="function_call",
        call_id=call_id,
        name=step.tool,
        arguments=json.dumps(step.arguments),
        status="completed",
    )


def _message(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=f"mm_msg_{uuid.uuid4().hex[:16]}",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
    )
