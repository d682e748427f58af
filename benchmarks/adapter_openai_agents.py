"""The OpenAI Agents SDK adapter: a cached agent's hit against the same agent without
the cache (docs/benchmarks.md, "Adapters: the OpenAI Agents SDK").

The agent works through a support ticket in three model turns: two lookups in
parallel, then two writes in parallel, then its answer. Its model is the SDK's
scripted test model with a simulated latency per call, so it reads like a real model
without an API key. Both sides run the same tools; "no cache" is ``Runner.run``, "hit"
is ``CachedRunner.run`` after one recording run (a miss). Each figure is the median of
``--rounds`` runs.

    pip install -e '.[openai-agents]'
    python benchmarks/adapter_openai_agents.py [--latency 0.3] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from typing import Any

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

from agents import Agent, RunContextWrapper, Runner, function_tool
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage

from muscle_mem import Check, Engine
from muscle_mem.integrations.openai_agents import CachedRunner


class SlowModel(ScriptedModel):
    """The scripted model, answering each call after ``latency`` seconds."""

    def __init__(self, steps: list[ModelStep], latency: float) -> None:
        super().__init__(steps)
        self.latency = latency

    async def get_response(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(self.latency)
        return await super().get_response(*args, **kwargs)


@function_tool
def get_customer(ctx: RunContextWrapper[dict], email: str) -> str:
    """Find a customer by email."""
    return ctx.context["customers"][email]


@function_tool
def get_order(ctx: RunContextWrapper[dict], order_id: str) -> str:
    """Read an order's status."""
    return ctx.context["orders"][order_id]


@function_tool
def refund(ctx: RunContextWrapper[dict], order_id: str) -> str:
    """Refund an order."""
    ctx.context["refunded"].append(order_id)
    return f"refunded {order_id}"


@function_tool
def reply(ctx: RunContextWrapper[dict], email: str, text: str) -> str:
    """Email the customer."""
    ctx.context["sent"].append((email, text))
    return "sent"


def script(email: str) -> list[ModelStep]:
    spent = Usage(requests=1, input_tokens=900, output_tokens=100, total_tokens=1000)
    return [
        ModelStep(
            output=[
                function_call("get_customer", {"email": email}, call_id="1"),
                function_call("get_order", {"order_id": "A-1001"}, call_id="2"),
            ],
            usage=spent,
        ),
        ModelStep(
            output=[
                function_call("refund", {"order_id": "A-1001"}, call_id="3"),
                function_call(
                    "reply", {"email": email, "text": "Your refund is on its way."}, call_id="4"
                ),
            ],
            usage=spent,
        ),
        ModelStep(output=[assistant_message(f"Refunded A-1001 for {email}.")], usage=spent),
    ]


def world() -> dict[str, Any]:
    return {
        "customers": {"ann@example.com": "cust_1", "bob@example.com": "cust_2"},
        "orders": {"A-1001": "delivered damaged"},
        "refunded": [],
        "sent": [],
    }


TOOLS = [get_customer, get_order, refund, reply]
TASK = "refund the damaged order"
ONE = {"email": "ann@example.com"}


async def no_cache(latency: float) -> tuple[float, int]:
    model = SlowModel(script(ONE["email"]), latency)
    agent = Agent(name="support", model=model, tools=TOOLS)
    started = time.perf_counter()
    await Runner.run(agent, TASK, context=world())
    return time.perf_counter() - started, len(model.calls)


async def cached(latency: float, rounds: int) -> tuple[list[float], int, float, int, int]:
    model = SlowModel(script(ONE["email"]), latency)
    agent = Agent(name="support", model=model, tools=TOOLS)
    order = Check(capture=lambda ctx, order_id: ctx.context["orders"][order_id])
    runner = CachedRunner(Engine(), agent, checks={"refund": order})
    started = time.perf_counter()
    miss = await runner.run(TASK, params=ONE, context=world())
    miss_s = time.perf_counter() - started
    assert miss.status == "miss", miss
    before = len(model.calls)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        hit = await runner.run(TASK, params=ONE, context=world())
        times.append(time.perf_counter() - started)
        assert hit.hit and hit.replayed == 4, hit
    return times, len(model.calls) - before, miss_s, before, miss.tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per model call")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    plain = [asyncio.run(no_cache(options.latency)) for _ in range(options.rounds)]
    measured = asyncio.run(cached(options.latency, options.rounds))
    hits, hit_calls, miss_s, miss_calls, tokens = measured
    plain_s = statistics.median(t for t, _ in plain)
    hit_s = statistics.median(hits)
    print(
        f"Python {platform.python_version()}, {options.rounds} rounds, "
        f"{options.latency} s per model call"
    )
    print("| run | wall time (median) | model calls | tokens |")
    print("|---|---|---|---|")
    print(f"| no cache (`Runner.run`) | {plain_s * 1000:,.0f} ms | {plain[0][1]} | {tokens:,} |")
    print(
        f"| miss (`CachedRunner.run`, recording) | {miss_s * 1000:,.0f} ms | {miss_calls} "
        f"| {tokens:,} |"
    )
    print(
        f"| hit (`CachedRunner.run`) | {hit_s * 1000:,.1f} ms | {hit_calls} in {options.rounds} "
        "hits | 0 |"
    )
    print(f"\nhit vs no cache: {plain_s / hit_s:,.0f}x faster")


if __name__ == "__main__":
    main()
