"""Adapters that put muscle-mem under the agent frameworks people already use.

Each adapter is a module here (``muscle_mem.integrations.mcp``, ...) that imports its
framework only when it is imported itself, and is installed with its extra
(``pip install 'muscle-mem[mcp]'``). This package imports nothing, so that
``import muscle_mem`` never pays for a framework. The adapters use only the public API:
``muscle_mem``, ``muscle_mem.errors`` and ``muscle_mem.models``.
"""
