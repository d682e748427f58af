"""The ``mcp-proxy`` command: a caching MCP server in front of any MCP server.

``muscle-mem mcp-proxy [--store URL] [--name NAME] -- <server command>`` starts the
upstream server as a subprocess and serves, on this process's stdin/stdout, its tools
plus ``muscle_mem_replay`` and ``muscle_mem_done`` (see :mod:`muscle_mem.integrations.mcp`).
A host configures it in place of the server's own command. Nothing is printed on
stdout: it is the MCP channel. The MCP SDK is imported only when the command runs.
"""

from __future__ import annotations

import argparse

from .common import Command, UsageError, open_for


def add_commands(command: Command) -> None:
    proxy = command(
        "mcp-proxy",
        _proxy,
        "serve an MCP server through the cache on stdio: mcp-proxy -- <server command>",
    )
    proxy.add_argument(
        "--name",
        help="the server's name in the recorded tools' names, mcp:<name>/<tool> "
        "(default: the name the server gives itself)",
    )
    proxy.add_argument(
        "upstream",
        nargs=argparse.REMAINDER,
        metavar="-- COMMAND",
        help="the upstream MCP server's command and arguments, after --",
    )


def _proxy(args: argparse.Namespace) -> int:
    command = list(args.upstream)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError("mcp-proxy needs the upstream server's command: mcp-proxy -- <command>")
    try:
        import anyio

        from ..integrations.mcp import serve_stdio
    except ImportError as error:
        raise UsageError(f"{error} (pip install 'muscle-mem[mcp]')") from None
    from .. import Engine

    engine = Engine(open_for(args, create=True))
    anyio.run(lambda: serve_stdio(engine, command, server=args.name))
    return 0
