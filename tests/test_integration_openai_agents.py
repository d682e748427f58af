"""The OpenAI Agents SDK adapter against the real SDK and its scripted test model:
miss, hit with no model call, a handoff where the model makes only the missing call,
hit again; tools taking the SDK's context; parallel calls in one model turn.

Skipped without the SDK, except under CI (``MUSCLE_MEM_REQUIRE_POSTGRES=1``, set by
.ci/run, which installs '.[dev]' and so the SDK): there a missing SDK fails.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")  # no export attempt offline

if os.environ.get("MUSCLE_MEM_REQUIRE_POSTGRES") == "1":
    import agents  # CI installs the extra: a missing SDK must fail, not skip
else:
    agents = pytest.importorskip(
        "agents", reason="the OpenAI Agents SDK: pip install -e '.[openai-agents]'"
    )

from agents import Agent, FunctionTool, RunContextWrapper, RunHooks, Runner, function_tool
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage

from muscle_mem import Check, ConfigurationError, Engine, Status
from muscle_mem.integrations.openai_agents import CachedRunner

ROOT = Path(__file__).resolve().parents[1]


class Page:
    """The form the agent fills: where each field is, and what was typed."""

    def __init__(self) -> None:
        self.selectors = {"name": "#name", "greeting": "#greeting"}
        self.fields: dict[str, str] = {}
        self.typed: list[str] = []


@function_tool
def type_into(ctx: RunContextWrapper[Page], field: str, value: str) -> str:
    """Type a value into a field of the form."""
    ctx.context.fields[field] = value
    ctx.context.typed.append(field)
    return f"typed into {ctx.context.selectors[field]}"


def where(ctx: RunContextWrapper[Page], field: str, value: str) -> str:
    return ctx.context.selectors[field]


def usage(tokens: int) -> Usage:
    return Usage(requests=1, input_tokens=tokens - 10, output_tokens=10, total_tokens=tokens)


def fill(name: str) -> list[ModelStep]:
    """The model's turns for the whole task: both fields in one turn, then the answer."""
    return [
        ModelStep(
            output=[
                function_call("type_into", {"field": "name", "value": name}, call_id="a"),
                function_call(
                    "type_into", {"field": "greeting", "value": f"Hello {name}!"}, call_id="b"
                ),
            ],
            usage=usage(120),
        ),
        ModelStep(output=[assistant_message(f"Filled the form for {name}.")], usage=usage(160)),
    ]


def make(steps: list[ModelStep], **options) -> tuple[Engine, ScriptedModel, CachedRunner]:
    model = ScriptedModel(steps)
    agent = Agent(name="filler", model=model, tools=[type_into])
    engine = Engine()
    runner = CachedRunner(engine, agent, checks={"type_into": Check(capture=where)}, **options)
    return engine, model, runner


def test_miss_hit_handoff_hit_with_only_the_missing_model_calls():
    engine, model, runner = make(fill("John"))
    page = Page()

    async def story():
        miss = await runner.run("fill the signup form", params={"name": "John"}, context=page)
        assert miss.status is Status.MISS and len(model.calls) == 2
        assert miss.tokens == 280  # both model calls, reported from the SDK's usage
        assert miss.result.final_output == "Filled the form for John."

        page.fields.clear()
        hit = await runner.run("fill the signup form", params={"name": "Jane"}, context=page)
        assert hit.hit and hit.replayed == 2 and len(model.calls) == 2  # no model call
        assert page.fields == {"name": "Jane", "greeting": "Hello Jane!"}
        assert hit.result.final_output == "Filled the form for Jane."  # recorded, filled in
        assert [item.type for item in hit.result.new_items] == [
            "tool_call_item",
            "tool_call_output_item",
            "tool_call_item",
            "tool_call_output_item",
            "message_output_item",
        ]
        history = hit.result.to_input_list()
        assert history[1]["name"] == "type_into"
        assert history[3]["arguments"] == '{"field": "greeting", "value": "Hello Jane!"}'
        assert history[4]["output"] == "typed into #greeting"

        # The greeting field moves: its check fails, the model is asked for that call only.
        page.selectors["greeting"] = "#welcome"
        seen = []

        def continue_from_history(call):
            seen.append(call.input)
            return ModelStep(
                output=[
                    function_call(
                        "type_into", {"field": "greeting", "value": "Hello Max!"}, call_id="c"
                    )
                ],
                usage=usage(50),
            )

        handoff_model = ScriptedModel(
            [
                ModelStep.respond(continue_from_history),
                ModelStep(output=[assistant_message("Filled the form for Max.")], usage=usage(70)),
            ]
        )
        # Another runner of the same agent on the same engine shares its cache.
        agent = Agent(name="filler", model=handoff_model, tools=[type_into])
        again_runner = CachedRunner(engine, agent, checks={"type_into": Check(capture=where)})
        page.typed.clear()
        handoff = await again_runner.run(
            "fill the signup form", params={"name": "Max"}, context=page
        )
        assert handoff.status is Status.HANDOFF and handoff.diverged_at == 1
        assert handoff.replayed == 1 and "pre-check of type_into" in handoff.reason
        assert page.typed == ["name", "greeting"]  # name replayed, greeting by the model
        assert handoff.tokens == 120  # the continuation's two calls only
        given = seen[0]
        assert [item.get("type") for item in given] == [
            None,  # the task, as a user message
            "function_call",
            "function_call_output",
            None,  # the note: where and why replay stopped
        ]
        assert "replay stopped there: step 1" in given[3]["content"]
        assert given[1]["arguments"] == '{"field": "name", "value": "Max"}'
        assert handoff.result.final_output == "Filled the form for Max."

        page.fields.clear()
        again = await again_runner.run("fill the signup form", params={"name": "Ann"}, context=page)
        assert again.hit and again.replayed == 2
        assert page.fields == {"name": "Ann", "greeting": "Hello Ann!"}
        assert again.result.final_output == "Filled the form for Ann."
        assert len(handoff_model.calls) == 2

    asyncio.run(story())
    total = engine.stats().total
    assert (total.hits, total.misses, total.handoffs) == (2, 1, 1)
    assert total.tokens_saved > 0 and total.tokens == 280 + 120


def test_a_hit_may_spend_one_model_call_on_a_fresh_answer():
    steps = [*fill("John"), ModelStep(output=[assistant_message("All done.")], usage=usage(90))]
    _, model, runner = make(steps)
    page = Page()
    runner.run_sync("fill the signup form", params={"name": "John"}, context=page)
    fresh = runner.run_sync(
        "fill the signup form", params={"name": "Jane"}, context=page, final="llm"
    )
    assert fresh.hit and fresh.result.final_output == "All done."
    assert len(model.calls) == 3 and model.calls[2].tools == []  # one call, tools hidden
    assert [i["type"] for i in model.calls[2].input[1:]] == [
        "function_call",
        "function_call_output",
    ] * 2
    assert fresh.tokens == 90
    # Logged with the hit: stats set the miss's 280 tokens against the 90 it spent.
    assert runner.engine.store.runs()[-1].tokens == 90
    assert runner.engine.stats().total.tokens_saved == 280 - 90


def test_parallel_calls_are_recorded_in_the_models_order_whatever_starts_first():
    class SlowFirstCall(RunHooks):
        """Delays the first listed call's start, so the second would start first."""

        async def on_tool_start(self, context, agent, tool):
            if context.tool_call_id == "a":
                await asyncio.sleep(0.05)

    _, _, runner = make(fill("John"))
    page = Page()
    miss = runner.run_sync(
        "fill the signup form", params={"name": "John"}, context=page, hooks=SlowFirstCall()
    )
    assert miss.status is Status.MISS
    page.typed.clear()
    hit = runner.run_sync("fill the signup form", params={"name": "Jane"}, context=page)
    assert hit.hit
    assert [step.arguments["field"] for step in hit.steps] == ["name", "greeting"]
    assert page.typed == ["name", "greeting"]


def test_a_tool_that_fails_is_not_recorded_and_the_model_sees_the_error():
    calls = []

    @function_tool
    async def lookup(ctx: RunContextWrapper[dict], key: str) -> str:
        """Look a key up in the context."""
        calls.append(key)
        return ctx.context[key]

    model = ScriptedModel(
        [
            ModelStep(output=[function_call("lookup", {"key": "nope"}, call_id="x")]),
            ModelStep(output=[function_call("lookup", {"key": "plan"}, call_id="y")]),
            ModelStep(output=[assistant_message("done")]),
        ]
    )
    engine = Engine()
    runner = CachedRunner(engine, Agent(name="reader", model=model, tools=[lookup]))
    miss = runner.run_sync("read the plan", context={"plan": "pro"})
    error_output = model.calls[1].input[-1]["output"]
    assert error_output == "An error occurred while running the tool. Please try again."
    assert miss.status is Status.MISS
    hit = runner.run_sync("read the plan", context={"plan": "team"})
    assert hit.hit and [s.arguments for s in hit.steps] == [{"key": "plan"}]
    assert hit.steps[0].result == "team"  # an async tool taking the context, replayed
    assert calls == ["nope", "plan", "plan"]


def test_a_hand_made_tool_without_the_sdks_error_handling_fails_as_without_the_cache(caplog):
    """The fallback of a tool whose invoker wraps no ``_invoke_tool_impl``: a hand-made
    FunctionTool. Its exception propagates as the SDK lets it (the run fails) and the call
    is never recorded; what it returns is recorded and replayed."""
    calls: list[str] = []

    async def invoke(ctx: RunContextWrapper[dict], args_json: str) -> str:
        key = json.loads(args_json)["key"]
        calls.append(key)
        return ctx.context[key]  # a KeyError for a key the context lacks

    schema = {
        "type": "object",
        "properties": {"key": {"type": "string"}},
        "required": ["key"],
        "additionalProperties": False,
    }
    lookup = FunctionTool("lookup", "Look a key up.", schema, on_invoke_tool=invoke)

    def runner_for(key: str) -> CachedRunner:
        model = ScriptedModel(
            [
                ModelStep(output=[function_call("lookup", {"key": key}, call_id="x")]),
                ModelStep(output=[assistant_message("done")]),
            ]
        )
        return CachedRunner(engine, Agent(name="reader", model=model, tools=[lookup]))

    engine = Engine()
    with caplog.at_level(logging.WARNING, logger="muscle_mem"):
        failing = runner_for("nope")
    assert "_invoke_tool_impl" not in caplog.text  # hand-made: nothing to warn about
    with pytest.raises(agents.exceptions.UserError, match="nope"):
        failing.run_sync("read the plan", context={"plan": "pro"})
    assert [r.status for r in engine.store.runs()] == ["error"] and engine.store.tasks() == []

    miss = runner_for("plan").run_sync("read the plan", context={"plan": "pro"})
    hit = runner_for("plan").run_sync("read the plan", context={"plan": "team"})
    assert (miss.status, hit.status) == ("miss", "hit")
    assert hit.steps[0].result == "team" and calls == ["nope", "plan", "plan"]


def test_a_function_tool_whose_invoker_changed_is_run_publicly_with_a_warning(caplog):
    """If the SDK stops wrapping _invoke_tool_impl, the public invoker runs the tool and
    the runner says that failing calls may then be recorded."""

    async def public_only(ctx, args_json):  # an SDK invoker with no _invoke_tool_impl
        return await type_into.on_invoke_tool(ctx, args_json)

    public_only.__module__ = "agents.tool"

    changed = type_into.__class__.__new__(type_into.__class__)
    changed.__dict__.update(type_into.__dict__, on_invoke_tool=public_only)
    agent = Agent(name="filler", model=ScriptedModel(fill("Max")), tools=[changed])
    with caplog.at_level(logging.WARNING, logger="muscle_mem"):
        runner = CachedRunner(Engine(), agent)
    assert "wraps no _invoke_tool_impl" in caplog.text
    miss = runner.run_sync("fill the signup form", params={"name": "Max"}, context=Page())
    assert miss.status == "miss" and len(miss.result.new_items) == 5


def test_a_decorated_tool_taking_the_context_records_without_inject():
    """@engine.function under @function_tool, the agent run by engine itself: the adapter
    registered RunContextWrapper, so the context is left out of the steps with no
    inject=, and replay takes it from the run's inject=."""
    engine = Engine()

    @function_tool
    @engine.function(pre_check=Check(capture=where))
    def fill_in(ctx: RunContextWrapper[Page], field: str, value: str) -> str:
        """Type a value into a field of the form."""
        ctx.context.fields[field] = value
        return f"typed into {ctx.context.selectors[field]}"

    page = Page()
    model = ScriptedModel(
        [
            ModelStep(
                output=[function_call("fill_in", {"field": "name", "value": "Alice"}, call_id="a")]
            ),
            ModelStep(output=[assistant_message("Filled.")]),
        ]
    )
    agent = Agent(name="filler", model=model, tools=[fill_in])

    async def run_agent(task: str) -> str:
        return (await Runner.run(agent, task, context=page)).final_output

    engine.set_agent(run_agent)
    miss = asyncio.run(engine.arun("fill in Alice", params={"name": "Alice"}))
    assert miss.status == "miss" and len(model.calls) == 2
    hit = engine("fill in Bobby", params={"name": "Bobby"}, inject={"ctx": RunContextWrapper(page)})
    assert hit.status == "hit" and len(model.calls) == 2  # no model call
    assert page.fields == {"name": "Bobby"}
    assert [s.arguments for s in hit.steps] == [{"field": "name", "value": "Bobby"}]


def test_misuse_fails_with_what_to_do():
    model = ScriptedModel([])
    agent = Agent(name="filler", model=model, tools=[type_into])
    with pytest.raises(ConfigurationError, match="not among the function tools of agent 'filler'"):
        CachedRunner(Engine(), agent, checks={"type": Check(capture=where)})
    with pytest.raises(ConfigurationError, match="final='cached' is not"):
        CachedRunner(Engine(), agent, final="cached")
    with pytest.raises(ConfigurationError, match=r"takes a muscle_mem\.Engine"):
        CachedRunner(agent, Engine())  # type: ignore[arg-type]
    helper = Agent(name="helper", model=model)
    with pytest.raises(ConfigurationError, match="hands off to other agents"):
        CachedRunner(Engine(), Agent(name="boss", model=model, handoffs=[helper]))

    @function_tool(needs_approval=True)
    def pay(amount: int) -> str:
        """Pay."""
        return "paid"

    with pytest.raises(ConfigurationError, match=r"need approval \(pay\)"):
        CachedRunner(Engine(), Agent(name="p", model=model, tools=[pay]))
    with pytest.raises(ConfigurationError, match="run outside this process"):
        CachedRunner(Engine(), Agent(name="s", model=model, tools=[agents.WebSearchTool()]))


def test_the_version_follows_the_tools_code():
    engine = Engine()
    CachedRunner(engine, Agent(name="a", model=ScriptedModel([]), tools=[type_into]))
    before = engine._tools["type_into"].code

    @function_tool(name_override="type_into")
    def edited(ctx: RunContextWrapper[Page], field: str, value: str) -> str:
        """Type a value into a field of the form."""
        return "edited"

    CachedRunner(engine, Agent(name="a", model=ScriptedModel([]), tools=[edited]))
    assert engine._tools["type_into"].code != before


def test_importing_muscle_mem_does_not_import_the_sdk():
    code = "import sys, muscle_mem, muscle_mem.integrations; print('agents' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_example_prints_miss_then_hit(capsys):
    runpy.run_path(str(ROOT / "examples" / "openai_agents_agent.py"), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("miss") and "model calls: 2" in lines[0]
    assert lines[1].startswith("hit") and "model calls: 0" in lines[1]


def test_the_readme_section_runs_as_written():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### OpenAI Agents SDK") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)[1]
    example = runpy.run_path(str(ROOT / "examples" / "openai_agents_agent.py"))
    steps = [
        ModelStep(
            output=[
                function_call("type_into", {"field": "name", "value": "Jane"}, call_id="1"),
                function_call("type_into", {"field": "greeting", "value": "Hi Jane!"}, call_id="2"),
            ]
        ),
        ModelStep(output=[assistant_message("Filled the form for Jane.")]),
    ]
    page = {"selectors": {"name": "#name", "greeting": "#greeting"}, "fields": {}}
    agent = Agent(name="filler", model=ScriptedModel(steps), tools=[example["type_into"]])
    namespace = {"Check": Check, "engine": Engine(), "agent": agent, "page": page}
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    asyncio.run(eval(compile(code, "README.md", "exec", flags=flags), namespace))
    assert namespace["out"].status is Status.MISS
    assert namespace["out"].result.final_output == "Filled the form for Jane."
    assert page["fields"] == {"name": "Jane", "greeting": "Hi Jane!"}
