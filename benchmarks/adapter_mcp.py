"""Adapters: MCP. A hit of an agent using an MCP server through the cache, against the
same agent without the cache (issue 15).

    python3 benchmarks/adapter_mcp.py              # prints the markdown section
    python3 benchmarks/adapter_mcp.py --write      # into docs/benchmarks.md
    python3 benchmarks/adapter_mcp.py --latency 0.3 --runs 5

Needs ``pip install -e '.[mcp]'``. The server is an ``MCPServer`` reached through the MCP
SDK's in-process client; the model is scripted and sleeps ``--latency`` seconds per call
so it reads like a real one. The task: open a form, type two fields (one model turn with
two parallel calls), submit, answer: four model calls. "No cache" is the same agent
through the same adapter with ``mode="off"`` (nothing replayed, recorded or logged);
"hit" replays the path a first run recorded, for another customer each time. Each
figure is the median of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import mcp
from mcp.server.mcpserver import MCPServer

from muscle_mem import Check, Engine
from muscle_mem.integrations.mcp import CachedClient, McpTask

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- begin: adapter-mcp -->", "<!-- end: adapter-mcp -->"
TASK = "sign up the customer"


def make_server(world: dict[str, Any]) -> MCPServer:
    server = MCPServer("forms")

    @server.tool()
    def open_form(form: str) -> str:
        """Open a form by name."""
        world["form"] = form
        return f"opened {form}"

    @server.tool()
    def type_into(field: str, text: str) -> str:
        """Type text into a field of the open form."""
        world[field] = text
        return f"{field} = {text}"

    @server.tool()
    def submit() -> str:
        """Submit the open form."""
        world["submitted"] = world.get("submitted", 0) + 1
        return "submitted"

    return server


def make_agent(name: str, email: str, latency: float, counter: list[int]):
    """The host's loop over a scripted model: each model call sleeps ``latency``."""
    turns = [
        [("open_form", {"form": "signup"})],
        [
            ("type_into", {"field": "name", "text": name}),
            ("type_into", {"field": "email", "text": email}),
        ],
        [("submit", {})],
    ]

    async def agent(task: McpTask) -> str:
        for turn in turns:  # a model call, then the tool calls it asked for
            counter[0] += 1
            await asyncio.sleep(latency)
            task.report_usage(tokens=1500)
            await task.call_tools(turn)
        counter[0] += 1  # the final answer
        await asyncio.sleep(latency)
        task.report_usage(tokens=1500)
        return f"signed up {name}"

    return agent


async def measure(latency: float, runs: int) -> dict[str, list[tuple[float, int]]]:
    engine = Engine()
    check = Check(capture=lambda arguments, client: arguments["field"])
    figures: dict[str, list[tuple[float, int]]] = {"no cache": [], "miss": [], "hit": []}
    async with mcp.Client(make_server({})) as client:
        cached = CachedClient(engine, client, checks={"type_into": check})
        await cached.load_tools()

        async def one(kind: str, i: int, mode: str | None) -> None:
            counter = [0]
            name, email = f"Customer {i}", f"c{i}@example.com"
            agent = make_agent(name, email, latency, counter)
            start = time.perf_counter()
            outcome = await cached.run(
                TASK, agent, params={"name": name, "email": email}, mode=mode
            )
            figures[kind].append((time.perf_counter() - start, counter[0]))
            if kind == "hit":
                assert outcome.hit, outcome.reason

        for i in range(runs):
            await one("no cache", i, "off")
        await one("miss", 1000, None)  # records the path
        for i in range(runs):
            await one("hit", 2000 + i, None)
    return figures


def render(figures: dict[str, list[tuple[float, int]]], latency: float, runs: int) -> str:
    def row(kind: str) -> tuple[float, int]:
        return (
            statistics.median(t for t, _ in figures[kind]),
            int(statistics.median(c for _, c in figures[kind])),
        )

    base_t, base_c = row("no cache")
    hit_t, hit_c = row("hit")
    miss_t, miss_c = row("miss")
    lines = [
        f"An agent on an MCP server (in-process `mcp.Client`, mcp {_version()}), a scripted "
        f"model sleeping {latency:g} s per call, 4 model calls and 4 tool calls per task "
        f"(one turn of two parallel calls); median of {runs} runs "
        f"({platform.python_implementation()} {platform.python_version()}). Produced by "
        "`python3 benchmarks/adapter_mcp.py --write`.",
        "",
        "| run | wall time | model calls |",
        "|---|---|---|",
        f'| no cache (`mode="off"`) | {base_t * 1000:,.1f} ms | {base_c} |',
        f"| miss (records the path) | {miss_t * 1000:,.1f} ms | {miss_c} |",
        f"| hit (another customer's params) | {hit_t * 1000:,.1f} ms | {hit_c} |",
        "",
        f"The hit replays the 4 MCP calls through the live client and calls no model: "
        f"{base_t / hit_t:,.0f}x faster than the agent without the cache.",
    ]
    return "\n".join(lines)


def _version() -> str:
    from importlib.metadata import version

    return version("mcp")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per model call")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--write", action="store_true", help=f"write into {DOCS.name}")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.latency, args.runs))
    block = render(figures, args.latency, args.runs)
    print(block)
    if args.write:
        text = DOCS.read_text()
        section = f"## Adapters: MCP\n\n{BEGIN}\n{block}\n{END}\n\n"
        if BEGIN in text and END in text:
            before, rest = text.split(BEGIN, 1)
            after = rest.split(END, 1)[1]
            text = f"{before}{BEGIN}\n{block}\n{END}{after}"
        else:
            text = text.replace("## Reproducing it", section + "## Reproducing it", 1)
        DOCS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
