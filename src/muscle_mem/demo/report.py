"""What the demo prints: a line per task, the totals against the agent alone, and
where to look next. Only formatting: the numbers come from :mod:`.story`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from .story import StepResult
from .world import SIMULATED

LABELS = {
    "audit": "audit the conversion flow",
    "build": "build signup + thank-you flows",
    "validate": "validate attribution",
}
HEADER = (
    f"{'#':>3}  {'task':<31} {'property':<9} {'status':<8} {'replayed':>8} {'wall':>8} "
    f"{'LLM calls':>9} {'tokens':>8}"
)


@dataclass(frozen=True)
class Totals:
    """The day with muscle-mem against the same tasks done by the agent alone."""

    wall_s: float
    llm_calls: int
    tokens: int
    cost: float
    alone_wall_s: float
    alone_calls: int
    alone_tokens: int
    alone_cost: float

    @classmethod
    def of(
        cls,
        steps: Sequence[StepResult],
        seconds_per_call: float,
        tokens_per_call: float,
        price_per_token: float,
    ) -> Totals:
        alone_calls = sum(s.alone_calls for s in steps)
        alone_tokens = round(alone_calls * tokens_per_call)
        return cls(
            wall_s=sum(s.wall_s for s in steps),
            llm_calls=sum(s.llm_calls for s in steps),
            tokens=sum(s.tokens for s in steps),
            cost=sum(s.cost for s in steps),
            alone_wall_s=sum(s.alone_tools_s for s in steps) + alone_calls * seconds_per_call,
            alone_calls=alone_calls,
            alone_tokens=alone_tokens,
            alone_cost=alone_tokens * price_per_token,
        )


def step_line(step: StepResult) -> str:
    line = (
        f"{step.number:>3}  {LABELS[step.task.kind]:<31} {step.task.code:<9} "
        f"{step.status:<8} {step.replayed:>8} {step.wall_s:>6.2f} s {step.llm_calls:>9} "
        f"{step.tokens:>8,}"
    )
    if step.diverged_at is not None:
        line += (
            f"\n     -> replay stopped at {step.reason}\n"
            f"        the agent took over from step {step.diverged_at}; its path is cached now"
        )
    return line


def _saved(with_cache: float, alone: float) -> str:
    share = _share_saved(with_cache, alone)
    return "-" if share is None else f"{share:.0%}"


def _share_saved(with_cache: float, alone: float) -> float | None:
    # Below a twentieth (wall time with --llm-latency 0) a ratio says nothing.
    return (alone - with_cache) / alone if alone >= 0.05 else None


def totals_table(totals: Totals, price_per_million: float, per_call: str) -> str:
    t = totals
    price = f"cost at ${price_per_million:g} per million tokens"
    rows = [
        ("wall time", f"{t.wall_s:.1f} s", f"{t.alone_wall_s:.1f} s", t.wall_s, t.alone_wall_s),
        ("LLM calls", f"{t.llm_calls:,}", f"{t.alone_calls:,}", t.llm_calls, t.alone_calls),
        ("tokens", f"{t.tokens:,}", f"{t.alone_tokens:,}", t.tokens, t.alone_tokens),
        (price, f"${t.cost:.2f}", f"${t.alone_cost:.2f}", t.cost, t.alone_cost),
    ]
    lines = [
        f"{'totals (' + SIMULATED + ')':<36} {'muscle-mem':>12} {'agent alone':>12} {'saved':>6}"
    ]
    for name, mine, alone, a, b in rows:
        lines.append(f"{name:<36} {mine:>12} {alone:>12} {_saved(a, b):>6}")
    lines.append(
        "agent alone: the same tasks without the cache; its LLM calls counted on a copy of "
        f"the world, at {per_call} per call"
    )
    return "\n".join(lines)


def say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


def summary(
    steps: Sequence[StepResult],
    totals: Totals,
    price_per_million: float,
    seconds_per_call: float,
    tokens_per_call: float,
) -> dict[str, Any]:
    """What the tables say, as data (``muscle-mem demo --json``)."""
    t = totals
    mine = {"wall_s": t.wall_s, "llm_calls": t.llm_calls, "tokens": t.tokens, "cost": t.cost}
    alone = {
        "wall_s": t.alone_wall_s,
        "llm_calls": t.alone_calls,
        "tokens": t.alone_tokens,
        "cost": t.alone_cost,
    }
    return {
        "simulated": True,  # the ad platform always is (the LLM too, unless --model)
        "tasks": [
            {
                "number": s.number,
                "task": LABELS[s.task.kind],
                "text": s.task.text,
                "property": s.task.code,
                "status": str(s.status),
                "replayed": s.replayed,
                "diverged_at": s.diverged_at,
                "reason": s.reason,
                "wall_s": s.wall_s,
                "llm_calls": s.llm_calls,
                "tokens": s.tokens,
                "cost": s.cost,
                "task_key": s.task_key,
            }
            for s in steps
        ],
        "totals": {
            "muscle_mem": mine,
            "agent_alone": alone,
            # the share of the agent alone's figure the cache saved; None where the
            # figure is too small for a share to mean anything
            "saved": {k: _share_saved(mine[k], alone[k]) for k in mine},
        },
        "agent_alone_per_llm_call": {"seconds": seconds_per_call, "tokens": tokens_per_call},
        "price_per_million_tokens": price_per_million,
    }
