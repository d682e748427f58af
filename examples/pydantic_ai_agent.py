"""A PydanticAI agent under muscle-mem: the first run is a miss, the second a hit.

The model is PydanticAI's own ``FunctionModel`` playing a scripted LLM, so this runs
offline without an API key. Needs ``pip install 'muscle-mem[pydantic-ai]'``; run it with
``python examples/pydantic_ai_agent.py``.
"""

from dataclasses import dataclass, field

from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from muscle_mem import Check, Engine
from muscle_mem.integrations.pydantic_ai import MuscleMem


@dataclass
class Form:  # the environment the tool acts on: a web form whose fields may move
    selectors: dict[str, str] = field(default_factory=lambda: {"name": "#n", "greeting": "#g"})
    fields: dict[str, str] = field(default_factory=dict)


model_calls = 0


def llm(messages: list, info: AgentInfo) -> ModelResponse:
    """Plays the LLM: type the name, then the greeting, then answer."""
    global model_calls
    model_calls += 1
    name = messages[0].parts[-1].content.rsplit(" ", 1)[-1]
    done = sum(isinstance(p, ToolReturnPart) for m in messages for p in m.parts)
    plan = [{"field": "name", "value": name}, {"field": "greeting", "value": f"Hello {name}!"}]
    if done < len(plan):
        return ModelResponse(parts=[ToolCallPart("type_into", plan[done])])
    return ModelResponse(parts=[TextPart(f"Signed up {name}.")])


agent = Agent(FunctionModel(llm), deps_type=Form)


@agent.tool
def type_into(ctx: RunContext[Form], field: str, value: str) -> str:
    """Type a value into a field of the form."""
    ctx.deps.fields[field] = value
    return f"typed into {ctx.deps.selectors[field]}"


# What makes a replayed call safe: the field is still where it was when recorded.
mm = MuscleMem(
    Engine(),
    checks={"type_into": Check(capture=lambda ctx, field, value: ctx.deps.selectors[field])},
)

form = Form()
for name in ["John", "Jane"]:
    model_calls = 0
    outcome = mm.run_sync(agent, f"sign up {name}", params={"name": name}, deps=form)
    print(
        f"{outcome.status}: {outcome.result.output!r}, {outcome.replayed} replayed, "
        f"{model_calls} model calls, form {form.fields}"
    )
