"""An OpenAI Agents SDK agent behind muscle-mem: the first run is a miss (the model
decides the calls), the second a hit (replayed, no model call).

Runs offline: the model is the SDK's scripted test model, so no API key is needed.
Swap in ``model="gpt-5-mini"`` (and drop the script) for a real one.

    pip install 'muscle-mem[openai-agents]'
    python examples/openai_agents_agent.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")  # offline: nothing to export

from agents import Agent, RunContextWrapper, function_tool
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call

from muscle_mem import Check, Engine
from muscle_mem.integrations.openai_agents import CachedRunner


@function_tool
def type_into(ctx: RunContextWrapper[dict], field: str, value: str) -> str:
    """Type a value into a field of the signup form."""
    ctx.context["fields"][field] = value
    return f"typed {value!r} into {ctx.context['selectors'][field]}"


model = ScriptedModel(  # what a model would answer the first time
    [
        ModelStep(
            output=[
                function_call("type_into", {"field": "name", "value": "John"}, call_id="1"),
                function_call("type_into", {"field": "greeting", "value": "Hi John!"}, call_id="2"),
            ]
        ),
        ModelStep(output=[assistant_message("Filled the form for John.")]),
    ]
)
agent = Agent(
    name="form filler", instructions="Fill the signup form.", model=model, tools=[type_into]
)
page = {"selectors": {"name": "#name", "greeting": "#greeting"}, "fields": {}}

engine = Engine()
# Typing is safe while the field is where it was: a capture gets the context, then the
# tool's arguments.
where = Check(capture=lambda ctx, field, value: ctx.context["selectors"][field])
runner = CachedRunner(engine, agent, checks={"type_into": where})

if __name__ == "__main__":
    for name in ("John", "Jane"):
        before = len(model.calls)
        out = runner.run_sync("fill the signup form", params={"name": name}, context=page)
        print(
            f"{out.status}: {out.result.final_output} "
            f"(steps replayed: {out.replayed}, model calls: {len(model.calls) - before})"
        )
