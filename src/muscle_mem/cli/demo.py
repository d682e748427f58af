"""The ``demo`` command: its options, and what only the command line knows about its
store (``--fresh`` deletes the SQLite file; which store needs no ``--store``). The demo
itself is imported only when the command runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..store import sqlite_path
from .common import DEFAULT_STORE, Command, open_for, store_url


def add_commands(command: Command) -> None:
    demo = command("demo", _demo, "the marketing-optimization demo, on a simulated platform")
    configure(demo)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to ``parser`` (the store is the caller's)."""
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="start from an empty store (deletes the SQLite file and its -wal/-shm)",
    )
    parser.add_argument(
        "--seed", type=int, default=7, help="the simulated world's seed (default: 7)"
    )
    parser.add_argument(
        "--llm-latency",
        type=_non_negative,
        default=0.3,
        metavar="SECONDS",
        help="the simulated LLM's time per call (default: 0.3)",
    )
    parser.add_argument(
        "--tokens",
        type=_whole,
        default=2500,
        metavar="N",
        help="the simulated LLM's tokens per call (default: 2500)",
    )
    parser.add_argument(
        "--price",
        type=_non_negative,
        default=3.0,
        metavar="DOLLARS",
        help="the price of a million tokens, for the cost column (default: 3)",
    )
    parser.add_argument(
        "--model",
        help="use this model instead of the simulated LLM, through the OpenAI-compatible "
        "endpoint in OPENAI_BASE_URL (OpenAI's if unset) with OPENAI_API_KEY; needs "
        "pip install 'muscle-mem[openai]'",
    )


def _demo(args: argparse.Namespace) -> int:
    from ..demo import run  # its world, agent and bank load only for the demo

    url = store_url(args)
    if args.fresh:
        problem = _empty(url)
        if problem:
            print(problem)
            return 2
    elif not url.startswith("memory:"):
        open_for(args, create=True).close()  # a store that cannot be opened: exit 2
    default = url in (DEFAULT_STORE, f"sqlite:///{DEFAULT_STORE}")
    return run(args, url, sys.stdout, store_option="" if default else f" --store {url}")


def _empty(store: str) -> str | None:
    """Empty the store for --fresh; a message when this store cannot be emptied so."""
    if store.startswith("memory:"):
        return None  # a memory store starts empty in every process
    path = sqlite_path(store)
    if not path:
        return (
            f"muscle-mem demo: --fresh only empties SQLite files; empty {store} yourself "
            "or run the demo on a file with --store"
        )
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return None


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _whole(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value
