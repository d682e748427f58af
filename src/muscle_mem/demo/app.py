"""One day of the demo: the world, the agent, the engine and the bank, and what it prints."""

from __future__ import annotations

import argparse
import io
import json
import os
import shlex
import sys
import time
from typing import Any, TextIO

from muscle_mem import Engine
from muscle_mem.bank import MemoryBank

from .agent import Agent
from .journal import ACCOUNT, Journal, brand
from .llm import LLM, TASK_TEXT
from .openai_llm import ModelUnavailable, OpenAILLM
from .policy import SimulatedLLM
from .report import HEADER, Totals, say, step_line, summary, totals_table
from .story import DAY, Session, StepResult, days_played, settle
from .tools import instrument
from .world import SIMULATED, World


def play(args: argparse.Namespace, store: str, out: TextIO, *, store_option: str = "") -> int:
    """Play one day of the demo on ``store`` and print it to ``out``; the exit code.
    With ``args.json`` the day is told as one JSON document at its end instead."""
    started = time.perf_counter()
    as_json = bool(getattr(args, "json", False))
    story, errors = (io.StringIO(), sys.stderr) if as_json else (out, out)
    try:
        llm = _llm(args)
    except ModelUnavailable as error:
        print(f"muscle-mem demo: {error}", file=errors)
        return 2
    engine = Engine(store=store)
    try:
        bank = MemoryBank(engine.store)  # the bank shares the engine's store and connection
        platform = instrument(engine)(World.generate(args.seed))
        world = platform.world
        played = days_played(engine)
        settle(world, platform, played)
        journal = Journal(bank, world)
        price_per_token = args.price / 1_000_000
        agent = Agent(
            llm,
            platform,
            price_per_token=price_per_token,
            brief=lambda code: bank.brief(brand(code), budget_chars=1200),
        )
        engine.set_agent(agent).set_context(platform).finalize()

        say(story, _header(args, store, world, llm))
        if played:
            say(story, "\nWhat the memory bank remembers from earlier sessions:\n")
            say(story, _indent(bank.brief(ACCOUNT, budget_chars=2500)))
        journal.open_day()
        session = Session(engine, platform, llm, journal)
        say(story, "\n" + HEADER)
        steps: list[StepResult] = []
        for number, task in enumerate(DAY, 1):
            try:
                steps.append(session.run(number, task))
            except ModelUnavailable as error:  # the engine kept nothing of that task
                say(errors, f"muscle-mem demo: {error}")
                return 1
            say(story, step_line(steps[-1]))

        if llm.calls:
            seconds, tokens = llm.seconds / llm.calls, llm.tokens / llm.calls
        else:
            seconds, tokens = args.llm_latency, float(args.tokens)
        totals = Totals.of(steps, seconds, tokens, price_per_token)
        per_call = f"{seconds:.2f} s and {tokens:,.0f} tokens"
        say(story, "\n" + totals_table(totals, args.price, per_call))
        say(story, "\n" + _bank_line(bank))
        say(story, "\n" + _look_further(store_option, steps))
        say(story, f"\ndemo finished in {time.perf_counter() - started:.1f} s (wall)")
        if as_json:
            day = {"seed": args.seed, "day": world.day, "store": store, "llm": llm.label}
            day.update(summary(steps, totals, args.price, seconds, tokens))
            day["memory_bank"] = _bank_counts(bank)
            day["wall_s"] = time.perf_counter() - started
            json.dump(day, out, indent=2)
            out.write("\n")
    finally:
        engine.close()
        llm.close()
    return 0


def _llm(args: argparse.Namespace) -> LLM:
    if not args.model:
        return SimulatedLLM(latency=args.llm_latency, tokens_per_call=args.tokens)
    return OpenAILLM(
        args.model,
        base_url=os.environ.get("OPENAI_BASE_URL") or None,
        api_key=os.environ.get("OPENAI_API_KEY") or None,
    )


def _header(args: argparse.Namespace, store: str, world: World, llm: LLM) -> str:
    if isinstance(llm, SimulatedLLM):
        model = (
            f"{llm.label}: {llm.latency:g} s and {llm.tokens_per_call:,} tokens per call "
            f"({SIMULATED})"
        )
    else:
        model = llm.label
    day = world.today.strftime("%a %d %b %Y")
    return (
        f"muscle-mem demo: a {SIMULATED} ad account and landing-page platform "
        f"(seed {args.seed})\n"
        f"day {world.day}, {day} ({SIMULATED} calendar)   store: {store}\n"
        f"agent: a tool-calling loop; its LLM: {model}"
    )


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" if line else "" for line in text.splitlines())


def _bank_counts(bank: MemoryBank) -> dict[str, Any]:
    actions = bank.actions()
    return {
        "entities": len(bank.entities()),
        "optimizations": len(actions),
        "measured": sum(1 for a in actions if not a.open),
        "fell_short": len(bank.shortfalls()),
        "learnings": len(bank.recall(type="learning", limit=1000)),
        "decisions": len(bank.recall(type="decision", limit=1000)),
    }


def _bank_line(bank: MemoryBank) -> str:
    n = _bank_counts(bank)
    return (
        f"memory bank: {n['entities']} entities, {n['optimizations']} optimizations "
        f"({n['measured']} measured, {n['fell_short']} fell short of expectations), "
        f"{n['learnings']} learnings, {n['decisions']} decisions"
    )


def _look_further(option: str, steps: list[StepResult]) -> str:
    handoff = next((s for s in steps if s.diverged_at is not None), steps[2])
    commands = [
        ("muscle-mem stats", "hit rate, time and tokens saved per task"),
        (
            # A task is named by its own words, as every command takes it.
            f"muscle-mem show {shlex.quote(TASK_TEXT[handoff.task.kind])}",
            f"the audit's recorded paths, {handoff.task.code}'s branch",
        ),
        (
            f"muscle-mem bank brief brand:{handoff.task.code.lower()}",
            f"what the memory bank remembers about {handoff.task.code}",
        ),
        ("muscle-mem demo", "the next day: a new session starts from the bank and the cache"),
    ]
    width = max(len(c + option) for c, _ in commands)
    return "look further:\n" + "\n".join(
        f"  {command + option:<{width}}  {what}" for command, what in commands
    )
