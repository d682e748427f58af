"""``muscle-mem demo``: a marketing-optimization agent on a simulated platform.

An agent audits conversion flows, builds signup flows and validates attribution on four
simulated properties. The engine replays what it learned on one property on the others,
hands over to the agent where a page has changed, and the memory bank keeps the
campaigns, the optimizations and the learnings for the next session, which replays the
whole day from the cache. The LLM is simulated (a deterministic policy with a latency
and a token count per call) unless ``--model`` names a real one behind an
OpenAI-compatible endpoint (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``).

A later session finds the world the earlier ones left: it is generated from the seed and
brought forward by the simulated policy playing the days already in the store's run
log. (Had a real model taken other paths, a later day could see a world that differs
from the one it left, and hand over where it does.)

The demo is a client of the public API: it uses only what ``muscle_mem`` and
``muscle_mem.bank`` export, so it doubles as proof that they are enough. The command
line owns its options (:mod:`muscle_mem.cli.demo`) and calls :func:`run` with the store
it resolved (``--store``, ``$MUSCLE_MEM_STORE``, or ``.muscle_mem/cache.db``), emptied
first for ``--fresh``.
"""

from __future__ import annotations

import argparse
from typing import TextIO

__all__ = ["run"]


def run(args: argparse.Namespace, store: str, out: TextIO, *, store_option: str = "") -> int:
    """Play one day of the demo on ``store`` (a URL or path), printing to ``out``;
    returns the exit code. ``args`` holds the demo's options; ``store_option`` is what
    the commands it suggests need to name the store (`` --store URL``, or nothing for
    the command line's default)."""
    from .app import play  # the world, the agent and the bank load only when it runs

    return play(args, store, out, store_option=store_option)
