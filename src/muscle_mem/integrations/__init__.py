"""Adapters that put muscle-mem under the agent frameworks people already use.

Each adapter is a module of its own behind an optional extra (``pip install
'muscle-mem[openai-agents]'``) and imports its framework only when it is imported
itself, so ``import muscle_mem`` never pays for a framework. Adapters use the public API
alone (``muscle_mem``, ``muscle_mem.errors``, ``muscle_mem.models``).

- :mod:`muscle_mem.integrations.openai_agents`: the OpenAI Agents SDK.
"""
