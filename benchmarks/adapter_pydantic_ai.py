"""The PydanticAI adapter: a framework agent's cache hit against the same agent uncached.

    python3 benchmarks/adapter_pydantic_ai.py              # prints markdown
    python3 benchmarks/adapter_pydantic_ai.py --write      # into docs/benchmarks.md

A PydanticAI ``Agent`` fills a form of ``--steps`` fields, one tool call per model turn
(the common shape), then answers. Its model is PydanticAI's ``FunctionModel`` with a
simulated latency of ``--latency`` seconds a request (0.3 s by default), so the wall time
reads like a real model's. Measured: the agent run directly (``agent.run``), and through
``MuscleMem.run`` once the path is recorded (each timed run a hit, with a new param
value). Reported: the median wall time of ``--runs`` runs each, and model requests per
run, counted by the model function itself. Needs ``pip install '.[pydantic-ai]'``.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage

import muscle_mem
from muscle_mem import Check, Engine
from muscle_mem.integrations.pydantic_ai import MuscleMem

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BEGIN = "<!-- begin: adapter pydantic-ai -->"
END = "<!-- end: adapter pydantic-ai -->"


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)


class Model:
    """A scripted LLM with a latency: fill field_0 .. field_{n-1} with the name, then answer."""

    def __init__(self, steps: int, latency: float) -> None:
        self.steps, self.latency, self.requests = steps, latency, 0

    async def __call__(self, messages: list[Any], info: AgentInfo) -> ModelResponse:
        self.requests += 1
        await asyncio.sleep(self.latency)
        name = messages[0].parts[-1].content.rsplit(" ", 1)[-1]
        done = sum(isinstance(p, ToolReturnPart) for m in messages for p in m.parts)
        usage = RequestUsage(input_tokens=400 + 50 * done, output_tokens=30)
        if done < self.steps:
            call = ToolCallPart("type_into", {"field": f"field_{done}", "value": name})
            return ModelResponse(parts=[call], usage=usage)
        return ModelResponse(parts=[TextPart(f"Filled {self.steps} fields for {name}.")])


def build(model: Model) -> Agent[Form, str]:
    agent = Agent(FunctionModel(model), deps_type=Form)

    @agent.tool
    def type_into(ctx: RunContext[Form], field: str, value: str) -> str:
        """Type a value into a form field."""
        ctx.deps.fields[field] = value
        return "ok"

    return agent


async def measure(steps: int, latency: float, runs: int) -> dict[str, Any]:
    model = Model(steps, latency)
    agent = build(model)
    mm = MuscleMem(Engine(), checks={"type_into": Check(capture=lambda ctx, field, value: field)})

    plain_times, plain_requests = [], []
    for i in range(runs):
        model.requests = 0
        started = time.perf_counter()
        await agent.run(f"fill the form for P{i}", deps=Form())
        plain_times.append(time.perf_counter() - started)
        plain_requests.append(model.requests)

    recorded = await mm.run(agent, "fill the form for R", params={"name": "R"}, deps=Form())
    assert recorded.status == "miss", recorded
    hit_times, hit_requests = [], []
    for i in range(runs):
        model.requests = 0
        name = f"H{i}"
        started = time.perf_counter()
        outcome = await mm.run(
            agent, f"fill the form for {name}", params={"name": name}, deps=Form()
        )
        hit_times.append(time.perf_counter() - started)
        assert outcome.status == "hit", outcome
        hit_requests.append(model.requests)
    return {
        "plain": statistics.median(plain_times),
        "plain_requests": statistics.median(plain_requests),
        "hit": statistics.median(hit_times),
        "hit_requests": statistics.median(hit_requests),
        "tokens_saved": mm.engine.stats().total.tokens_saved // runs,
    }


def report(args: argparse.Namespace, r: dict[str, Any]) -> str:
    import pydantic_ai

    version = getattr(pydantic_ai, "__version__", "?")
    return "\n".join(
        [
            BEGIN,
            f"- Python {platform.python_version()}, muscle-mem {muscle_mem.__version__}, "
            f"pydantic-ai-slim {version}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"- Command: `python benchmarks/adapter_pydantic_ai.py --steps {args.steps} "
            f"--latency {args.latency} --runs {args.runs}` (medians of {args.runs} runs each)",
            "",
            f"| {args.steps}-step form agent, {args.latency} s a model request | wall time | "
            "model requests |",
            "|---|---|---|",
            f"| `agent.run` (no cache) | {r['plain'] * 1000:,.0f} ms | {r['plain_requests']:g} |",
            f"| `MuscleMem.run`, a hit | {r['hit'] * 1000:,.1f} ms | {r['hit_requests']:g} |",
            "",
            f"A hit is {r['plain'] / r['hit']:,.0f}x faster and saves "
            f"{r['tokens_saved']:,} tokens a run (`engine.stats()`); what is left is the "
            "replayed tools, their checks and building the `AgentRunResult`.",
            END,
        ]
    )


def write_section(block: str, docs: Path = DOCS) -> None:
    text = docs.read_text()
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        heading = "\n## Adapters: PydanticAI (pydantic-ai-slim)\n\n"
        anchor = "\n## Reproducing it"
        head, tail = text.split(anchor, 1)
        text = head.rstrip("\n") + "\n" + heading + block + "\n" + anchor + tail
    docs.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    block = report(args, asyncio.run(measure(args.steps, args.latency, args.runs)))
    print(block)
    if args.write:
        write_section(block)


if __name__ == "__main__":
    main()
