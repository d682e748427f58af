"""Adapters that put muscle-mem under the agent frameworks people already use.

Each adapter is a submodule (``muscle_mem.integrations.pydantic_ai``, ...) that imports its
framework when it is itself imported, never before: nothing is imported here, so
``import muscle_mem`` costs nothing for a framework you don't use. Each needs its extra,
e.g. ``pip install 'muscle-mem[pydantic-ai]'``. Adapters use only the public API
(``muscle_mem``, ``muscle_mem.errors``, ``muscle_mem.models``).

- :mod:`muscle_mem.integrations.pydantic_ai`: PydanticAI.
- :mod:`muscle_mem.integrations.openai_agents`: the OpenAI Agents SDK.
- :mod:`muscle_mem.integrations.langchain`: LangChain agents and LangGraph's ``ToolNode``.
- :mod:`muscle_mem.integrations.mcp`: a cached MCP client, and the proxy behind
  ``muscle-mem mcp-proxy``.
"""
