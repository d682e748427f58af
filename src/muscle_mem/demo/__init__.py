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

The command line owns the demo's options (:mod:`muscle_mem.cli.demo`) and calls
:func:`run` with the store it resolved (``--store``, ``$MUSCLE_MEM_STORE``, or
``.muscle_mem/cache.db``).
"""

from __future__ import annotations

import argparse
from typing import TextIO

__all__ = ["run"]


def run(args: argparse.Namespace, store: str, out: TextIO) -> int:
    """Play one day of the demo on ``store`` (a URL or path), printing to ``out``;
    returns the exit code. ``args`` holds the demo's options."""
    from .app import play  # the world, the agent and the bank load only when it runs

    return play(args, store, out)
