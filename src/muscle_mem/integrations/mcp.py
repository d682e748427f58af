"""MCP: a cached client whose ``call_tool`` is recorded and replayed, and a caching proxy
in front of any MCP server (``muscle-mem mcp-proxy -- <server command>``).

Needs ``pip install 'muscle-mem[mcp]'`` (the ``mcp`` SDK, 2.3 or later: ``mcp.Client``
and the low-level ``Server`` with ``on_*`` handlers are 2.x APIs).

**Hook.** MCP tools live in another process, so they cannot be decorated: every tool the
server lists becomes a muscle-mem tool registered with :meth:`Engine.tool
<muscle_mem.Engine.tool>` under the name ``mcp:<server>/<tool>``, versioned by a hash of
its description and its input and output schemas (:func:`tool_version`), so a tool whose
schema changes never replays steps recorded against the old one. The callable behind it
is ``client.call_tool(name, arguments)``; the client is the run's context, passed with
``inject=["client"]``, so it is never recorded and replay uses the connection of the run
that replays. A step records the ``arguments`` dict the model produced. A result with
``is_error`` raises :class:`ToolCallError` inside the engine, so a failed call is never
recorded (a cached error replayed after the server recovered is the classic failure of
naive MCP result caches); the caller still gets the error result, as MCP returns it.

**Checks** are given per MCP tool name: ``checks={"write": Check(...)}`` are pre-checks
(the environment a call acts on is judged before it runs, which is what makes replaying
it safe), ``post_checks={...}`` post-checks. A capture receives the call's arguments as
the tool does, ``capture(arguments, client)``: ``arguments`` the dict sent to the server.

**Why** :meth:`Engine.session` **and not** ``engine.set_agent``: MCP has no agent loop of
its own; the loop is the host's, and the proxy's calls arrive as separate requests. A
session lets the host's code (or the proxy's handlers) drive the run, and leaves the
engine's one agent slot to its owner.

**Client** (:class:`CachedClient`): ``await cached.run(task, agent, params=...)``. A hit
replays every call through the live client and calls no agent, so no model; the outcome's
``result`` is the answer recorded with the path (params filled in), its ``steps`` hold
the replayed calls with their live :class:`mcp.types.CallToolResult`, and
:func:`as_messages` turns them into MCP's own conversation type
(:class:`mcp.types.SamplingMessage` with ``tool_use``/``tool_result`` content, what MCP
sampling with tools speaks). ``answer=`` spends one model call on a fresh answer from
those messages instead: it gets an :class:`McpTask` as the agent does, whose
``report_usage`` adds that call's tokens to the hit before it is logged. On a miss or a
handoff the agent is called with an
:class:`McpTask`: ``task.messages`` holds the replayed calls and a note saying where and
why replay stopped, so the model makes only the missing calls, through
``task.call_tool`` / ``task.call_tools`` (parallel calls of one model turn, recorded in
the order given, whatever order they finish in).

**Proxy** (:func:`make_proxy`, :func:`serve_stdio`): forwards the upstream server's tools
and adds ``muscle_mem_replay(task, params)``, which a host's model calls first: a hit
performs the whole task upstream and says so; a miss or a handoff says what was done and
asks the model to carry on with the tools (its calls are recorded) and to call
``muscle_mem_done(answer)`` at the end, which stores the path. Each task is a run of its
own, with an id: the forwarded tools take an optional ``muscle_mem_run`` argument (taken
out before the call goes upstream) that says which task a call is for when a host does
several at once; one task in progress on a connection needs none.

**Usage.** MCP carries no token usage: a ``CallToolResult``, a sampling
``CreateMessageResult`` (role, content, model, stop reason) and a request's ``_meta``
(progress token, free-form keys no host fills with usage) have no field for it. The
tokens are the host model's, so the host reports them: an agent (and an ``answer=``)
with :meth:`McpTask.report_usage`, and ``muscle-mem stats`` counts what later hits saved.
The proxy's host can't: its runs log no tokens, and its hits are counted as hits, with
no tokens saved to show.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from muscle_mem import Check, Engine, ExecutedStep, Handoff, Outcome, Session
from muscle_mem.errors import ConfigurationError, MuscleMemError

from ._common import handoff_note, tool_checks

try:  # the framework is imported with this module only, never by `import muscle_mem`
    import mcp
    from mcp import types
    from mcp.server.lowlevel import Server
except ImportError as _missing:  # pragma: no cover - the extra is installed in CI
    raise ImportError(
        "muscle_mem.integrations.mcp needs the MCP SDK: pip install 'muscle-mem[mcp]'"
    ) from _missing

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

__all__ = [
    "DONE_TOOL",
    "REPLAY_TOOL",
    "RUN_ARGUMENT",
    "CachedClient",
    "McpTask",
    "ToolCallError",
    "as_messages",
    "make_proxy",
    "serve_stdio",
    "tool_version",
]

REPLAY_TOOL = "muscle_mem_replay"
DONE_TOOL = "muscle_mem_done"
# The argument the proxy adds to every tool (its own included): which task a call is for.
RUN_ARGUMENT = "muscle_mem_run"

Agent = Callable[["McpTask"], Awaitable[Any]]


class ToolCallError(Exception):
    """An MCP tool returned a result with ``is_error``: raised inside the engine so the
    call is not recorded (or, in replay, so replay stops there). ``result`` is the
    server's error result, which :class:`McpTask` hands back to the agent as MCP would.
    The tool failed, not muscle-mem, so it is not a ``MuscleMemError`` (all of which
    live in ``muscle_mem.errors``), just as an exception a decorated tool raises."""

    def __init__(self, tool: str, result: types.CallToolResult) -> None:
        super().__init__(f"MCP tool {tool!r} returned an error: {_text(result)[:200]}")
        self.result = result


def tool_version(tool: types.Tool) -> str:
    """The version of an MCP tool: a hash of what the model and the server agree on
    (its description and its input and output schemas), canonical JSON."""
    spec = {
        "description": tool.description or "",
        "input_schema": tool.input_schema,
        "output_schema": tool.output_schema,
    }
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return "mcp1:" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class _Call:
    """The callable behind one MCP tool: ``client.call_tool(name, arguments)``. The
    client is the run's (``inject=["client"]``), so one registration serves every
    connection to the server, and none is recorded."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, arguments: dict[str, Any], client: mcp.Client) -> Any:
        result = await client.call_tool(self.name, arguments)
        if result.is_error:
            raise ToolCallError(self.name, result)
        return result


class CachedClient:
    """An MCP client whose tool calls go through the cache: see the module's docstring.

    ``client`` is an entered :class:`mcp.Client` (or anything with its ``list_tools`` and
    ``call_tool``). ``server`` names the server in the tools' names (``mcp:<server>/<tool>``),
    so two servers' ``read`` tools are two tools; it defaults to the name the server gives
    itself. ``checks`` and ``post_checks`` map MCP tool names to a :class:`Check`.
    """

    def __init__(
        self,
        engine: Engine,
        client: Any,
        *,
        server: str | None = None,
        checks: Mapping[str, Check] | None = None,
        post_checks: Mapping[str, Check] | None = None,
    ) -> None:
        if not isinstance(engine, Engine):
            raise ConfigurationError(
                f"CachedClient(engine, client) takes a muscle_mem.Engine first, "
                f"got {type(engine).__qualname__}"
            )
        if not callable(getattr(client, "call_tool", None)) or not callable(
            getattr(client, "list_tools", None)
        ):
            raise ConfigurationError(
                "CachedClient(engine, client) takes an entered mcp.Client (with call_tool "
                f"and list_tools), got {type(client).__qualname__}"
            )
        if server is not None and (type(server) is not str or not server.strip()):
            raise ConfigurationError(f"server= takes a non-empty name, got {server!r}")
        self.engine = engine
        self.client = client
        self._server = server
        self._checks = tool_checks(checks, "checks", call="CachedClient")
        self._post_checks = tool_checks(post_checks, "post_checks", call="CachedClient")
        self._tools: dict[str, types.Tool] = {}  # by MCP name, as the server listed them

    @property
    def server(self) -> str:
        if self._server is None:
            info = getattr(self.client, "server_info", None)
            self._server = getattr(info, "name", None) or "server"
        return self._server

    def engine_name(self, tool: str) -> str:
        """The muscle-mem tool name of the MCP tool ``tool``."""
        return f"mcp:{self.server}/{tool}"

    async def load_tools(self) -> list[types.Tool]:
        """List the server's tools (every page) and register each with the engine. Call
        it again after the server's tools changed; :meth:`run` calls it the first time."""
        listed: list[types.Tool] = []
        cursor: str | None = None
        while True:
            page = await self.client.list_tools(cursor=cursor)
            listed.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        names = {tool.name for tool in listed}
        among = f"the tools server {self.server!r} lists"
        for option, given in (("checks", self._checks), ("post_checks", self._post_checks)):
            tool_checks(given, option, call="CachedClient", known=names, among=among)
        for tool in listed:
            self.engine.tool(
                _Call(tool.name),
                name=self.engine_name(tool.name),
                version=tool_version(tool),
                pre_check=self._checks.get(tool.name),
                post_check=self._post_checks.get(tool.name),
                inject=["client"],
            )
        self._tools = {tool.name: tool for tool in listed}
        return listed

    @property
    def tools(self) -> list[types.Tool]:
        """The tools :meth:`load_tools` listed, as the server described them."""
        return list(self._tools.values())

    def session(
        self,
        task: Any,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        about: Any = None,
        mode: str | None = None,
    ) -> Session:
        """The engine's session for ``task``, with this client injected into replay."""
        return self.engine.session(
            task, params=params, tags=tags, about=about, mode=mode, inject={"client": self.client}
        )

    async def run(
        self,
        task: Any,
        agent: Agent,
        *,
        params: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
        about: Any = None,
        mode: str | None = None,
        answer: Agent | None = None,
    ) -> Outcome:
        """Do ``task``: replay it if the checks allow, else ``await agent(McpTask)``.

        On a hit no agent (no model) runs; the outcome's ``result`` is the answer
        recorded with the path, or, with ``answer=``, what ``await answer(McpTask)``
        returns: one model call on ``task.messages``, the replayed calls
        (:func:`as_messages`), whose usage it reports with ``task.report_usage`` (the
        hit is logged after it, with that usage). On a miss or a handoff the agent's
        return value is the answer, stored with its path.
        """
        if not callable(agent):
            raise ConfigurationError(
                f"CachedClient.run(task, agent) takes an async agent(task: McpTask), "
                f"got {type(agent).__qualname__}"
            )
        if answer is not None and not callable(answer):
            raise ConfigurationError(
                f"answer= takes an async callable(task: McpTask) -> answer, got {answer!r}"
            )
        if not self._tools:
            await self.load_tools()
        async with self.session(task, params=params, tags=tags, about=about, mode=mode) as s:
            # A hit is held open until answered: a fresh answer's usage is logged with it.
            outcome = await s.areplay(commit_hit=answer is None)
            if outcome:
                if answer is None:
                    return outcome
                return s.commit(await answer(McpTask(self, s, task, outcome)))
            result = await agent(McpTask(self, s, task, outcome))
            return s.commit(result)


class McpTask:
    """What the agent gets on a miss or a handoff: the task, the conversation so far and
    the tools, whose calls are recorded into the run. An ``answer=`` gets one on a hit,
    to answer from the replayed calls and report that model call's usage (its
    ``call_tool`` refuses: the task is done).

    ``messages`` are MCP sampling messages: the task as a user message, then, after a
    handoff or a hit, each replayed call as an assistant ``tool_use`` and a user
    ``tool_result``, and after a handoff a user note saying where replay stopped and
    why. ``handoff`` is the engine's :class:`~muscle_mem.Handoff` (None on a miss or a
    hit); ``outcome`` is replay's.
    """

    def __init__(self, cached: CachedClient, session: Session, task: Any, outcome: Outcome):
        self._cached = cached
        self._session = session
        self.task = task
        self.outcome = outcome
        self.handoff: Handoff | None = session.handoff
        if outcome.hit:
            steps, reason = outcome.steps, None
        else:
            steps = self.handoff.steps if self.handoff else ()
            reason = self.handoff.reason if self.handoff else None
        self.messages: list[types.SamplingMessage] = as_messages(steps, task=task, reason=reason)

    @property
    def tools(self) -> list[types.Tool]:
        """The server's tools, to show the model."""
        return self._cached.tools

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None = None
    ) -> types.CallToolResult:
        """Call the MCP tool ``name`` and record the call. An error result is returned,
        as MCP returns it, and not recorded."""
        if name not in self._cached._tools:
            known = ", ".join(map(repr, sorted(self._cached._tools))) or "none"
            raise ConfigurationError(
                f"McpTask.call_tool({name!r}): server {self._cached.server!r} lists no tool "
                f"{name!r} (it lists {known})"
            )
        try:
            result: types.CallToolResult = await self._session.acall(
                self._cached.engine_name(name), dict(arguments or {}), client=self._cached.client
            )
        except ToolCallError as error:
            return error.result
        return result

    async def call_tools(
        self, calls: Sequence[tuple[str, Mapping[str, Any] | None]]
    ) -> list[types.CallToolResult]:
        """Run the calls of one model turn concurrently, as hosts do with parallel tool
        calls. They are recorded in the order given: each call takes its place when it
        starts, and the tasks start in this order (each reaches the engine before its
        first await), so the order never depends on which finishes first."""
        return list(await asyncio.gather(*(self.call_tool(n, a) for n, a in calls)))

    def report_usage(self, tokens: int = 0, cost: float = 0.0) -> None:
        """Add a model call's tokens (and cost) to this run: MCP carries no usage, the
        host's model knows it. ``muscle-mem stats`` counts them as saved by later hits."""
        self._session.report_usage(tokens, cost)


def as_messages(
    steps: Iterable[ExecutedStep], *, task: Any = None, reason: str | None = None
) -> list[types.SamplingMessage]:
    """Replayed steps as MCP's own conversation: per call, an assistant message with a
    ``tool_use`` and a user message with its ``tool_result``; the task first (as a user
    message) when given, and a note with ``reason`` last when replay stopped."""
    messages: list[types.SamplingMessage] = []
    if task is not None:
        messages.append(_user(str(task)))
    done = 0
    for i, step in enumerate(steps):
        name = step.tool.rpartition("/")[2] if step.tool.startswith("mcp:") else step.tool
        call_id = f"mm_{i}"
        arguments = step.arguments.get("arguments", step.arguments)
        messages.append(
            types.SamplingMessage(
                role="assistant",
                content=types.ToolUseContent(name=name, id=call_id, input=dict(arguments)),
            )
        )
        result = step.result
        messages.append(
            types.SamplingMessage(
                role="user",
                content=types.ToolResultContent(
                    tool_use_id=call_id,
                    content=list(getattr(result, "content", []) or []),
                    structured_content=getattr(result, "structured_content", None),
                    is_error=bool(getattr(result, "is_error", False)),
                ),
            )
        )
        done += 1
    if reason is not None:
        messages.append(_user(handoff_note(done, reason)))
    return messages


def _user(text: str) -> types.SamplingMessage:
    return types.SamplingMessage(role="user", content=types.TextContent(text=text))


def _text(result: Any) -> str:
    """A tool result's text content, joined: what a model reads of it."""
    parts = [getattr(block, "text", "") for block in getattr(result, "content", []) or []]
    return " ".join(p for p in parts if p)


# -- the proxy -------------------------------------------------------------------------

_RUN_PROPERTY = {
    "type": "string",
    "description": f"the task id {REPLAY_TOOL} gave; needed only while you do several "
    "tasks through this server at once",
}

_REPLAY_SPEC = types.Tool(
    name=REPLAY_TOOL,
    description=(
        "Call this first for any task. Replays the whole task from a cache of earlier "
        "runs when it is safe. If it says the task is done, it is done. Otherwise it says "
        "what was done already: carry on with the other tools, then call "
        f"{DONE_TOOL} with your final answer so the task is learned."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "task": {"type": "string", "description": "the task, in a stable wording"},
            "params": {
                "type": "object",
                "description": "the values that change from one such task to the next "
                "(a customer's name, an id), by name",
                "additionalProperties": True,
            },
        },
        "required": ["task"],
    },
)

_DONE_SPEC = types.Tool(
    name=DONE_TOOL,
    description=(
        f"Call this when a task that {REPLAY_TOOL} did not finish is done, with your "
        "final answer: the tool calls you made for it are stored and replayed next time."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "answer": {"type": "string", "description": "your final answer"},
            RUN_ARGUMENT: _RUN_PROPERTY,
        },
        "required": ["answer"],
    },
)


@dataclasses.dataclass
class _Learning:
    """A task the proxy is learning: the host's calls on ``host`` record into it."""

    task: McpTask
    host: object  # the server run (its lifespan context) the task was started on


class _Proxy:
    """The proxy's state: the upstream's cached client and the tasks being learned, each
    its own run (its own session), by run id.

    A call is part of the task whose id it passes (``muscle_mem_run``, an argument the
    proxy adds to every forwarded tool and takes out before forwarding), else of the one
    task in progress for its host; with none it passes through unrecorded, and with
    several it is refused, since it can't be known whose it is. MCP 2's requests carry
    no connection (its newest protocol is stateless), so a host is a run of the server:
    each stdio proxy process, each in-process client, has its own lifespan context. One
    server run serving many hosts (over HTTP) keeps their tasks apart by id alone.
    """

    def __init__(self, cached: CachedClient) -> None:
        self.cached = cached
        self.learning: dict[str, _Learning] = {}

    async def list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        forwarded = [_with_run_argument(tool) for tool in self.cached.tools]
        return types.ListToolsResult(tools=[_REPLAY_SPEC, _DONE_SPEC, *forwarded])

    async def call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        arguments = dict(params.arguments or {})
        run = arguments.pop(RUN_ARGUMENT, None)
        if params.name == REPLAY_TOOL:
            return await self._replay(ctx.lifespan_context, arguments)
        found = self._find(ctx.lifespan_context, run)
        if isinstance(found, types.CallToolResult):  # an error to show the model
            return found
        if params.name == DONE_TOOL:
            return self._done(found, arguments)
        if found is not None:  # a task is being learned: the call is part of it
            return await self.learning[found].task.call_tool(params.name, arguments)
        result: types.CallToolResult = await self.cached.client.call_tool(params.name, arguments)
        return result

    def _find(self, host: object, run: Any) -> str | types.CallToolResult | None:
        """The id of the task a call belongs to, None for none, or an error result."""
        mine = [rid for rid, learning in self.learning.items() if learning.host is host]
        if run is not None:
            if run not in mine:
                known = ", ".join(map(repr, mine)) or "none"
                return _error(
                    f"{RUN_ARGUMENT}={run!r} is not a task in progress here "
                    f"(those are: {known}); {REPLAY_TOOL} gives a task's id"
                )
            return str(run)
        if len(mine) > 1:
            return _error(
                f"{len(mine)} tasks are in progress ({', '.join(map(repr, mine))}): pass "
                f"{RUN_ARGUMENT} with the id {REPLAY_TOOL} gave the task this call is for"
            )
        return mine[0] if mine else None

    async def _replay(self, host: object, arguments: dict[str, Any]) -> types.CallToolResult:
        task, params = arguments.get("task"), arguments.get("params") or {}
        if type(task) is not str or not task.strip() or not isinstance(params, dict):
            return _error(f"{REPLAY_TOOL} takes a task (text) and params (an object)")
        session = self.cached.session(task, params=params)
        try:
            outcome = await session.areplay()
        except MuscleMemError as error:  # mode "replay" or on_divergence="raise"
            return _error(f"{REPLAY_TOOL}: {error}")
        lines = [_describe(step) for step in outcome.steps]
        steps = [_step_data(step) for step in outcome.steps]
        if outcome:
            text = f"Done from cache: {outcome.replayed} step(s) replayed.\n" + "\n".join(lines)
            if outcome.result is not None:
                text += f"\nAnswer: {outcome.result}"
            data = {"status": "hit", "steps": steps, "answer": outcome.result}
            return types.CallToolResult(content=[_block(text)], structured_content=data)
        run = secrets.token_hex(4)
        self.learning[run] = _Learning(McpTask(self.cached, session, task, outcome), host)
        then = (
            f"then call {DONE_TOOL}(answer). This task's id is {run!r}: while you do another "
            f"task through this server at the same time, pass {RUN_ARGUMENT}={run!r} to "
            f"each tool call of this one and to {DONE_TOOL}."
        )
        if session.handoff is not None:
            text = (
                f"Replayed {len(lines)} step(s) from cache:\n" + "\n".join(lines) + "\n"
                f"Then replay stopped: {session.handoff.reason}.\nCarry on from there with "
                f"the tools (don't repeat these steps), {then}"
            )
        else:
            text = (
                "Nothing cached fits this task: do it with the tools (your calls are "
                f"recorded), {then}"
            )
        data = {"status": str(outcome.status), "steps": steps, "reason": outcome.reason, "run": run}
        return types.CallToolResult(content=[_block(text)], structured_content=data)

    def _done(self, run: str | None, arguments: dict[str, Any]) -> types.CallToolResult:
        if run is None:
            return _error(f"no task in progress: call {REPLAY_TOOL} first")
        try:
            outcome = self.learning[run].task._session.commit(arguments.get("answer"))
        except ConfigurationError as error:  # a call of the task is still running
            return _error(f"{DONE_TOOL}: {error}")
        del self.learning[run]
        text = f"Learned: the next {REPLAY_TOOL} of this task replays it ({outcome.status})."
        return types.CallToolResult(content=[_block(text)])

    def close(self) -> None:
        """The host went away mid-task: nothing it did is kept, each run is an error."""
        learning, self.learning = self.learning, {}
        for each in learning.values():
            each.task._session.fail(ConnectionError("the MCP host disconnected before it was done"))


def _with_run_argument(tool: types.Tool) -> types.Tool:
    """A forwarded tool as the host sees it: its input schema takes ``muscle_mem_run``
    too (optional), which says which task in progress a call is for."""
    schema = dict(tool.input_schema)
    properties = dict(schema.get("properties") or {})
    properties[RUN_ARGUMENT] = _RUN_PROPERTY
    schema["properties"] = properties
    return tool.model_copy(update={"input_schema": schema})


async def make_proxy(
    engine: Engine,
    upstream: Any,
    *,
    server: str | None = None,
    checks: Mapping[str, Check] | None = None,
    post_checks: Mapping[str, Check] | None = None,
) -> tuple[Server[Any], Callable[[], None]]:
    """A caching MCP server in front of ``upstream`` (an entered :class:`mcp.Client`):
    the upstream's tools, forwarded, plus ``muscle_mem_replay`` and ``muscle_mem_done``.
    Returns the low-level server and a ``close()`` to call when its host has gone, which
    fails the tasks left in progress. Several tasks may be learned at once, each its own
    run: see :class:`_Proxy` for how a call finds its task."""
    cached = CachedClient(engine, upstream, server=server, checks=checks, post_checks=post_checks)
    await cached.load_tools()
    clash = {REPLAY_TOOL, DONE_TOOL} & {tool.name for tool in cached.tools}
    if clash:
        raise ConfigurationError(
            f"server {cached.server!r} has a tool named {sorted(clash)[0]!r}, which the "
            "proxy adds itself; it cannot stand in front of it"
        )
    taking = sorted(
        tool.name
        for tool in cached.tools
        if RUN_ARGUMENT in (tool.input_schema.get("properties") or {})
    )
    if taking:
        raise ConfigurationError(
            f"server {cached.server!r} has tools taking an argument named {RUN_ARGUMENT!r} "
            f"({', '.join(taking)}), which the proxy adds to every tool itself; it cannot "
            "stand in front of them"
        )
    proxy = _Proxy(cached)
    lowlevel: Server[Any] = Server(
        f"muscle-mem:{cached.server}",
        instructions=f"Call {REPLAY_TOOL} first for any task; it replays what it can.",
        on_list_tools=proxy.list_tools,
        on_call_tool=proxy.call_tool,
    )
    return lowlevel, proxy.close


async def serve_stdio(
    engine: Engine,
    command: Sequence[str],
    *,
    server: str | None = None,
    checks: Mapping[str, Check] | None = None,
    post_checks: Mapping[str, Check] | None = None,
) -> None:
    """Run ``command`` as the upstream MCP server (over its stdin/stdout) and serve the
    caching proxy on this process's stdin/stdout until the host disconnects. ``checks``
    and ``post_checks`` are :func:`make_proxy`'s."""
    from mcp.server.stdio import stdio_server

    if not command:
        raise ConfigurationError("mcp-proxy needs the upstream server's command after --")
    upstream_params = mcp.StdioServerParameters(command=command[0], args=list(command[1:]))
    async with mcp.Client(upstream_params) as upstream:
        lowlevel, close = await make_proxy(
            engine, upstream, server=server, checks=checks, post_checks=post_checks
        )
        try:
            async with stdio_server() as (read, write):
                await lowlevel.run(read, write, lowlevel.create_initialization_options())
        finally:
            close()


def _describe(step: ExecutedStep) -> str:
    name = step.tool.rpartition("/")[2]
    arguments = step.arguments.get("arguments", step.arguments)
    shown = ", ".join(f"{k}={v!r}" for k, v in dict(arguments).items())
    return f"- {name}({shown}) -> {_text(step.result)[:120]}"


def _step_data(step: ExecutedStep) -> dict[str, Any]:
    result = step.result
    dumped = (
        result.model_dump(mode="json", by_alias=True, exclude_none=True)
        if isinstance(result, types.CallToolResult)
        else None
    )
    return {
        "tool": step.tool.rpartition("/")[2],
        "arguments": dict(step.arguments.get("arguments", step.arguments)),
        "result": dumped,
    }


def _block(text: str) -> types.TextContent:
    return types.TextContent(text=text)


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[_block(text)], is_error=True)
