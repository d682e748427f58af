"""What the demo tells the memory bank after each task: the application's bookkeeping.

The bank hears about what happened in the world, whether the engine replayed the task or
the agent worked it out: the campaigns and their daily CPL, the optimizations made with
the impact expected (closed the next day with the impact measured), what was learned,
and the decisions the agent made (only when it made them: a replay decides nothing).

Nothing is written twice for nothing: a day's snapshot of an entity is taken once, an
insight already remembered is not learned again (a changed one supersedes it), and a
replay that changes nothing in the world records no action.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any

from muscle_mem import Status
from muscle_mem.bank import Learning

from .llm import Task
from .policy import BUDGET_SPLIT
from .world import CODES, SIMULATED, Event, World

if TYPE_CHECKING:
    from muscle_mem import Outcome
    from muscle_mem.bank import MemoryBank

ACCOUNT = "account:mode"
# What each kind of change is expected to do to the cost of a lead (relative).
EXPECTED_CPL = {"form_fields": -0.15, "form_mode": -0.10, "budget_split": -0.10}


def brand(code: str) -> str:
    return f"brand:{code.lower()}"


def campaign(ad_id: str) -> str:
    return f"campaign:{ad_id.lower()}"


class Journal:
    """Writes one simulated day of the demo into ``bank``."""

    def __init__(self, bank: MemoryBank, world: World) -> None:
        self.bank = bank
        self.world = world

    def moment(self, step: int) -> datetime:
        """When step ``step`` of the day happened on the simulated calendar."""
        start = datetime.combine(self.world.today, time(9, 0), tzinfo=timezone.utc)
        return start + timedelta(minutes=5 * step)

    def open_day(self) -> None:
        """The account, its brands and their campaigns, as they stand this morning."""
        world, bank = self.world, self.bank
        bank.entity("account", "mode", name="Mode ad account (simulated)", properties=list(CODES))
        for code in CODES:
            flows = sorted(f for (c, f) in world.flows if c == code)
            bank.entity(
                "brand",
                code.lower(),
                account="mode",
                name=f"{code} ({SIMULATED})",
                vertical=world.vertical[code],
                target_cpl=world.target_cpl[code],
                flows=flows,
            )
            for ad in world.ad_sets_of(code):
                self._campaign(ad.id)

    def _campaign(self, ad_id: str) -> None:
        ad = self.world.ad_sets[ad_id]
        self.bank.entity(
            "campaign",
            ad_id.lower(),
            brand=ad.code.lower(),
            name=f"{ad.name} ({SIMULATED})",
            objective=ad.objective,
            status=ad.status,
            daily_budget=ad.daily_budget,
        )

    def record(self, step: int, task: Task, outcome: Outcome, events: list[Event]) -> None:
        code = task.code
        at = self.moment(step)
        if task.kind == "audit":
            self._audit(code, at, outcome, events)
        elif task.kind == "build":
            self._build(code, at, outcome, events)
        else:
            self._validate(code, at)

    # -- audits -------------------------------------------------------------------------

    def _audit(self, code: str, at: datetime, outcome: Outcome, events: list[Event]) -> None:
        world, bank = self.world, self.bank
        rows = {ad.role: world.metrics(ad.id) for ad in world.ad_sets_of(code)}
        if self._first_today(f"campaign:{code.lower()}-broad", "cpl"):
            self._close_actions(code, world.blended(code)["cpl"], at)
            for ad in world.ad_sets_of(code):
                bank.snapshot(campaign(ad.id), rows[ad.role], at=at)
        for ad in world.ad_sets_of(code):
            self._campaign(ad.id)  # a new version if the split changed its budget
        changes = [e for e in events if e.kind in EXPECTED_CPL or e.kind == "tracking"]
        if changes:
            expected = 1.0
            for event in changes:
                expected *= 1 + EXPECTED_CPL.get(event.kind, 0.0)
            bank.action(
                brand(code),
                "optimization",
                f"{code} audit ({outcome.status}): " + "; ".join(e.detail for e in changes),
                expected={"cpl": round(expected - 1, 3)},
                at=at,
            )
        if not outcome.hit and any(e.kind == "budget_split" for e in events):
            bank.decide(
                "budget_split",
                {"cpl": {role: row["cpl"] for role, row in rows.items()}, "split": BUDGET_SPLIT},
                f"{code}: broad prospecting costs the most per lead, so most of the budget "
                "goes to the 1% lookalike",
                scope=brand(code),
                at=at,
            )
        self._learn(
            ACCOUNT,
            "conversion_pattern",
            f"The conversion pattern worked out on {code}: an email-only single-step signup "
            "form, standard utm + sub1 tracking, and a 30/50/20 budget split toward the 1% "
            "lookalike while broad costs the most per lead",
            {"worked_out_on": code, "cpl": {role: row["cpl"] for role, row in rows.items()}},
            at,
            keep=True,
        )
        if outcome.status == Status.HANDOFF:
            signup = world.pages[code, "signup"]
            self._learn(
                brand(code),
                "page_change",
                f"The signup page changed to layout {signup.layout}; replay stopped at step "
                f"{outcome.diverged_at} and the agent took over, and the new path is cached",
                {"diverged_at": outcome.diverged_at, "reason": outcome.reason},
                at,
            )

    def _close_actions(self, code: str, cpl_now: float, at: datetime) -> None:
        """Close the brand's optimizations of earlier days with the CPL measured now
        against the brand's CPL on the day of the action."""
        by_day = {
            datetime.fromtimestamp(when, timezone.utc).date(): value
            for when, value in self.bank.trend(brand(code), "cpl").points
        }
        for action in self.bank.actions(brand(code), open=True):
            day = datetime.fromtimestamp(action.at, timezone.utc).date()
            before = by_day.get(day)
            if action.kind == "optimization" and day < self.world.today and before:
                change = round((cpl_now - before) / before, 3)
                self.bank.outcome(action.id, {"cpl": change}, at=at)

    # -- flows and attribution ----------------------------------------------------------------

    def _build(self, code: str, at: datetime, outcome: Outcome, events: list[Event]) -> None:
        world, bank = self.world, self.bank
        flows = sorted(f for (c, f) in world.flows if c == code)
        bank.entity("brand", code.lower(), flows=flows)
        pattern = world.flow_hash("MFF", "signup")
        if events:
            bank.action(
                brand(code),
                "build_flows",
                f"{code}: " + "; ".join(e.detail for e in events),
                expected="leads reach the attribution network",
                at=at,
            )
        if not outcome.hit and events:
            bank.decide(
                "flow_pattern",
                {"source": "MFF", "config_hash": pattern},
                f"{code}: copy MFF's signup and thank-you flows rather than design new ones: "
                "they already convert at MFF's target CPL",
                scope=brand(code),
                at=at,
            )
        self._learn(
            ACCOUNT,
            "flow",
            "Missing signup and thank-you flows are built from MFF's pattern: a thank-you "
            "page from the ty-standard template, both flows cloned, the Daily list connected",
            {"config_hash": pattern},
            at,
        )

    def _validate(self, code: str, at: datetime) -> None:
        """The brand's day in numbers (CPL and attribution), then what they say."""
        world = self.world
        rate = world.match_rate(code)
        blended = world.blended(code)
        if self._first_today(brand(code), "cpl"):
            self.bank.snapshot(
                brand(code),
                {**blended, "match_rate": rate},
                f"{code}: blended CPL ${blended['cpl']:.2f} against a "
                f"${world.target_cpl[code]:.2f} target over 7 days; {rate:.1%} of leads "
                f"matched a network conversion ({SIMULATED})",
                at=at,
            )
        for action in self.bank.actions(brand(code), open=True):
            if action.kind == "build_flows":
                self.bank.outcome(action.id, f"match rate {rate:.1%}", at=at)
        if code != CODES[-1]:
            return
        rates = {c: world.match_rate(c) for c in CODES}
        leaking = [c for c, r in rates.items() if r < 0.9]
        if leaking:
            insight = f"Attribution leaks on {', '.join(leaking)}: under 90% of leads match"
        else:
            insight = "Attribution reconciles on every property: 90% or more of leads match"
        self._learn(ACCOUNT, "attribution", insight, {"match_rate": rates}, at)

    # -- helpers --------------------------------------------------------------------------

    def _first_today(self, ref: str, metric: str) -> bool:
        """Whether the entity has no snapshot of ``metric`` on today's simulated date."""
        today = self.world.today
        return not any(
            metric in s.metrics and datetime.fromtimestamp(s.at, timezone.utc).date() == today
            for s in self.bank.snapshots(ref)
        )

    def _learn(
        self, scope: str, kind: str, insight: str, data: Any, at: datetime, keep: bool = False
    ) -> None:
        """Learn ``insight`` unless it is remembered already; it supersedes the scope's
        current learning of that kind, unless ``keep`` (the first one learned stands)."""
        current = [
            r.record
            for r in self.bank.recall(scope, kind=kind, type="learning")
            if isinstance(r.record, Learning) and r.record.scope == scope
        ]
        if any(c.insight == insight for c in current) or (keep and current):
            return
        old = current[0].id if current else None
        self.bank.learn(scope, kind, insight, data, supersedes=old, at=at)
