"""The ``mcp-proxy`` command: a caching MCP server in front of any MCP server.

``muscle-mem mcp-proxy [--store URL] [--name NAME] [--checks MODULE:NAME] -- <server
command>`` starts the upstream server as a subprocess and serves, on this process's
stdin/stdout, its tools plus ``muscle_mem_replay`` and ``muscle_mem_done`` (see
:mod:`muscle_mem.integrations.mcp`). A host configures it in place of the server's own
command. Nothing is printed on stdout: it is the MCP channel. The MCP SDK is imported
only when the command runs.

``--checks`` names an importable dict of MCP tool name to a :class:`~muscle_mem.Check`
(its pre-check) or to a ``(pre_check, post_check)`` pair, either of which may be None:
``--checks myproject.checks:CHECKS``. It is imported before the upstream starts, with the
current directory importable, as ``python -m`` would have it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping
from typing import Any

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
        "--checks",
        metavar="MODULE:NAME",
        help="an importable dict of MCP tool name to a Check, or to a (pre_check, "
        "post_check) pair, e.g. myproject.checks:CHECKS",
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
    checks, post_checks = load_checks(args.checks) if args.checks else ({}, {})
    try:
        import anyio

        from ..integrations.mcp import serve_stdio
    except ImportError as error:
        raise UsageError(f"{error} (pip install 'muscle-mem[mcp]')") from None
    from .. import Engine

    engine = Engine(open_for(args, create=True))
    anyio.run(
        lambda: serve_stdio(
            engine, command, server=args.name, checks=checks, post_checks=post_checks
        )
    )
    return 0


def load_checks(spec: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pre- and post-checks by MCP tool name that ``--checks MODULE:NAME`` names;
    a :class:`UsageError` that says what is wrong with a bad one."""
    from .. import Check

    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise UsageError(
            f"--checks {spec!r}: write MODULE:NAME, the module to import and the dict in "
            "it, e.g. --checks myproject.checks:CHECKS"
        )
    if os.getcwd() not in sys.path:  # the user's own module, as `python -m` finds it
        sys.path.insert(0, os.getcwd())
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"--checks {spec!r}: cannot import {module_name!r} ({error})") from None
    except Exception as error:  # the module itself failed: say so, not a traceback
        raise UsageError(f"--checks {spec!r}: importing {module_name!r} raised {error!r}") from None
    for part in name.split("."):
        if not hasattr(value, part):
            raise UsageError(f"--checks {spec!r}: {module_name!r} has no {name!r}")
        value = getattr(value, part)
    if not isinstance(value, Mapping):
        raise UsageError(
            f"--checks {spec!r} is a {type(value).__qualname__}, not a dict of MCP tool "
            "name to a Check or a (pre_check, post_check) pair"
        )
    checks: dict[str, Any] = {}
    post_checks: dict[str, Any] = {}
    for tool, entry in value.items():
        pair = entry if isinstance(entry, tuple) else (entry, None)
        if (
            type(tool) is not str
            or len(pair) != 2
            or not all(c is None or isinstance(c, Check) for c in pair)
            or pair == (None, None)
        ):
            raise UsageError(
                f"--checks {spec!r}: {tool!r} maps to {entry!r}, not a Check or a "
                "(pre_check, post_check) pair of Checks (one of them may be None)"
            )
        if pair[0] is not None:
            checks[tool] = pair[0]
        if pair[1] is not None:
            post_checks[tool] = pair[1]
    return checks, post_checks
