"""A LangChain agent behind muscle-mem: the first run calls the model, the second none.

The model is LangChain's own fake chat model, scripted with the turns a real model would
take, so the script runs anywhere without an API key: ``python examples/langchain_agent.py``
(needs ``pip install 'muscle-mem[langchain]'``). Put ``ChatOpenAI(...)`` in its place
for a real agent.
"""

from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from muscle_mem import Check, Engine
from muscle_mem.integrations.langchain import MuscleMemMiddleware

page = {"selectors": {"name": "#name", "greeting": "#greeting"}, "fields": {}}


@tool
def type_into(selector: str, text: str) -> str:
    """Type text into the form field at the CSS selector."""
    page["fields"][selector] = text
    return f"typed into {selector}"


class FakeModel(GenericFakeChatModel):
    calls: int = 0

    def bind_tools(self, tools: Any, **kwargs: Any) -> "FakeModel":
        return self  # the fake answers from its script; create_agent binds tools first

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return super()._generate(*args, **kwargs)


def model_for(name: str) -> FakeModel:
    def call(selector: str, text: str) -> AIMessage:
        return AIMessage(
            "",
            tool_calls=[
                {
                    "name": "type_into",
                    "args": {"selector": selector, "text": text},
                    "id": f"call_{selector[1:]}",
                }
            ],
        )

    turns = [call("#name", name), call("#greeting", f"Hello {name}!"), AIMessage(f"Done, {name}.")]
    return FakeModel(messages=iter(turns))


engine = Engine()  # in memory; Engine(store="cache.db") keeps it across runs
mm = MuscleMemMiddleware(
    engine,
    [type_into],
    checks={"type_into": Check(lambda selector, text: selector in page["selectors"].values())},
)

for name in ("John", "Jane"):
    model = model_for(name)
    agent = create_agent(model, [type_into], middleware=[mm])
    outcome = mm.invoke(agent, f"fill the signup form for {name}", params={"name": name})
    answer = outcome.result["messages"][-1].content
    print(
        f"{outcome.status.value:4}  model calls {model.calls}  replayed {outcome.replayed}  "
        f"{outcome.duration_s:.3f}s  answer {answer!r}  fields {page['fields']}"
    )
