"""A LangChain agent's cache hit against the same agent without muscle-mem.

The agent is ``create_agent`` with LangChain's fake chat model, scripted with the turns a
real model would take (three tool calls, one of them two in parallel, then an answer),
each model call sleeping ``--latency`` seconds so the figures read like a real model's.
Without the cache every run makes every model call; with it the first run records and
the next ones are hits. Prints the median wall time and the model calls of each, as the
Markdown table docs/benchmarks.md shows. Run: ``python benchmarks/adapter_langchain.py``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from muscle_mem import Check, Engine
from muscle_mem.integrations.langchain import MuscleMemMiddleware

inventory = {"A-1": 4, "B-2": 0, "C-3": 9}
_ids = itertools.count()


@tool
def stock(sku: str) -> int:
    """How many of an item are in stock."""
    return inventory[sku]


@tool
def reorder(sku: str, quantity: int) -> str:
    """Order more of an item."""
    return f"ordered {quantity} x {sku}"


class SlowFakeModel(GenericFakeChatModel):
    """The fake chat model with a real model's latency per call."""

    latency: float = 0.3
    calls: int = 0

    def bind_tools(self, tools: Any, **kwargs: Any) -> SlowFakeModel:
        return self

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        time.sleep(self.latency)
        return super()._generate(*args, **kwargs)


def turns() -> list[AIMessage]:
    def call(name: str, **args: Any) -> dict[str, Any]:
        return {"name": name, "args": args, "id": f"call_{next(_ids)}"}

    usage = {"input_tokens": 900, "output_tokens": 50, "total_tokens": 950}
    return [
        AIMessage("", tool_calls=[call("stock", sku="A-1"), call("stock", sku="B-2")],
                  usage_metadata=usage),
        AIMessage("", tool_calls=[call("reorder", sku="B-2", quantity=10)], usage_metadata=usage),
        AIMessage("Reordered 10 x B-2; A-1 has 4 left.", usage_metadata=usage),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per model call")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    options = parser.parse_args()
    task = "restock what is out of stock among A-1 and B-2"
    tools = [stock, reorder]

    plain: list[tuple[float, int]] = []
    for _ in range(options.runs):
        model = SlowFakeModel(messages=iter(turns()), latency=options.latency)
        agent = create_agent(model, tools)
        started = time.perf_counter()
        agent.invoke({"messages": [HumanMessage(task)]})
        plain.append((time.perf_counter() - started, model.calls))

    engine = Engine()
    mm = MuscleMemMiddleware(engine, tools, checks={"stock": Check(lambda sku: sku in inventory)})
    cached: list[tuple[float, int, str]] = []
    for _ in range(options.runs + 1):  # the first run records
        model = SlowFakeModel(messages=iter(turns()), latency=options.latency)
        agent = create_agent(model, tools, middleware=[mm])
        started = time.perf_counter()
        outcome = mm.invoke(agent, task)
        cached.append((time.perf_counter() - started, model.calls, outcome.status.value))
    miss, hits = cached[0], cached[1:]
    assert all(status == "hit" for _, _, status in hits), cached

    def median_ms(times: list[float]) -> str:
        return f"{statistics.median(times) * 1000:,.1f} ms"

    print(f"model latency {options.latency:.2f} s per call, median of {options.runs} runs\n")
    print("| run | wall time | model calls |")
    print("|---|---:|---:|")
    print(f"| agent without muscle-mem | {median_ms([t for t, _ in plain])} | {plain[0][1]} |")
    print(f"| with muscle-mem, first run (miss, recorded) | {miss[0] * 1000:,.1f} ms | {miss[1]} |")
    print(f"| with muscle-mem, hit | {median_ms([t for t, _, _ in hits])} | {hits[0][1]} |")
    speedup = statistics.median([t for t, _ in plain]) / statistics.median([t for t, _, _ in hits])
    print(f"\nhit vs without muscle-mem: {speedup:,.0f}x faster, 0 of {plain[0][1]} model calls, "
          f"{engine.stats().total.tokens_saved:,} tokens saved over {len(hits)} hits")  # fmt: skip


if __name__ == "__main__":
    main()
