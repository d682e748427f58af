"""The MCP adapter against the real ``mcp`` SDK, offline: an ``MCPServer`` reached through
the SDK's in-process client, a scripted model that reads the conversation it is given,
and the caching proxy both in memory and as ``muscle-mem mcp-proxy`` over stdio."""

from __future__ import annotations

import asyncio
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from muscle_mem import Check, ConfigurationError, Engine, Status

if os.environ.get("MUSCLE_MEM_REQUIRE_POSTGRES"):  # CI installs the extra: it must run
    import mcp
else:
    mcp = pytest.importorskip("mcp", reason="the MCP adapter needs pip install 'muscle-mem[mcp]'")

from mcp import types
from mcp.server.mcpserver import Context, MCPServer

from muscle_mem.cli import main as cli_main
from muscle_mem.cli.mcp import load_checks
from muscle_mem.integrations.mcp import (
    DONE_TOOL,
    REPLAY_TOOL,
    RUN_ARGUMENT,
    CachedClient,
    McpTask,
    as_messages,
    make_proxy,
    tool_version,
)

ROOT = Path(__file__).resolve().parent.parent


def signup_server(world: dict[str, Any]) -> MCPServer:
    """A web form behind MCP: what the tools do lands in ``world``."""
    server = MCPServer("forms")

    @server.tool()
    def open_form(form: str) -> str:
        """Open a form by name."""
        world["opened"].append(form)
        return f"opened {form}"

    @server.tool()
    async def type_into(field: str, text: str) -> str:
        """Type text into a field of the open form."""
        # The first field is the slowest: parallel calls finish out of order.
        await asyncio.sleep(0.05 if field == "name" else 0)
        world["fields"][field] = text
        return f"{field} = {text}"

    @server.tool()
    def submit(ctx: Context) -> str:
        """Submit the open form. Takes the server's context, as many MCP tools do."""
        world["submitted"].append((dict(world["fields"]), ctx.request_id is not None))
        return "submitted"

    @server.tool()
    def flaky(n: int) -> str:
        """Fails while world['down'] is set."""
        if world["down"]:
            raise ValueError("service unavailable")
        return f"ok {n}"

    return server


def new_world() -> dict[str, Any]:
    return {"opened": [], "fields": {}, "submitted": [], "down": False}


# The form's layout, per field: what the pre-check of type_into judges.
LAYOUT = {"name": "#name", "email": "#email"}


def layout_check() -> Check:
    return Check(capture=lambda arguments, client: LAYOUT[arguments["field"]])


class ScriptedModel:
    """A model scripted by turns of tool calls, reading the conversation it is given: it
    asks only for the calls not yet in it, so after a handoff it makes the missing ones."""

    def __init__(self, turns: list[list[tuple[str, dict[str, Any]]]], answer: str) -> None:
        self.turns, self.answer = turns, answer
        self.calls = 0  # model requests
        self.asked: list[tuple[str, dict[str, Any]]] = []  # every tool call it asked for

    def __call__(self, messages: list[types.SamplingMessage]) -> types.CreateMessageResultWithTools:
        self.calls += 1
        done = [
            (m.content.name, m.content.input)
            for m in messages
            if isinstance(m.content, types.ToolUseContent)
        ]
        for turn in self.turns:
            missing = [call for call in turn if call not in done]
            if missing:
                self.asked.extend(missing)
                uses = [
                    types.ToolUseContent(name=n, id=f"c{self.calls}_{i}", input=a)
                    for i, (n, a) in enumerate(missing)
                ]
                return types.CreateMessageResultWithTools(
                    role="assistant", content=uses, model="scripted", stop_reason="toolUse"
                )
        return types.CreateMessageResultWithTools(
            role="assistant",
            content=types.TextContent(text=self.answer),
            model="scripted",
            stop_reason="endTurn",
        )


def agent_with(model: ScriptedModel, tokens_per_call: int = 100):
    """A host's agent loop: model turn, the turn's tool calls in parallel, repeat."""

    async def agent(task: McpTask) -> Any:
        messages = list(task.messages)
        while True:
            reply = model(messages)
            task.report_usage(tokens_per_call)
            if reply.stop_reason != "toolUse":
                return reply.content.text
            uses = reply.content if isinstance(reply.content, list) else [reply.content]
            results = await task.call_tools([(u.name, u.input) for u in uses])
            for use, result in zip(uses, results, strict=True):
                messages.append(types.SamplingMessage(role="assistant", content=use))
                messages.append(
                    types.SamplingMessage(
                        role="user",
                        content=types.ToolResultContent(
                            tool_use_id=use.id, content=result.content, is_error=result.is_error
                        ),
                    )
                )

    return agent


def signup_model(name: str, email: str) -> ScriptedModel:
    return ScriptedModel(
        [
            [("open_form", {"form": "signup"})],
            [
                ("type_into", {"field": "name", "text": name}),
                ("type_into", {"field": "email", "text": email}),
            ],
            [("submit", {})],
        ],
        answer=f"signed up {name}",
    )


TASK = "sign up the customer"


def test_miss_hit_handoff_hit() -> None:
    async def main() -> None:
        world = new_world()
        engine = Engine()
        async with mcp.Client(signup_server(world)) as client:
            cached = CachedClient(engine, client, checks={"type_into": layout_check()})

            # Miss: the model does the whole task, three tool turns and an answer.
            model = signup_model("John", "john@x.io")
            params = {"name": "John", "email": "john@x.io"}
            miss = await cached.run(TASK, agent_with(model), params=params)
            assert miss.status is Status.MISS and model.calls == 4 and miss.tokens == 400
            assert world["submitted"] == [({"name": "John", "email": "john@x.io"}, True)]
            assert miss.result == "signed up John"

            # Hit for another customer: every call replayed through the live client, the
            # recorded answer with her params, and no model request at all.
            model = signup_model("Jane", "jane@x.io")
            params = {"name": "Jane", "email": "jane@x.io"}
            hit = await cached.run(TASK, agent_with(model), params=params)
            assert hit.status is Status.HIT and model.calls == 0
            assert hit.result == "signed up Jane"
            assert world["submitted"][-1] == ({"name": "Jane", "email": "jane@x.io"}, True)
            # The parallel turn replays in the recorded order, "name" first, though its
            # call finished last when recorded.
            assert [(s.tool, s.arguments) for s in hit.steps] == [
                ("mcp:forms/open_form", {"arguments": {"form": "signup"}}),
                ("mcp:forms/type_into", {"arguments": {"field": "name", "text": "Jane"}}),
                ("mcp:forms/type_into", {"arguments": {"field": "email", "text": "jane@x.io"}}),
                ("mcp:forms/submit", {"arguments": {}}),
            ]
            assert all(isinstance(s.result, types.CallToolResult) for s in hit.steps)
            messages = as_messages(hit.steps, task=TASK)
            assert [m.role for m in messages] == ["user"] + ["assistant", "user"] * 4

            # Handoff: the email field moved, so replay stops at its type_into; the model
            # gets the replayed calls as its conversation and asks only for what's missing.
            LAYOUT["email"] = "#mail"
            try:
                model = signup_model("Ann", "ann@x.io")
                params = {"name": "Ann", "email": "ann@x.io"}
                handoff = await cached.run(TASK, agent_with(model), params=params)
                assert handoff.status is Status.HANDOFF and handoff.replayed == 2
                assert model.asked == [
                    ("type_into", {"field": "email", "text": "ann@x.io"}),
                    ("submit", {}),
                ]
                assert model.calls == 3 and handoff.tokens == 300
                assert world["submitted"][-1] == ({"name": "Ann", "email": "ann@x.io"}, True)

                # Hit again on the new layout.
                model = signup_model("Bob", "bob@x.io")
                params = {"name": "Bob", "email": "bob@x.io"}
                again = await cached.run(TASK, agent_with(model), params=params)
                assert again.status is Status.HIT and model.calls == 0
                assert world["submitted"][-1] == ({"name": "Bob", "email": "bob@x.io"}, True)
            finally:
                LAYOUT["email"] = "#email"

        # What the agent reported (task.report_usage) is in the run log: stats count the
        # miss's 400 tokens and the handoff's 300, and what the two hits saved.
        stats = engine.stats().total
        assert (stats.hits, stats.tokens, stats.tokens_saved) == (2, 700, 800)

    asyncio.run(main())


def test_a_hit_can_spend_one_model_call_on_a_fresh_answer() -> None:
    async def main() -> None:
        engine = Engine()
        async with mcp.Client(signup_server(new_world())) as client:
            cached = CachedClient(engine, client)
            params = {"name": "John", "email": "john@x.io"}
            await cached.run(TASK, agent_with(signup_model("John", "john@x.io")), params=params)
            seen: list[list[types.SamplingMessage]] = []

            async def answer(task: McpTask) -> str:
                seen.append(task.messages)
                task.report_usage(tokens=30, cost=0.001)  # the host's model call
                with pytest.raises(ConfigurationError, match="held open"):
                    await task.call_tool("submit")  # the task is done
                return f"fresh answer after {len(task.messages)} messages"

            params = {"name": "Jane", "email": "jane@x.io"}
            model = signup_model("Jane", "jane@x.io")
            hit = await cached.run(TASK, agent_with(model), params=params, answer=answer)
            assert hit.hit and model.calls == 0 and len(seen) == 1
            assert hit.result == "fresh answer after 9 messages"
            assert (hit.tokens, hit.cost) == (30, 0.001)

        # Logged with the hit: stats set the miss's four model calls against this one.
        assert engine.store.runs()[-1].tokens == 30
        assert engine.stats().total.tokens_saved == 400 - 30

    asyncio.run(main())


def test_error_results_are_returned_but_never_recorded() -> None:
    async def main() -> None:
        world = new_world()
        engine = Engine()
        async with mcp.Client(signup_server(world)) as client:
            cached = CachedClient(engine, client)

            async def agent(task: McpTask) -> str:
                world["down"] = True
                failed = await task.call_tool("flaky", {"n": 1})
                world["down"] = False
                ok = await task.call_tool("flaky", {"n": 2})
                assert failed.is_error and not ok.is_error
                return "done"

            miss = await cached.run("check the service", agent)
            assert miss.status is Status.MISS

            async def never(task: McpTask) -> str:
                raise AssertionError("a hit calls no agent")

            hit = await cached.run("check the service", never)
            assert hit.hit and [s.arguments for s in hit.steps] == [{"arguments": {"n": 2}}]

    asyncio.run(main())


def test_a_changed_tool_schema_invalidates_its_steps() -> None:
    async def main() -> None:
        engine = Engine()

        def server(description: str) -> MCPServer:
            s = MCPServer("svc")

            @s.tool(description=description)
            def ping(n: int) -> str:
                return f"pong {n}"

            return s

        async def agent(task: McpTask) -> str:
            await task.call_tool("ping", {"n": 1})
            return "ok"

        async with mcp.Client(server("Ping the service.")) as client:
            cached = CachedClient(engine, client)
            assert (await cached.run("ping", agent)).status is Status.MISS
            assert (await cached.run("ping", agent)).hit
        async with mcp.Client(server("Ping the service, v2.")) as client:
            cached = CachedClient(engine, client)
            assert (await cached.run("ping", agent)).status is Status.MISS

    asyncio.run(main())
    a = types.Tool(name="t", description="x", input_schema={"type": "object"})
    b = types.Tool(name="t", description="x", input_schema={"type": "object", "properties": {}})
    assert tool_version(a) != tool_version(b) and tool_version(a) == tool_version(a)


def test_misuse_is_a_configuration_error() -> None:
    async def main() -> None:
        engine = Engine()
        async with mcp.Client(signup_server(new_world())) as client:
            with pytest.raises(ConfigurationError, match=r"names .typo., not among the tools"):
                await CachedClient(engine, client, checks={"typo": layout_check()}).load_tools()
            with pytest.raises(ConfigurationError, match="dict of tool name to Check"):
                CachedClient(engine, client, checks={"open_form": lambda: 1})  # type: ignore[dict-item]
            with pytest.raises(ConfigurationError, match=r"takes a muscle_mem\.Engine"):
                CachedClient(client, client)  # type: ignore[arg-type]

            async def agent(task: McpTask) -> str:
                await task.call_tool("nope", {})
                return "x"

            with pytest.raises(ConfigurationError, match="lists no tool 'nope'"):
                await CachedClient(engine, client).run("bad", agent)

    asyncio.run(main())


def test_proxy_in_memory_learns_then_replays_the_whole_task() -> None:
    async def main() -> None:
        world = new_world()
        engine = Engine()
        async with mcp.Client(signup_server(world)) as upstream:
            server, close = await make_proxy(engine, upstream, checks={"type_into": layout_check()})
            async with mcp.Client(server) as host:
                names = {t.name for t in (await host.list_tools()).tools}
                assert {REPLAY_TOOL, DONE_TOOL, "open_form", "type_into", "submit"} <= names

                params = {"name": "John", "email": "john@x.io"}
                first = await host.call_tool(REPLAY_TOOL, {"task": TASK, "params": params})
                assert first.structured_content["status"] == "miss"
                await host.call_tool("open_form", {"form": "signup"})
                await asyncio.gather(
                    host.call_tool("type_into", {"field": "name", "text": "John"}),
                    host.call_tool("type_into", {"field": "email", "text": "john@x.io"}),
                )
                await host.call_tool("submit", {})
                done = await host.call_tool(DONE_TOOL, {"answer": "signed up {name}"})
                assert not done.is_error

                params = {"name": "Jane", "email": "jane@x.io"}
                hit = await host.call_tool(REPLAY_TOOL, {"task": TASK, "params": params})
                assert hit.structured_content["status"] == "hit", hit
                assert len(hit.structured_content["steps"]) == 4
                assert world["submitted"][-1][0] == {"name": "Jane", "email": "jane@x.io"}
                # No second task is open: a call now passes through unrecorded.
                assert (await host.call_tool(DONE_TOOL, {"answer": "x"})).is_error
            close()

    asyncio.run(main())


def _text(result: types.CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def test_the_proxy_learns_concurrent_tasks_each_in_its_own_run() -> None:
    async def main() -> None:
        world = new_world()
        engine = Engine()

        async def replay(host: Any, task: str, **params: Any) -> dict[str, Any]:
            reply = await host.call_tool(REPLAY_TOOL, {"task": task, "params": params})
            return reply.structured_content

        async with mcp.Client(signup_server(world)) as upstream:
            server, close = await make_proxy(engine, upstream)
            async with mcp.Client(server) as a, mcp.Client(server) as b:
                listed = {t.name: t for t in (await a.list_tools()).tools}
                assert RUN_ARGUMENT in listed["type_into"].input_schema["properties"]

                # Two hosts, a task each, their calls interleaved: each call is its own
                # host's task's, with no id needed.
                assert (await replay(a, "open the form"))["status"] == "miss"
                assert (await replay(b, "type the name", name="Jo"))["status"] == "miss"
                await asyncio.gather(
                    a.call_tool("open_form", {"form": "signup"}),
                    b.call_tool("type_into", {"field": "name", "text": "Jo"}),
                )
                assert not (await b.call_tool(DONE_TOOL, {"answer": "typed"})).is_error
                assert not (await a.call_tool(DONE_TOOL, {"answer": "opened"})).is_error

                # One host, two tasks at once: a call says which task it is for.
                first = (await replay(a, "submit the form"))["run"]
                second = (await replay(a, "check the service"))["run"]
                ambiguous = await a.call_tool("submit", {})
                assert ambiguous.is_error and "2 tasks are in progress" in _text(ambiguous)
                assert world["submitted"] == []  # refused, not forwarded
                await a.call_tool("flaky", {"n": 7, RUN_ARGUMENT: second})
                await a.call_tool("submit", {RUN_ARGUMENT: first})
                unknown = await a.call_tool("submit", {RUN_ARGUMENT: "nope"})
                assert unknown.is_error and "not a task in progress" in _text(unknown)
                # b can't name a's task: a host's tasks are its own.
                assert (await b.call_tool(DONE_TOOL, {"answer": "x", RUN_ARGUMENT: first})).is_error
                assert (await a.call_tool(DONE_TOOL, {"answer": "x"})).is_error  # which one?
                for run in (first, second):
                    done = await a.call_tool(DONE_TOOL, {"answer": "done", RUN_ARGUMENT: run})
                    assert not done.is_error, done

                # Each task learned its own calls only: each replays as one step.
                for host, task, params in [
                    (a, "open the form", {}),
                    (b, "type the name", {"name": "Al"}),
                    (b, "submit the form", {}),
                    (a, "check the service", {}),
                ]:
                    hit = await replay(host, task, **params)
                    assert hit["status"] == "hit" and len(hit["steps"]) == 1, (task, hit)
                assert world["fields"]["name"] == "Al"
            close()
        stats = engine.stats().total
        assert (stats.misses, stats.hits, stats.errors) == (4, 4, 0)  # the proxy's hits count

    asyncio.run(main())


def test_close_fails_the_tasks_left_in_progress() -> None:
    async def main() -> None:
        engine = Engine()
        async with mcp.Client(signup_server(new_world())) as upstream:
            server, close = await make_proxy(engine, upstream)
            async with mcp.Client(server) as host:
                await host.call_tool(REPLAY_TOOL, {"task": "open the form"})
                await host.call_tool("open_form", {"form": "signup"})
            close()
        assert [r.status for r in engine.store.runs()] == ["error"]
        assert engine.store.tasks() == []

    asyncio.run(main())


CHECKS_MODULE = """
from muscle_mem import Check
from pathlib import Path

def _layout(arguments, client):
    return Path(__file__).with_name("layout.txt").read_text()

LAYOUT = Check(capture=_layout)
CHECKS = {"add_note": LAYOUT, "other": (None, LAYOUT)}
NOTES = {"add_note": LAYOUT}
NOT_A_DICT = [LAYOUT]
BAD_ENTRY = {"add_note": "a check"}
BAD_PAIR = {"add_note": (LAYOUT, LAYOUT, LAYOUT)}
"""


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mm_checks", "write MODULE:NAME"),
        ("mm_no_such_module:CHECKS", "cannot import 'mm_no_such_module'"),
        ("mm_checks:MISSING", "'mm_checks' has no 'MISSING'"),
        ("mm_checks:NOT_A_DICT", "is a list, not a dict of MCP tool name"),
        ("mm_checks:BAD_ENTRY", "'add_note' maps to 'a check', not a Check"),
        ("mm_checks:BAD_PAIR", "not a Check or a \\(pre_check, post_check\\) pair"),
    ],
)
def test_mcp_proxy_checks_from_the_command_line_say_what_is_wrong(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    spec: str,
    message: str,
) -> None:
    (tmp_path / "mm_checks.py").write_text(CHECKS_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    store = f"sqlite:///{tmp_path / 'cache.db'}"
    code = cli_main(["mcp-proxy", "--store", store, "--checks", spec, "--", "never-started"])
    assert code == 2
    assert re.search(message, capsys.readouterr().err)


def test_load_checks_splits_pre_and_post_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "mm_checks_ok.py").write_text(CHECKS_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    pre, post = load_checks("mm_checks_ok:CHECKS")
    assert set(pre) == {"add_note"} and set(post) == {"other"}


def test_mcp_proxy_command_over_stdio(tmp_path: Path) -> None:
    """``muscle-mem mcp-proxy --checks ... -- <server>`` as a host starts it: a subprocess
    on stdio, its checks imported from the directory it runs in."""
    store = f"sqlite:///{tmp_path / 'cache.db'}"
    (tmp_path / "notes_checks.py").write_text(CHECKS_MODULE)
    layout = tmp_path / "layout.txt"
    layout.write_text("v1")
    upstream = tmp_path / "upstream.py"
    upstream.write_text(
        "from mcp.server.mcpserver import MCPServer\n"
        "server = MCPServer('notes')\n"
        "@server.tool()\n"
        "def add_note(text: str) -> str:\n"
        "    with open(__file__ + '.log', 'a') as f:\n"
        "        f.write(text + '\\n')\n"
        "    return 'noted'\n"
        "server.run()\n"
    )
    proxy = mcp.StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "muscle_mem",
            "mcp-proxy",
            "--store",
            store,
            "--checks",
            "notes_checks:NOTES",
            "--",
            sys.executable,
            str(upstream),
        ],
        cwd=str(tmp_path),
    )

    async def host() -> list[str]:
        # One connection (each costs two interpreters starting): learn, then replay.
        async with mcp.Client(proxy) as client:

            async def replay(text: str) -> str:
                reply = await client.call_tool(
                    REPLAY_TOOL, {"task": "note", "params": {"text": text}}
                )
                return reply.structured_content["status"]

            first = await replay("milk")
            await client.call_tool("add_note", {"text": "milk"})
            await client.call_tool(DONE_TOOL, {"answer": "noted"})
            second = await replay("tea")
            layout.write_text("v2")  # the pre-check from --checks no longer passes
            third = await replay("jam")
            return [first, second, third]

    assert asyncio.run(host()) == ["miss", "hit", "miss"]
    assert Path(f"{upstream}.log").read_text().splitlines() == ["milk", "tea"]


def test_the_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "examples" / "mcp_agent.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "miss" in out and "hit" in out and "model calls: 0" in out


def test_importing_muscle_mem_does_not_import_mcp() -> None:
    code = "import sys, muscle_mem, muscle_mem.integrations; print('mcp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
