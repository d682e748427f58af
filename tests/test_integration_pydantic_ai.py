"""The PydanticAI adapter against the real package, offline: PydanticAI's own FunctionModel
(a scripted, history-aware model whose requests we count) and TestModel.

Skipped when pydantic-ai-slim is not installed, except under CI
(MUSCLE_MEM_REQUIRE_POSTGRES=1, set by .ci/run), which installs the extra: there a missing
package fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import runpy
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("MUSCLE_MEM_REQUIRE_POSTGRES") == "1":
    import pydantic_ai  # CI installs the extra: its absence is a failure, not a skip
else:
    pydantic_ai = pytest.importorskip(
        "pydantic_ai", reason="pydantic-ai-slim is not installed (pip install '.[pydantic-ai]')"
    )

from pydantic_ai import Agent, ModelRetry, RunContext
from pydantic_ai.messages import (
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RequestUsage, RunUsage

from muscle_mem import Check, ConfigurationError, Engine
from muscle_mem.integrations.pydantic_ai import MuscleMem

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Form:
    selectors: dict[str, str] = field(
        default_factory=lambda: {"name": "#name", "greeting": "#greeting"}
    )
    fields: dict[str, str] = field(default_factory=dict)


class Script:
    """A scripted LLM: type the name, then the greeting, one call per turn, then answer.
    It reads the history, so after a handoff it makes only the calls still missing."""

    def __init__(self) -> None:
        self.requests = 0
        self.calls: list[dict[str, Any]] = []  # the tool calls the model itself made

    def __call__(self, messages: list[Any], info: AgentInfo) -> ModelResponse:
        self.requests += 1
        name = messages[0].parts[-1].content.rsplit(" ", 1)[-1]
        done = sum(isinstance(p, ToolReturnPart) for m in messages for p in m.parts)
        plan = [{"field": "name", "value": name}, {"field": "greeting", "value": f"Hi {name}!"}]
        usage = RequestUsage(input_tokens=100, output_tokens=20)
        if done < len(plan):
            self.calls.append(plan[done])
            return ModelResponse(parts=[ToolCallPart("type_into", plan[done])], usage=usage)
        return ModelResponse(parts=[TextPart(f"Signed up {name}.")], usage=usage)


def form_agent(script: Script) -> Agent[Form, str]:
    agent = Agent(FunctionModel(script), deps_type=Form)

    @agent.tool  # takes the framework's context: it must not be recorded
    def type_into(ctx: RunContext[Form], field: str, value: str) -> str:
        """Type a value into a form field."""
        ctx.deps.fields[field] = value
        return f"typed into {ctx.deps.selectors[field]}"

    return agent


def where(ctx: RunContext[Form], field: str, value: str) -> str:
    return ctx.deps.selectors[field]


def test_miss_hit_handoff_hit_with_a_tool_taking_ctx() -> None:
    script, form = Script(), Form()
    agent = form_agent(script)
    engine = Engine()
    mm = MuscleMem(engine, checks={"type_into": Check(capture=where)})

    def run(name: str) -> Any:
        script.requests, script.calls = 0, []
        return mm.run_sync(agent, f"sign up {name}", params={"name": name}, deps=form)

    miss = run("John")
    assert (miss.status, miss.result.output, script.requests) == ("miss", "Signed up John.", 3)
    assert miss.tokens == 3 * 120  # reported from the model responses' usage
    assert form.fields == {"name": "John", "greeting": "Hi John!"}

    hit = run("Jane")
    assert (hit.status, hit.replayed, script.requests) == ("hit", 2, 0)
    assert hit.result.output == "Signed up Jane."  # the recorded answer, params filled in
    assert form.fields == {"name": "Jane", "greeting": "Hi Jane!"}  # the tools really ran
    assert [s.arguments for s in hit.steps] == [  # no ctx in the steps
        {"field": "name", "value": "Jane"},
        {"field": "greeting", "value": "Hi Jane!"},
    ]
    # PydanticAI's own result type, holding the replayed calls and their returns.
    messages = hit.result.all_messages()
    calls = [p for m in messages if isinstance(m, ModelResponse) for p in m.parts]
    assert [(p.tool_name, p.args) for p in calls if isinstance(p, ToolCallPart)] == [
        ("type_into", {"field": "name", "value": "Jane"}),
        ("type_into", {"field": "greeting", "value": "Hi Jane!"}),
    ]
    returns = [p.content for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
    assert returns == ["typed into #name", "typed into #greeting"]

    form.selectors["greeting"] = "#welcome"  # the page changed under step 1
    handoff = run("Ann")
    assert (handoff.status, handoff.replayed, handoff.diverged_at) == ("handoff", 1, 1)
    assert script.calls == [{"field": "greeting", "value": "Hi Ann!"}]  # only the missing one
    assert script.requests == 2  # the missing call, then the answer
    assert handoff.tokens == 2 * 120
    assert handoff.result.output == "Signed up Ann."
    assert form.fields == {"name": "Ann", "greeting": "Hi Ann!"}
    # The model saw the replayed call in its history, and why replay stopped.
    history = handoff.result.all_messages()
    assert isinstance(history[1], ModelResponse)
    assert history[1].parts[0].args == {"field": "name", "value": "Ann"}
    assert "replay stopped there" in str(history[2].parts[-1].content)

    again = run("Bob")
    assert (again.status, again.replayed, script.requests) == ("hit", 2, 0)
    assert again.result.output == "Signed up Bob."
    assert form.fields == {"name": "Bob", "greeting": "Hi Bob!"}

    total = engine.stats().total
    assert (total.hits, total.misses, total.handoffs) == (2, 1, 1)
    assert total.tokens_saved > 0


def test_a_changed_tool_does_not_replay_old_steps() -> None:
    script, form = Script(), Form()
    engine = Engine()
    mm = MuscleMem(engine)
    assert not mm.run_sync(form_agent(script), "sign up Al", params={"name": "Al"}, deps=form)
    assert mm.run_sync(form_agent(script), "sign up Bo", params={"name": "Bo"}, deps=form)

    other = Agent(FunctionModel(script), deps_type=Form)

    @other.tool
    def type_into(ctx: RunContext[Form], field: str, value: str) -> str:
        """Type a value into a form field, shouting."""
        ctx.deps.fields[field] = value.upper()
        return "typed"

    script.requests = 0
    outcome = mm.run_sync(other, "sign up Cy", params={"name": "Cy"}, deps=form)
    assert outcome.status != "hit" and script.requests == 3
    assert form.fields["name"] == "CY"


def test_parallel_calls_are_recorded_in_the_order_the_model_emitted_them() -> None:
    finished: list[str] = []

    def model(messages: list[Any], info: AgentInfo) -> ModelResponse:
        model.requests += 1  # type: ignore[attr-defined]
        if len(messages) == 1:  # one turn, three calls, run concurrently by PydanticAI
            return ModelResponse(
                parts=[ToolCallPart("fetch", {"key": k, "delay": d}) for k, d in SLOW_FIRST]
            )
        return ModelResponse(parts=[TextPart("fetched")])

    model.requests = 0  # type: ignore[attr-defined]
    agent = Agent(FunctionModel(model))

    @agent.tool_plain
    async def fetch(key: str, delay: float) -> str:
        await asyncio.sleep(delay)
        finished.append(key)
        return f"value of {key}"

    mm = MuscleMem(Engine())
    miss = mm.run_sync(agent, "fetch all")
    assert miss.status == "miss"
    assert finished == ["c", "b", "a"]  # they really ran concurrently, the first slowest

    finished.clear()
    model.requests = 0  # type: ignore[attr-defined]
    hit = mm.run_sync(agent, "fetch all")
    assert (hit.status, hit.replayed, model.requests) == ("hit", 3, 0)  # type: ignore[attr-defined]
    assert [s.arguments["key"] for s in hit.steps] == ["a", "b", "c"]  # the emitted order
    assert finished == ["a", "b", "c"]  # replayed one after the other, in that order
    assert [s.result for s in hit.steps] == ["value of a", "value of b", "value of c"]


SLOW_FIRST = [("a", 0.06), ("b", 0.03), ("c", 0.0)]


def test_test_model_calls_every_tool_and_each_is_recorded() -> None:
    agent = Agent(TestModel(), deps_type=Form)
    seen: list[str] = []

    @agent.tool
    def type_into(ctx: RunContext[Form], field: str, value: str) -> str:
        seen.append("type_into")
        return "ok"

    @agent.tool_plain
    def count(n: int) -> int:
        seen.append("count")
        return n + 1

    mm = MuscleMem(Engine())
    miss = mm.run_sync(agent, "do both", deps=Form())
    assert miss.status == "miss" and sorted(seen) == ["count", "type_into"]
    seen.clear()
    hit = mm.run_sync(agent, "do both", deps=Form())
    assert hit.status == "hit" and sorted(s.tool for s in hit.steps) == ["count", "type_into"]
    assert sorted(seen) == ["count", "type_into"]
    assert hit.result.output == miss.result.output


def test_a_failed_call_is_not_recorded() -> None:
    attempts: list[str] = []
    agent = Agent(TestModel())

    @agent.tool_plain(retries=2)
    def flaky(x: int) -> str:
        attempts.append("try")
        if attempts == ["try"]:  # the first attempt ever fails; the model retries
            raise ModelRetry("try again")
        return "done"

    mm = MuscleMem(Engine())
    miss = mm.run_sync(agent, "flaky task")
    assert miss.status == "miss" and len(attempts) == 2
    hit = mm.run_sync(agent, "flaky task")
    # One step, the call that succeeded: replaying the failed one would have run it twice.
    assert (hit.status, len(attempts)) == ("hit", 3)
    assert [s.result for s in hit.steps] == ["done"]


def test_a_decorated_tool_taking_ctx_records_without_inject() -> None:
    """@engine.function under @agent.tool, the agent run by engine() itself: the adapter
    registered RunContext, so ctx is left out of the steps with no inject=, and replay
    takes it from the run's inject=."""
    script, form, engine = Script(), Form(), Engine()
    agent = Agent(FunctionModel(script), deps_type=Form)

    @agent.tool
    @engine.function(pre_check=Check(capture=where))
    def type_into(ctx: RunContext[Form], field: str, value: str) -> str:
        """Type a value into a form field."""
        ctx.deps.fields[field] = value
        return f"typed into {ctx.deps.selectors[field]}"

    async def run_agent(prompt: str) -> str:
        return (await agent.run(prompt, deps=form)).output

    engine.set_agent(run_agent)
    miss = asyncio.run(engine.arun("sign up Alice", params={"name": "Alice"}))
    assert (miss.status, script.requests) == ("miss", 3)

    script.requests = 0
    ctx = RunContext(deps=form, model=TestModel(), usage=RunUsage())
    hit = engine("sign up Bobby", params={"name": "Bobby"}, inject={"ctx": ctx})
    assert (hit.status, script.requests) == ("hit", 0)
    assert form.fields == {"name": "Bobby", "greeting": "Hi Bobby!"}
    assert [s.arguments for s in hit.steps] == [
        {"field": "name", "value": "Bobby"},
        {"field": "greeting", "value": "Hi Bobby!"},
    ]


STREAMED: list[int] = []  # one entry per streamed model request


async def streamed_script(messages: list[Any], info: AgentInfo) -> Any:
    """Script's plan, streamed: a tool call per response, then the answer in two chunks."""
    STREAMED.append(1)  # a model request
    name = messages[0].parts[-1].content.rsplit(" ", 1)[-1]
    done = sum(isinstance(p, ToolReturnPart) for m in messages for p in m.parts)
    plan = [{"field": "name", "value": name}, {"field": "greeting", "value": f"Hi {name}!"}]
    if done < len(plan):
        yield {0: DeltaToolCall("type_into", json.dumps(plan[done]), tool_call_id=f"c{done}")}
        return
    yield "Signed up "
    yield f"{name}."


def test_run_stream_records_a_miss_and_streams_a_hit_with_no_model_request() -> None:
    form, engine = Form(), Engine()
    agent = Agent(FunctionModel(stream_function=streamed_script), deps_type=Form)

    @agent.tool
    def type_into(ctx: RunContext[Form], field: str, value: str) -> str:
        """Type a value into a form field."""
        ctx.deps.fields[field] = value
        return f"typed into {ctx.deps.selectors[field]}"

    mm = MuscleMem(engine, checks={"type_into": Check(capture=where)})

    async def stream(name: str, read: bool = True, **options: Any) -> tuple[Any, list[str]]:
        STREAMED.clear()
        run = mm.run_stream(agent, f"sign up {name}", params={"name": name}, deps=form, **options)
        async with run as result:
            texts = [text async for text in result.stream_text()] if read else []
        return run.outcome, texts

    miss, texts = asyncio.run(stream("Alice"))
    assert (miss.status, len(STREAMED), texts[-1]) == ("miss", 3, "Signed up Alice.")
    assert miss.tokens > 0 and engine.store.runs()[-1].tokens == miss.tokens

    hit, texts = asyncio.run(stream("Bobby"))  # the recorded answer, one chunk, no model
    assert (hit.status, STREAMED, texts) == ("hit", [], ["Signed up Bobby."])
    assert form.fields == {"name": "Bobby", "greeting": "Hi Bobby!"}
    calls = [p for m in hit.result.all_messages() for p in m.parts if isinstance(p, ToolCallPart)]
    assert [c.args for c in calls] == [
        {"field": "name", "value": "Bobby"},
        {"field": "greeting", "value": "Hi Bobby!"},
    ]

    # A block that reads nothing still commits the run, with the output read for it.
    unread, _ = asyncio.run(stream("Cyril", read=False, mode="record"))
    assert unread.status == "miss" and engine.store.runs()[-1].status == "miss"

    async def failing() -> None:
        async with mm.run_stream(agent, "sign up Dora", params={"name": "Dora"}, deps=form):
            raise RuntimeError("the caller gave up")

    with pytest.raises(RuntimeError, match="gave up"):
        asyncio.run(failing())
    assert engine.store.runs()[-1].status == "error"  # a hit held open, failed with it


def test_final_llm_spends_one_request_on_a_fresh_answer() -> None:
    script, form = Script(), Form()
    agent = form_agent(script)
    mm = MuscleMem(Engine())
    mm.run_sync(agent, "sign up Al", params={"name": "Al"}, deps=form)
    script.requests, script.calls = 0, []
    hit = mm.run_sync(agent, "sign up Bo", params={"name": "Bo"}, deps=form, final="llm")
    assert (hit.status, script.requests, hit.tokens) == ("hit", 1, 120)
    assert hit.result.output == "Signed up Bo."
    assert script.calls == []  # tools hidden: no call, only the answer
    # The request is logged with the hit, so stats count it: the miss's three requests
    # (360 tokens) less the one the hit spent.
    assert mm.engine.store.runs()[-1].tokens == 120
    assert mm.engine.stats().total.tokens_saved == 360 - 120

    by_steps = MuscleMem(mm.engine, final=lambda steps: f"{len(steps)} fields filled")
    script.requests = 0
    hit = by_steps.run_sync(agent, "sign up Cy", params={"name": "Cy"}, deps=form)
    assert (hit.result.output, script.requests) == ("2 fields filled", 0)


def test_misuse_is_a_configuration_error() -> None:
    engine = Engine()
    with pytest.raises(ConfigurationError, match="dict of tool name to Check"):
        MuscleMem(engine, checks={"type_into": lambda: 1})  # type: ignore[dict-item]
    with pytest.raises(ConfigurationError, match="final='fresh' is not a way to answer"):
        MuscleMem(engine, final="fresh")
    with pytest.raises(ConfigurationError, match=r"muscle_mem\.Engine"):
        MuscleMem("engine")  # type: ignore[arg-type]
    mm = MuscleMem(engine)
    agent = form_agent(Script())
    with pytest.raises(ConfigurationError, match="message_history"):
        mm.run_sync(agent, "sign up Al", message_history=[])
    with pytest.raises(ConfigurationError, match=r"pydantic_ai\.Agent"):
        mm.run_sync(object(), "sign up Al")  # type: ignore[arg-type]


def test_importing_muscle_mem_does_not_import_pydantic_ai() -> None:
    code = "import sys, muscle_mem, muscle_mem.integrations; print('pydantic_ai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_example_prints_a_miss_then_a_hit(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "examples" / "pydantic_ai_agent.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("miss: 'Signed up John.'") and "3 model calls" in lines[0]
    assert lines[1].startswith("hit: 'Signed up Jane.', 2 replayed, 0 model calls")


def test_message_shapes_are_pydantic_ai_messages() -> None:
    script = Script()
    mm = MuscleMem(Engine())
    mm.run_sync(form_agent(script), "sign up Al", params={"name": "Al"}, deps=Form())
    hit = mm.run_sync(form_agent(script), "sign up Bo", params={"name": "Bo"}, deps=Form())
    kinds = [type(m) for m in hit.result.all_messages()]
    assert kinds == [
        ModelRequest,
        ModelResponse,
        ModelRequest,
        ModelResponse,
        ModelRequest,
        ModelResponse,
    ]
