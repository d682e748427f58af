"""PydanticAI (``pydantic-ai-slim`` >= 2.68) under muscle-mem: ``MuscleMem(engine).run(agent)``.

::

    from muscle_mem.integrations.pydantic_ai import MuscleMem

    mm = MuscleMem(engine, checks={"type_into": Check(capture=lambda ctx, field, value: ...)})
    outcome = await mm.run(agent, "fill the form for Jane", params={"name": "Jane"}, deps=deps)
    outcome.status, outcome.replayed, outcome.result   # result: an AgentRunResult, always

How it maps onto PydanticAI:

- **Recording** happens at the framework's tool layer: for each run :meth:`MuscleMem.run`
  adds a capability whose ``wrap_tool_execute`` hook sees every function-tool call
  (``@agent.tool`` tools taking ``ctx: RunContext`` included, toolsets' tools, MCP
  toolsets' tools) and records it under the framework's tool name, with the JSON arguments
  the model produced; the tool runs through PydanticAI's own handler, so other
  capabilities' hooks still run. A call that fails (a ``ModelRetry``, an error) is never
  recorded. Output tools are not steps.
- **Decorated tools** (``@engine.function`` under ``@agent.tool``, for agents run by
  ``engine()`` itself) may take ``ctx: RunContext`` without ``inject=``: importing this
  module registers ``RunContext`` as a context type (:func:`muscle_mem.register_context_type`),
  so the context is left out of their steps and replay takes it from ``inject=``.
- **Tools** are registered with ``engine.tool(..., name=<tool name>, version=<hash of the
  description, the JSON schema and the function's source>, inject=[...])``: a changed
  tool never replays old steps. The ``RunContext`` is injected, never recorded: replay
  builds one (``deps``, the agent's model, fresh usage) and calls the tool through its
  toolset (``toolset.call_tool``) with arguments validated by the tool's own validator.
- **Checks** are given per tool name: ``checks=`` (pre-checks, what must hold before a
  call replays) and ``post_checks=`` (what must hold after). A capture takes the
  ``RunContext`` first, then the tool's arguments by name, as an ``@agent.tool`` does:
  ``Check(capture=lambda ctx, field, value: ctx.deps.page.selectors[field])``; the
  environment usually lives in ``deps``.
- **A hit** runs no model: the agent is not started. What it returns is PydanticAI's own
  ``AgentRunResult``, whose messages hold the prompt and the replayed calls and returns,
  and whose ``output`` is the output recorded with the path, params filled in
  (``final="recorded"``, the default). ``final="llm"`` spends one model request, tools
  hidden, on a fresh output from the replayed history; ``final=callable`` computes it from
  the replayed steps.
- **A handoff** starts the agent with the replayed calls as its ``message_history``, plus a
  note saying where and why replay stopped, so the model makes only the missing calls;
  those are recorded after the replayed ones.
- **Usage**: the tokens of every model response of the run (and their cost, where
  ``genai-prices`` knows the model) are reported into the run, so ``muscle-mem stats``
  counts what hits saved.
- **Parallel tool calls** (several in one model response, run as concurrent tasks by
  PydanticAI) take their places in the order the model emitted them: PydanticAI starts
  their tasks in that order and each call's step begins before its first ``await``; they
  replay one after the other in that order.

Why ``engine.session`` and not ``engine.set_agent``: the framework, not the engine,
drives a miss (it runs the model and calls the tools, concurrently), and one engine may
serve several agents with their own ``deps`` and run options; a session per run keeps the
recording in one object handed to this run's capability, with no global agent to set.
The hit is decided before ``agent.run`` is called, so it costs no framework machinery
either. **Streaming**: :meth:`MuscleMem.run_stream` stands for ``agent.run_stream``; a
hit streams the answer in one piece with no model request. ``agent.iter`` is not
covered.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import inspect
import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from muscle_mem import (
    Check,
    ConfigurationError,
    Engine,
    ExecutedStep,
    Outcome,
    Session,
    register_context_type,
)

from ._common import final_option, handoff_note, run_sync, tool_checks

try:
    from pydantic import TypeAdapter
    from pydantic_ai import Agent, RunContext
    from pydantic_ai.capabilities import AbstractCapability
    from pydantic_ai.messages import (
        ModelMessage,
        ModelRequest,
        ModelResponse,
        TextPart,
        ToolCallPart,
        ToolReturnPart,
        UserPromptPart,
    )
    from pydantic_ai.models import Model, infer_model
    from pydantic_ai.result import StreamedRunResult
    from pydantic_ai.run import AgentRunResult
    from pydantic_ai.tools import ToolDefinition
    from pydantic_ai.toolsets import AbstractToolset, CombinedToolset
    from pydantic_ai.usage import RunUsage
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "muscle_mem.integrations.pydantic_ai needs PydanticAI: "
        "pip install 'muscle-mem[pydantic-ai]'"
    ) from error

__all__ = ["MuscleMem", "StreamedRun"]

# A tool decorated with @engine.function that takes ``ctx: RunContext[...]`` records
# without inject=: the context is left out of its steps, and replay takes it from the
# run's inject={"ctx": RunContext(...)}.
register_context_type(RunContext)

# The name the RunContext takes in a registered tool. Passed positionally, so a capture
# may call it what it likes (``ctx``); chosen so that no tool's own argument is likely to
# clash with it (one that does is refused).
_CTX = "pydantic_ai_ctx"

# Set while PydanticAI itself executes a call (the miss or handoff path): the framework's
# handler for this call, which the registered tool runs instead of calling the toolset,
# so that the framework's own execution (other capabilities' hooks, retries) is used.
_live: contextvars.ContextVar[Callable[[], Awaitable[Any]] | None] = contextvars.ContextVar(
    "muscle_mem_pydantic_ai_live", default=None
)

FINALS = {
    "recorded": "the output recorded with the path, params filled in",
    "llm": "one model request for a fresh output",
}

Final = Callable[[tuple[ExecutedStep, ...]], Any]


class MuscleMem:
    """Runs PydanticAI agents through an :class:`~muscle_mem.Engine`: see the module.

    ``checks`` and ``post_checks`` map a tool's name to its pre- and post-:class:`Check`
    (captures take the ``RunContext``, then the tool's arguments by name). ``final`` says
    what a hit's ``output`` is: ``"recorded"`` (the default; the recorded output, params
    filled in), ``"llm"`` (one model request on the replayed history, tools hidden) or a
    callable taking the replayed :class:`~muscle_mem.ExecutedStep` tuple.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        checks: Mapping[str, Check] | None = None,
        post_checks: Mapping[str, Check] | None = None,
        final: str | Final = "recorded",
    ) -> None:
        if not isinstance(engine, Engine):
            raise ConfigurationError(
                f"MuscleMem(engine) takes a muscle_mem.Engine, got {type(engine).__qualname__}"
            )
        self.engine = engine
        self.checks = tool_checks(checks, "checks", call="MuscleMem")
        self.post_checks = tool_checks(post_checks, "post_checks", call="MuscleMem")
        self.final: str | Final = final_option(final, FINALS, steps_callable=True)

    def __repr__(self) -> str:
        return f"MuscleMem({self.engine!r}, checks={sorted(self.checks)})"

    async def run(
        self,
        agent: Agent[Any, Any],
        prompt: str,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        about: Any = None,
        mode: str | None = None,
        deps: Any = None,
        final: str | Final | None = None,
        **run_options: Any,
    ) -> Outcome:
        """Run ``agent`` on ``prompt`` through the cache; the run's :class:`Outcome`,
        whose ``result`` is PydanticAI's ``AgentRunResult`` on a hit, a miss and a handoff.

        ``prompt`` is the task: with ``params``, ``tags``, ``about`` and ``mode`` it makes
        the cache key as ``engine(prompt, ...)`` would. ``deps`` goes to the agent and to
        replayed tools' ``RunContext``; ``final`` overrides the adapter's for this run;
        the other keyword arguments (``toolsets``, ``model``, ``model_settings``,
        ``usage_limits``, ``capabilities``...) go to ``agent.run``.
        """
        run = await self._start(agent, prompt, params, tags, about, mode, deps, final, run_options)
        async with run.session as session:
            # A hit is held open until it is answered: a fresh answer's request is logged
            # with it, so `muscle-mem stats` counts its tokens.
            so_far = await session.areplay(commit_hit=False)
            if so_far:
                answered = await self._answer(run, so_far)
                return dataclasses.replace(session.commit(), result=answered)
            result = await agent.run(**run.agent_input(), deps=deps, **run.recording_options())
            return run.commit(result.new_messages(), result.output, result)

    def run_stream(
        self,
        agent: Agent[Any, Any],
        prompt: str,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        about: Any = None,
        mode: str | None = None,
        deps: Any = None,
        final: str | Final | None = None,
        **run_options: Any,
    ) -> StreamedRun:
        """:meth:`run` for ``agent.run_stream``: ``async with mm.run_stream(agent, prompt,
        ...) as result`` gives PydanticAI's own ``StreamedRunResult``, and the returned
        :class:`StreamedRun`'s ``outcome`` once the block has ended.

        A hit makes no model request: its result streams the answer :meth:`run` would
        give (the recorded output by default) in one piece, its messages the replayed
        calls. A miss or a handoff streams the agent's run, recording its tool calls; the
        run is committed as the block ends, with the output the stream produced (what the
        block left unread is read first).
        """
        return StreamedRun(
            self._stream(agent, prompt, params, tags, about, mode, deps, final, run_options)
        )

    async def _stream(
        self,
        agent: Agent[Any, Any],
        prompt: str,
        params: Mapping[str, Any] | None,
        tags: Iterable[str] | None,
        about: Any,
        mode: str | None,
        deps: Any,
        final: str | Final | None,
        run_options: dict[str, Any],
    ) -> AsyncGenerator[Any, None]:
        """:meth:`run_stream`'s steps: yields the stream, then, once the block has read
        it, the outcome."""
        run = await self._start(agent, prompt, params, tags, about, mode, deps, final, run_options)
        async with run.session as session:
            so_far = await session.areplay(commit_hit=False)
            if so_far:
                answered = await self._answer(run, so_far)
                stream = StreamedRunResult(answered.all_messages(), 0, run_result=answered)
                yield stream
                yield dataclasses.replace(session.commit(), result=stream)
                return
            streaming = agent.run_stream(**run.agent_input(), deps=deps, **run.recording_options())
            async with streaming as result:
                yield result
                output = await result.get_output()  # what the block left unread
            yield run.commit(result.new_messages(), output, result)

    async def _start(
        self,
        agent: Agent[Any, Any],
        prompt: str,
        params: Mapping[str, Any] | None,
        tags: Iterable[str] | None,
        about: Any,
        mode: str | None,
        deps: Any,
        final: str | Final | None,
        run_options: dict[str, Any],
    ) -> _Run:
        """Check a run's arguments, register the agent's tools, and open its session."""
        if not isinstance(agent, Agent):
            raise ConfigurationError(
                f"MuscleMem.run(agent, prompt) takes a pydantic_ai.Agent, got "
                f"{type(agent).__qualname__}"
            )
        if not isinstance(prompt, str):
            raise ConfigurationError(
                "MuscleMem.run(agent, prompt) takes the task as a string: it is the cache "
                f"key, and a handoff's history starts with it; got {type(prompt).__qualname__}"
            )
        for taken in ("message_history", "user_prompt", "conversation"):
            if taken in run_options:
                raise ConfigurationError(
                    f"MuscleMem.run() does not take {taken}=: a cached run starts from the "
                    "task alone (a handoff's history is the replayed calls)"
                )
        how = self.final if final is None else final_option(final, FINALS, steps_callable=True)
        ctx = RunContext(
            deps=deps,
            model=_model(run_options.get("model", agent.model)),
            usage=RunUsage(),
            prompt=prompt,
        )
        await self._register(agent, ctx, run_options.get("toolsets") or ())
        session = self.engine.session(
            prompt, params=params, tags=tags, about=about, mode=mode, inject={_CTX: ctx}
        )
        return _Run(agent, prompt, session, how, deps, run_options)

    def run_sync(self, agent: Agent[Any, Any], prompt: str, **options: Any) -> Outcome:
        """:meth:`run` from synchronous code (not from inside a running event loop)."""
        return run_sync(lambda: self.run(agent, prompt, **options), "MuscleMem.run_sync")

    # -- the tools -----------------------------------------------------------------

    async def _register(
        self, agent: Agent[Any, Any], ctx: RunContext[Any], extra: Sequence[AbstractToolset[Any]]
    ) -> None:
        """Register every function tool the run can call with the engine, by its name, so
        that replay (which comes before the agent runs) finds them."""
        toolset = CombinedToolset([*agent.toolsets, *extra])
        tools = await toolset.get_tools(ctx)
        for name, tool in tools.items():
            if tool.tool_def.kind != "function":
                continue  # output tools end the run; they are not steps
            self._register_one(name, tool.tool_def, _version(tool), _replayer(toolset, tool))

    def _register_one(
        self,
        name: str,
        tool_def: ToolDefinition,
        version: str,
        replay: Callable[[RunContext[Any], dict[str, Any]], Awaitable[Any]],
    ) -> None:
        properties = (tool_def.parameters_json_schema or {}).get("properties") or {}
        if _CTX in properties:
            raise ConfigurationError(
                f"tool {name!r} has an argument named {_CTX!r}, the name under which "
                "muscle-mem passes the RunContext to a recorded tool; rename the argument"
            )

        async def call(pydantic_ai_ctx: RunContext[Any], **arguments: Any) -> Any:
            live = _live.get()
            if live is not None:  # PydanticAI is executing this call: let it
                return await live()
            return await replay(pydantic_ai_ctx, arguments)

        self.engine.tool(
            call,
            name=name,
            version=version,
            pre_check=self.checks.get(name),
            post_check=self.post_checks.get(name),
            inject=[_CTX],
        )

    # -- a hit ---------------------------------------------------------------------

    async def _answer(self, run: _Run, hit: Outcome) -> AgentRunResult[Any]:
        """The AgentRunResult the caller expects from a hit, its usage reported."""
        steps = hit.steps
        if run.how == "llm":
            # One model request on the replayed history, tools hidden: a fresh answer.
            options = dict(run.options)
            options["capabilities"] = [*options.get("capabilities", ()), _NoTools()]
            history = _history(run.prompt, steps, note=None)
            result = await run.agent.run(None, message_history=history, deps=run.deps, **options)
            tokens, cost = _usage(result.new_messages())
            run.session.report_usage(tokens=tokens, cost=cost)
            return result
        output = hit.result if run.how == "recorded" else run.how(steps)  # type: ignore[operator]
        messages = _history(run.prompt, steps, note=None)
        if isinstance(output, str):
            messages.append(ModelResponse(parts=[TextPart(output)], model_name="muscle-mem"))
        return _RESULT.validate_python(
            {"output": output, "messages": messages, "usage": RunUsage()}
        )


@dataclasses.dataclass
class _Run:
    """One cached run of an agent, between :meth:`MuscleMem._start` and its commit."""

    agent: Agent[Any, Any]
    prompt: str
    session: Session
    how: str | Final
    deps: Any
    options: dict[str, Any]

    def agent_input(self) -> dict[str, Any]:
        """What ``agent.run`` (or ``run_stream``) starts from: the prompt on a miss; after a
        handoff, no prompt and the replayed calls as ``message_history``."""
        handoff = self.session.handoff
        if handoff is None or not handoff.steps:
            return {"user_prompt": self.prompt}
        note = handoff_note(len(handoff.steps), handoff.reason)
        return {"message_history": _history(self.prompt, handoff.steps, note=note)}

    def recording_options(self) -> dict[str, Any]:
        """The run's options, with the capability that records its tool calls."""
        options = dict(self.options)
        options["capabilities"] = [*options.get("capabilities", ()), _Record(self.session)]
        return options

    def commit(self, new_messages: list[ModelMessage], output: Any, result: Any) -> Outcome:
        """Report the run's usage, store its path with ``output`` and return the outcome,
        ``result`` (the framework's) as its result."""
        tokens, cost = _usage(new_messages)
        self.session.report_usage(tokens=tokens, cost=cost)
        return dataclasses.replace(self.session.commit(output), result=result)


class StreamedRun:
    """What :meth:`MuscleMem.run_stream` returns: ``async with`` it for PydanticAI's
    ``StreamedRunResult``; :attr:`outcome` is the run's :class:`Outcome` once the block
    has ended (its ``result`` that stream), None before."""

    def __init__(self, steps: AsyncGenerator[Any, None]) -> None:
        self._steps = steps
        self.outcome: Outcome | None = None

    async def __aenter__(self) -> StreamedRunResult[Any, Any]:
        stream: StreamedRunResult[Any, Any] = await anext(self._steps)
        return stream

    async def __aexit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        if error is None:
            self.outcome = await anext(self._steps)
            await self._steps.aclose()
            return
        try:  # the block failed: so does the run (and the agent's stream closes)
            await self._steps.athrow(error)
        except BaseException as raised:
            if raised is not error:
                raise


_RESULT: TypeAdapter[AgentRunResult[Any]] = TypeAdapter(AgentRunResult[Any])


@dataclasses.dataclass
class _Record(AbstractCapability[Any]):
    """The per-run capability that records each function-tool call into the session."""

    session: Any

    @classmethod
    def get_serialization_name(cls) -> str | None:
        return None  # per run, holding a live session: never part of an agent spec

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: Any,
        handler: Callable[[Any], Awaitable[Any]],
    ) -> Any:
        if tool_def.kind != "function":
            return await handler(args)
        token = _live.set(lambda: handler(args))
        try:
            # No await before this: the step begins (takes its place) synchronously, so
            # parallel calls keep the order in which PydanticAI started their tasks.
            return await self.session.acall(call.tool_name, ctx, **call.args_as_dict())
        finally:
            _live.reset(token)


@dataclasses.dataclass
class _NoTools(AbstractCapability[Any]):
    """Hides the function tools, for ``final="llm"``: one answer, no more calls."""

    @classmethod
    def get_serialization_name(cls) -> str | None:
        return None

    async def prepare_tools(
        self, ctx: RunContext[Any], tool_defs: list[ToolDefinition]
    ) -> list[ToolDefinition]:
        return []


def _replayer(
    toolset: AbstractToolset[Any], tool: Any
) -> Callable[[RunContext[Any], dict[str, Any]], Awaitable[Any]]:
    """How replay runs one tool outside the agent loop: through its toolset, with the
    arguments validated as PydanticAI would."""
    name = tool.tool_def.name

    async def replay(ctx: RunContext[Any], arguments: dict[str, Any]) -> Any:
        validated = tool.args_validator.validate_python(arguments)
        ctx = dataclasses.replace(ctx, tool_name=name, retry=0)
        return await toolset.call_tool(name, validated, ctx, tool)

    return replay


def _version(tool: Any) -> str:
    """A tool's version: its description and argument schema (what the model sees), and
    its function's source where it has one (what it does)."""
    tool_def = tool.tool_def
    source = ""
    held = getattr(tool.toolset, "tools", None)  # a FunctionToolset's Tool objects
    original = getattr(tool, "original_name", None) or tool_def.name
    function = getattr(held.get(original), "function", None) if isinstance(held, dict) else None
    if function is not None:
        try:
            source = inspect.getsource(function)
        except (OSError, TypeError):
            source = getattr(function, "__qualname__", "")
    identity = json.dumps(
        [tool_def.description, tool_def.parameters_json_schema, source],
        sort_keys=True,
        default=str,
    )
    return "pai1:" + hashlib.sha256(identity.encode()).hexdigest()[:24]


def _history(prompt: str, steps: Sequence[ExecutedStep], *, note: str | None) -> list[ModelMessage]:
    """The replayed calls as PydanticAI messages: the prompt, then each call and its
    return, in the order they replayed (one model turn each: replay ran them in order)."""
    messages: list[ModelMessage] = [ModelRequest(parts=[UserPromptPart(prompt)])]
    for number, step in enumerate(steps):
        call_id = f"muscle_mem_{number}"
        messages.append(
            ModelResponse(
                parts=[ToolCallPart(step.tool, dict(step.arguments), tool_call_id=call_id)],
                model_name="muscle-mem",
            )
        )
        messages.append(
            ModelRequest(
                parts=[ToolReturnPart(step.tool, content=step.result, tool_call_id=call_id)]
            )
        )
    if note is not None:
        last = messages[-1]
        assert isinstance(last, ModelRequest)
        messages[-1] = ModelRequest(parts=[*last.parts, UserPromptPart(note)])
    return messages


def _usage(messages: Iterable[ModelMessage]) -> tuple[int, float]:
    """The tokens of a run's model responses, and their cost where it is known."""
    tokens, cost = 0, 0.0
    for message in messages:
        if not isinstance(message, ModelResponse) or message.model_name == "muscle-mem":
            continue
        tokens += message.usage.total_tokens
        # No price for this model (a test model, a private one): its tokens only.
        with contextlib.suppress(Exception):
            cost += float(message.cost().total_price)
    return tokens, cost


def _model(model: Any) -> Model:
    """The model replayed tools see in ``ctx.model``: the agent's (never called)."""
    if model is None:
        raise ConfigurationError(
            "the agent has no model: give Agent(model=...) or MuscleMem.run(..., model=...)"
        )
    return model if isinstance(model, Model) else infer_model(model)
