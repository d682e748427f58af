"""The ``muscle-mem`` command: see what the cache holds, whether it pays, and clean it;
read the memory bank; play the demo.

A thin layer over the store protocol, :mod:`muscle_mem.stats`,
:mod:`muscle_mem.portable`, :mod:`muscle_mem.prune` and :class:`~muscle_mem.MemoryBank`:
every figure it prints is one the Python API returns, every step it removes one the
library chose. Each module here adds its commands: ``cache``, ``review``, ``bank``,
``demo``, ``mcp``, ``ui`` (the web view, :mod:`muscle_mem.ui`).
Exit codes: 0 done, 1 done but not all of it (nothing matched, rows rejected, the
user said no), 2 the command could not start (bad arguments, no store).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .. import __version__
from ..errors import DamagedRowWarning, IntegrityWarning, MuscleMemError
from ..store import ENV_VAR
from . import bank, cache, demo, mcp, review, ui
from .common import DEFAULT_STORE, SECRET_VAR, Failed, UsageError
from .output import Progress

__all__ = ["Progress", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    try:
        # What a command opens (its store) is closed when it returns, however it returns.
        with warnings.catch_warnings(record=True) as caught, contextlib.ExitStack() as opened:
            warnings.simplefilter("always", IntegrityWarning)
            args.opened = opened
            code = int(args.run(args) or 0)
        # Rows left out for their signature share one hint (the secret); damaged rows are
        # named by their own warnings, printed like any other.
        failed = [
            w
            for w in caught
            if issubclass(w.category, IntegrityWarning)
            and not issubclass(w.category, DamagedRowWarning)
        ]
        damaged = any(issubclass(w.category, DamagedRowWarning) for w in caught)
        for warning in caught:
            if warning not in failed:
                message = str(warning.message)
                prefix = "" if message.startswith("muscle-mem: ") else "muscle-mem: "
                print(f"{prefix}{message}", file=sys.stderr)
        if damaged:
            code = max(code, 1)
        if failed:
            print(
                f"muscle-mem: rows of {len(failed)} task key(s) failed signature verification "
                f"and were left out: is ${SECRET_VAR} the secret they were written with?",
                file=sys.stderr,
            )
            return max(code, 1)
        return code
    except UsageError as error:
        print(f"muscle-mem: {error}", file=sys.stderr)
        return 2
    except (Failed, MuscleMemError) as error:
        print(f"muscle-mem: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("muscle-mem: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `muscle-mem runs | head`: the reader left, and that is fine
        sys.stderr.close()
        return 0


def _parser() -> argparse.ArgumentParser:
    # --store, --json and --wide are accepted before or after the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        default=argparse.SUPPRESS,
        metavar="URL",
        help=f"the store (default: ${ENV_VAR}, else {DEFAULT_STORE})",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    common.add_argument(
        "--wide",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print every column and all of each text, however wide (the default when the "
        "output is not a terminal; else it fits $COLUMNS or the terminal)",
    )
    parser = argparse.ArgumentParser(
        prog="muscle-mem",
        description="See, measure and manage a muscle-mem cache and its memory bank.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"muscle-mem {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(
        name: str, run: Callable[[argparse.Namespace], int], text: str, group: Any = commands
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(
            name, parents=[common], help=text, description=text
        )
        sub.set_defaults(run=run)
        return sub

    cache.add_commands(command)
    review.add_commands(command)
    bank.add_commands(command)
    demo.add_commands(command)
    mcp.add_commands(command)
    ui.add_commands(command)
    return parser
