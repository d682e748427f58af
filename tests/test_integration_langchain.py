"""The LangChain / LangGraph adapter against the real packages, offline, with LangChain's
own fake chat model scripted turn by turn: miss, hit with no model call, a handoff in
which the model makes only the missing calls, hit; a tool taking the framework's
context; parallel tool calls; the same through a hand-built LangGraph ToolNode.

Skipped when LangChain isn't installed, except under CI (MUSCLE_MEM_REQUIRE_POSTGRES=1,
set by .ci/run, which installs the extra): there a missing package fails.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import runpy
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import Field

if os.environ.get("MUSCLE_MEM_REQUIRE_POSTGRES") != "1":
    pytest.importorskip("langchain", reason="pip install 'muscle-mem[langchain]'", minversion="1")

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain.tools import ToolRuntime
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import InjectedToolCallId, ToolException, tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from muscle_mem import Check, ConfigurationError, Engine
from muscle_mem.integrations.langchain import MuscleMemMiddleware

ROOT = Path(__file__).resolve().parents[1]
_ids = itertools.count()


class Scripted(GenericFakeChatModel):
    """GenericFakeChatModel that accepts tools (create_agent binds them; the base class
    raises) and keeps the messages of every call, to count calls and read the history."""

    seen: list = Field(default_factory=list)  # a pydantic field: one list per model

    def bind_tools(self, tools: Any, **kwargs: Any) -> Scripted:
        return self

    def _generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def scripted(*turns: AIMessage) -> Scripted:
    return Scripted(messages=iter(turns))


def calls(*pairs: tuple[str, dict], usage: int = 100) -> AIMessage:
    tool_calls = [  # ids as a model makes them: unique in the conversation
        {"name": name, "args": args, "id": f"call_{i}_{next(_ids)}"}
        for i, (name, args) in enumerate(pairs)
    ]
    return AIMessage("", tool_calls=tool_calls, usage_metadata=_usage(usage))


def answer(text: str, usage: int = 100) -> AIMessage:
    return AIMessage(text, usage_metadata=_usage(usage))


def _usage(total: int) -> dict:
    return {"input_tokens": total - 10, "output_tokens": 10, "total_tokens": total}


def form_tools(page: dict) -> list:
    @tool
    def type_into(selector: str, text: str) -> str:
        """Type text into the form field at the CSS selector."""
        if selector not in page["selectors"].values():
            raise ToolException(f"no field {selector}")
        page["fields"][selector] = text
        return f"typed into {selector}"

    type_into.handle_tool_error = True  # the model is told, as LangChain users set it up
    return [type_into]


def on_page(page: dict) -> Check:
    return Check(capture=lambda selector, text: selector in page["selectors"].values())


def new_page() -> dict:
    return {"selectors": {"name": "#name", "greeting": "#greeting"}, "fields": {}}


def test_miss_hit_handoff_hit_with_create_agent():
    page, engine = new_page(), Engine()
    tools = form_tools(page)
    mm = MuscleMemMiddleware(engine, tools, checks={"type_into": on_page(page)})

    def run(model: Scripted, name: str):
        agent = create_agent(model, tools, middleware=[mm])
        return mm.invoke(agent, f"fill the signup form for {name}", params={"name": name})

    model = scripted(
        calls(("type_into", {"selector": "#name", "text": "John"})),
        calls(("type_into", {"selector": "#greeting", "text": "Hello John!"})),
        answer("Filled the form for John."),
    )
    miss = run(model, "John")
    assert miss.status == "miss" and len(model.seen) == 3 and miss.tokens == 300
    assert miss.result["messages"][-1].content == "Filled the form for John."

    model = scripted()  # nothing scripted: a model call would raise
    hit = run(model, "Jane")
    assert hit and model.seen == [] and hit.replayed == 2
    assert page["fields"] == {"#name": "Jane", "#greeting": "Hello Jane!"}
    messages = hit.result["messages"]
    assert [type(m) for m in messages] == [
        HumanMessage,
        AIMessage,
        ToolMessage,
        AIMessage,
        ToolMessage,
        AIMessage,
    ]
    assert messages[0].content == "fill the signup form for Jane"
    assert messages[1].tool_calls[0]["args"] == {"selector": "#name", "text": "Jane"}
    assert messages[2].tool_call_id == messages[1].tool_calls[0]["id"]
    assert messages[-1].content == "Filled the form for Jane."  # recorded, param filled in
    assert [s.arguments for s in hit.steps][1] == {"selector": "#greeting", "text": "Hello Jane!"}

    page["selectors"]["greeting"] = "#welcome"  # the page changed: step 1's check fails
    model = scripted(
        calls(("type_into", {"selector": "#welcome", "text": "Hello Ann!"})),
        answer("Filled the form for Ann."),
    )
    handoff = run(model, "Ann")
    assert handoff.status == "handoff" and handoff.diverged_at == 1
    assert len(model.seen) == 2 and handoff.tokens == 200  # only the missing call, and the answer
    history = model.seen[0]
    assert history[1].tool_calls[0]["args"] == {"selector": "#name", "text": "Ann"}
    assert isinstance(history[2], ToolMessage) and "stopped there: step 1" in history[3].content
    assert page["fields"]["#welcome"] == "Hello Ann!"

    model = scripted()
    again = run(model, "Bob")
    assert again and model.seen == [] and again.replayed == 2
    assert page["fields"]["#welcome"] == "Hello Bob!" and page["fields"]["#name"] == "Bob"
    assert again.result["messages"][-1].content == "Filled the form for Bob."

    total = engine.stats().total
    assert (total.hits, total.misses, total.handoffs) == (2, 1, 1)
    assert total.tokens == 500 and total.tokens_saved > 0


def test_a_tool_taking_the_tool_runtime_gets_this_runs_context_on_replay():
    seen: list[str] = []

    @tool
    def greet(name: str, runtime: ToolRuntime[dict]) -> str:
        """Greet a person on behalf of the run's site."""
        site = runtime.context["site"]
        seen.append(f"{site}:{runtime.tool_call_id is not None}")
        return f"Hello {name}, from {site}"

    engine = Engine()
    mm = MuscleMemMiddleware(engine, [greet])
    model = scripted(calls(("greet", {"name": "Ann"})), answer("Greeted Ann."))
    agent = create_agent(model, [greet], middleware=[mm], context_schema=dict)
    miss = mm.invoke(agent, "greet Ann", params={"name": "Ann"}, context={"site": "acme"})
    assert miss.status == "miss" and seen == ["acme:True"]

    agent = create_agent(scripted(), [greet], middleware=[mm], context_schema=dict)
    hit = mm.invoke(agent, "greet Bo", params={"name": "Bo"}, context={"site": "globex"})
    assert hit and seen[-1] == "globex:True"
    assert hit.result["messages"][2].content == "Hello Bo, from globex"
    assert hit.result["messages"][-1].content == "Greeted Bo."


class DelayFirstCall(AgentMiddleware):
    """Holds back the first tool call of each model turn, so the second starts first:
    only the adapter's ordering keeps the model's order in what is recorded."""

    def wrap_tool_call(self, request: Any, handler: Any) -> Any:
        if request.tool_call["id"].startswith("call_0_"):
            time.sleep(0.2)
        return handler(request)

    async def awrap_tool_call(self, request: Any, handler: Any) -> Any:
        if request.tool_call["id"].startswith("call_0_"):
            await asyncio.sleep(0.2)
        return await handler(request)


def weather_tools(log: list) -> list:
    lock = threading.Lock()

    @tool
    def weather(city: str) -> dict:
        """Today's weather in a city."""
        with lock:
            log.append(city)
        return {"city": city, "sky": "clear" if city == "Paris" else "rain"}

    return [weather]


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_parallel_tool_calls_are_recorded_in_the_models_order_and_replayed(use_async):
    log: list[str] = []
    tools = weather_tools(log)
    engine = Engine()
    mm = MuscleMemMiddleware(engine, tools)

    def run(model: Scripted, task: str, params: dict):
        agent = create_agent(model, tools, middleware=[DelayFirstCall(), mm])
        if use_async:
            return asyncio.run(mm.ainvoke(agent, task, params=params))
        return mm.invoke(agent, task, params=params)

    model = scripted(
        calls(("weather", {"city": "Paris"}), ("weather", {"city": "Oslo"})),
        answer("Paris is clear, Oslo has rain."),
    )
    miss = run(model, "weather in Paris and Oslo", {"a": "Paris", "b": "Oslo"})
    # Held back, Paris's call would have started (and taken its place) after Oslo's.
    assert miss.status == "miss" and log == ["Paris", "Oslo"]

    log.clear()
    hit = run(scripted(), "weather in Paris and Oslo", {"a": "Paris", "b": "Oslo"})
    assert hit and log == ["Paris", "Oslo"]  # replayed in the order the model listed them
    messages = hit.result["messages"]
    assert [type(m) for m in messages] == [
        HumanMessage,
        AIMessage,
        ToolMessage,
        ToolMessage,
        AIMessage,
    ]  # one model turn with both calls, as recorded
    assert [c["args"]["city"] for c in messages[1].tool_calls] == ["Paris", "Oslo"]
    assert [s.result["sky"] for s in hit.steps] == ["clear", "rain"]


def test_a_hand_built_langgraph_with_tool_node_hooks_is_cached():
    page = new_page()
    tools = form_tools(page)
    engine = Engine()
    mm = MuscleMemMiddleware(engine, tools, checks={"type_into": on_page(page)})

    def graph(model: Scripted):
        def agent(state: MessagesState) -> dict:
            return {"messages": [model.invoke(state["messages"])]}

        builder = StateGraph(MessagesState)
        builder.add_node("agent", agent)
        builder.add_node(
            "tools",
            ToolNode(tools, wrap_tool_call=mm.wrap_tool_call, awrap_tool_call=mm.awrap_tool_call),
        )
        builder.add_edge(START, "agent")
        builder.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
        builder.add_edge("tools", "agent")
        return builder.compile()

    model = scripted(
        calls(("type_into", {"selector": "#name", "text": "Kim"})), answer("Done, Kim.")
    )
    assert mm.invoke(graph(model), "type Kim", params={"who": "Kim"}).status == "miss"
    model = scripted()
    hit = mm.invoke(graph(model), "type Lee", params={"who": "Lee"})
    assert hit and model.seen == [] and page["fields"]["#name"] == "Lee"
    assert hit.result["messages"][-1].content == "Done, Lee."


def test_a_decorated_tool_taking_what_langchain_injects_records_without_inject():
    """@engine.function under @tool, the agent run by engine() itself: the adapter
    registered ToolRuntime and InjectedToolArg, so the runtime and the call id are left
    out of the steps with no inject=, and replay takes them from the run's inject=."""
    page, engine = new_page(), Engine()

    @tool
    @engine.function(pre_check=Check(capture=lambda selector, text, **_: selector))
    def type_into(
        selector: str,
        text: str,
        runtime: ToolRuntime,
        call_id: Annotated[str, InjectedToolCallId],
    ) -> str:
        """Type text into the form field at the CSS selector."""
        page["fields"][selector] = text
        page.setdefault("seen", []).append((runtime.context, call_id))
        return f"typed into {selector}"

    assert set(type_into.tool_call_schema.model_fields) == {"selector", "text"}
    model = scripted(calls(("type_into", {"selector": "#name", "text": "Alice"})), answer("ok"))
    agent = create_agent(model, [type_into])

    def run_agent(task: str) -> str:
        result = agent.invoke({"messages": [HumanMessage(task)]})
        return result["messages"][-1].content

    engine.set_agent(run_agent)
    assert engine("type Alice", params={"name": "Alice"}).status == "miss"
    [(live_context, live_id)] = page["seen"]  # what LangChain injected, never recorded
    assert live_context is None and live_id.startswith("call_0_")

    runtime = ToolRuntime(
        state={}, context="replayed", config={}, stream_writer=None, tool_call_id="r1", store=None
    )
    inject = {"runtime": runtime, "call_id": "r1"}
    hit = engine("type Bobby", params={"name": "Bobby"}, inject=inject)
    assert hit.status == "hit" and len(model.seen) == 2  # no model call
    assert page["fields"]["#name"] == "Bobby" and page["seen"][-1] == ("replayed", "r1")
    assert [s.arguments for s in hit.steps] == [{"selector": "#name", "text": "Bobby"}]


def test_final_model_spends_one_model_call_on_a_fresh_answer():
    page = new_page()
    tools = form_tools(page)
    engine = Engine()
    fresh = scripted(answer("A fresh answer.", usage=40), answer("Again.", usage=40))
    mm = MuscleMemMiddleware(engine, tools, final="llm", model=fresh)
    model = scripted(calls(("type_into", {"selector": "#name", "text": "Ida"})), answer("Done."))
    mm.invoke(create_agent(model, tools, middleware=[mm]), "type Ida", params={"n": "Ida"})
    hit = mm.invoke(
        create_agent(scripted(), tools, middleware=[mm]), "type Ida", params={"n": "Ida"}
    )
    assert hit and len(fresh.seen) == 1 and hit.tokens == 40
    assert hit.result["messages"][-1].content == "A fresh answer."
    assert isinstance(fresh.seen[0][2], ToolMessage)  # it answered from the replayed history
    # Logged with the hit: stats set the miss's two calls (200 tokens) against its 40.
    assert engine.store.runs()[-1].tokens == 40
    assert engine.stats().total.tokens_saved == 200 - 40

    async def fresh_async() -> object:  # the async path logs it the same way
        graph = create_agent(scripted(), tools, middleware=[mm])
        return await mm.ainvoke(graph, "type Ida", params={"n": "Ida"})

    again = asyncio.run(fresh_async())
    assert again and again.tokens == 40 and engine.store.runs()[-1].tokens == 40
    assert again.result["messages"][-1].content == "Again."


def test_an_erroring_tool_call_is_not_recorded():
    page = new_page()
    tools = form_tools(page)
    engine = Engine()
    mm = MuscleMemMiddleware(engine, tools)
    model = scripted(
        calls(("type_into", {"selector": "#nope", "text": "x"})),
        calls(("type_into", {"selector": "#name", "text": "Eve"})),
        answer("Done."),
    )
    miss = mm.invoke(create_agent(model, tools, middleware=[mm]), "type Eve", params={"n": "Eve"})
    assert miss.status == "miss"
    assert miss.result["messages"][2].status == "error"  # the framework saw the error
    hit = mm.invoke(
        create_agent(scripted(), tools, middleware=[mm]), "type Eve", params={"n": "Eve"}
    )
    assert hit and [s.arguments["selector"] for s in hit.steps] == ["#name"]


def test_misuse_is_a_configuration_error():
    engine = Engine()
    tools = form_tools(new_page())
    with pytest.raises(ConfigurationError, match="not among the tools given"):
        MuscleMemMiddleware(engine, tools, checks={"typo": Check(capture=lambda **kw: 1)})
    with pytest.raises(ConfigurationError, match="pass the chat model"):
        MuscleMemMiddleware(engine, tools, final="llm")
    with pytest.raises(ConfigurationError, match="final='later'"):
        MuscleMemMiddleware(engine, tools, final="later")
    with pytest.raises(ConfigurationError, match="LangChain tools"):
        MuscleMemMiddleware(engine, [lambda: 1])


def test_the_example_prints_miss_then_hit(capsys):
    runpy.run_path(str(ROOT / "examples" / "langchain_agent.py"), run_name="__main__")
    statuses = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line]
    assert statuses[:2] == ["miss", "hit"]


def test_importing_muscle_mem_imports_no_framework():
    code = (
        "import sys, muscle_mem, muscle_mem.integrations\n"
        "loaded = [m for m in sys.modules if m.startswith(('langchain', 'langgraph'))]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
