"""An agent using an MCP server's tools through the cache: a miss, then a hit.

The server runs in this process (the MCP SDK's in-memory client) and the "model" is
scripted, so the script runs anywhere without an API key or a network:
``pip install 'muscle-mem[mcp]'`` then ``python examples/mcp_agent.py``.
"""

import asyncio

import mcp
from mcp import types
from mcp.server.mcpserver import MCPServer

from muscle_mem import Engine
from muscle_mem.integrations.mcp import CachedClient, McpTask

server = MCPServer("crm")
notes: list[str] = []
customers = {"ann@example.com": "cust_4471", "bob@example.com": "cust_0932"}


@server.tool()
def find_customer(email: str) -> dict[str, str]:
    """Look a customer up by email."""
    return {"id": customers[email], "email": email}


@server.tool()
def add_note(customer_id: str, text: str) -> str:
    """Add a note to a customer's record."""
    notes.append(f"{customer_id}: {text}")
    return "saved"


model_calls = 0


def model(messages: list[types.SamplingMessage], email: str) -> list[tuple[str, dict]]:
    """A scripted model: the tool calls of its next turn (none: it is done)."""
    global model_calls
    model_calls += 1
    results = [m.content for m in messages if isinstance(m.content, types.ToolResultContent)]
    if not results:
        return [("find_customer", {"email": email})]
    if len(results) == 1:
        customer = results[0].structured_content  # the id comes from the tool's result
        return [("add_note", {"customer_id": customer["id"], "text": "called back"})]
    return []


async def main() -> None:
    engine = Engine()
    async with mcp.Client(server) as client:
        cached = CachedClient(engine, client)
        for email in ("ann@example.com", "bob@example.com"):

            async def agent(task: McpTask, email: str = email) -> str:
                messages = list(task.messages)
                while calls := model(messages, email):
                    task.report_usage(tokens=1200)  # what the host's model spent
                    for result in await task.call_tools(calls):
                        messages.append(
                            types.SamplingMessage(
                                role="user",
                                content=types.ToolResultContent(
                                    tool_use_id="-",
                                    content=result.content,
                                    structured_content=result.structured_content,
                                ),
                            )
                        )
                return f"noted the call-back for {email}"

            global model_calls
            model_calls = 0
            outcome = await cached.run("note a call-back", agent, params={"email": email})
            print(
                f"{email}: {outcome.status}, model calls: {model_calls}, "
                f"replayed {outcome.replayed}, answer: {outcome.result}"
            )
    print("notes:", notes)
    print("tokens saved by hits:", engine.stats().total.tokens_saved)


if __name__ == "__main__":
    asyncio.run(main())
