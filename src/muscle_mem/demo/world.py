"""The simulated world: an ad account and a landing-page platform for four properties.

Nothing here talks to a real service. Four properties (MFF, MMM, MCAD, MMD) each have
landing, signup and thank-you pages, signup and thank-you flows (some still missing),
URL-tracking parameters, three lead-generation ad sets with spend, leads and CPL, and an
attribution network that reconciles leads with conversions. Everything is a function of
the seed, the simulated day and what the agent changed: the same seed and the same
changes give the same numbers, to the cent.

Metrics are a 7-day report "as of this morning": a change made today (a budget split, a
shorter form) shows in tomorrow's numbers, as it would on a real ad platform.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

SIMULATED = "simulated"
FIRST_DAY = date(2025, 6, 2)  # day 1 of the simulated calendar (a Monday)
ROLES = ("broad", "lal1", "rt7")
ROLE_NAMES = {
    "broad": "Prospecting · broad interests",
    "lal1": "Prospecting · 1% lookalike of leads",
    "rt7": "Retargeting · site visitors 7 days",
}
TEMPLATES = {"ty-standard": "ty-2.1"}  # the page builder's templates and their versions
STANDARD_POSTBACK = "https://network.example/postback?offer={property}&sub1={{sub1}}"

# How the form shapes the cost of a lead: every field past the email costs sign-ups,
# and so does a second step.
FIELD_COST = 0.08
TWO_STEP_COST = 0.12
BUDGET_ELASTICITY = 0.4  # CPL grows with budget: audiences tire


class WorldError(LookupError):
    """A tool asked for something the simulated platform does not have."""


@dataclass(frozen=True)
class PropertySpec:
    """How a property starts out on day 1."""

    code: str
    vertical: str
    target_cpl: float
    budgets: tuple[float, float, float]  # daily, per role
    base_cpl: tuple[tuple[float, float], ...]  # range per role, with the best form
    form_fields: tuple[str, ...]
    signup_layout: str
    tracking_complete: bool
    has_flows: bool


SPECS = (
    PropertySpec(
        "MFF", "fitness", 0.45, (120, 80, 40),
        ((0.62, 0.68), (0.34, 0.37), (0.29, 0.32)),
        ("email",), "signup-v3", True, True,
    ),
    PropertySpec(
        "MMM", "personal finance", 1.50, (150, 100, 50),
        ((7.0, 7.6), (3.7, 4.1), (3.1, 3.4)),
        ("email", "first_name", "phone", "zip"), "signup-v3", False, True,
    ),
    PropertySpec(
        "MCAD", "home cooking", 1.20, (100, 60, 30),
        ((2.5, 2.8), (1.35, 1.5), (1.1, 1.25)),
        ("email", "first_name"), "signup-v4", False, False,
    ),
    PropertySpec(
        "MMD", "DIY and makers", 1.00, (90, 60, 30),
        ((2.0, 2.3), (1.1, 1.25), (0.9, 1.0)),
        ("email", "first_name"), "signup-v3", True, False,
    ),
)  # fmt: skip
CODES = tuple(spec.code for spec in SPECS)


def standard_tracking(code: str) -> dict[str, str]:
    """The URL parameters every landing page should carry (sub1 feeds attribution)."""
    return {
        "utm_source": "facebook",
        "utm_medium": "paid_social",
        "utm_campaign": f"{code}-leads",
        "sub1": "{{ad.id}}",
    }


@dataclass
class Page:
    code: str  # the property
    kind: str  # landing, signup, thank-you
    layout: str
    form_fields: list[str] = field(default_factory=list)
    form_mode: str = "single_step"
    tracking: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        path = "" if self.kind == "landing" else self.kind
        return f"https://{self.code.lower()}.example/{path}"


@dataclass
class Flow:
    code: str  # the property
    kind: str  # signup, thank-you
    steps: list[str]
    email_list: str | None
    postback: str | None
    double_opt_in: bool = False

    def config(self) -> dict[str, Any]:
        """The flow's configuration with the property's code abstracted: two properties
        built from one pattern have the same configuration."""
        code = self.code

        def generic(text: str | None) -> str | None:
            return None if text is None else text.replace(code, "{property}")

        return {
            "kind": self.kind,
            "steps": list(self.steps),
            "email_list": generic(self.email_list),
            "postback": generic(self.postback),
            "double_opt_in": self.double_opt_in,
        }

    def config_hash(self) -> str:
        encoded = json.dumps(self.config(), sort_keys=True).encode()
        return "flow1:" + hashlib.blake2b(encoded, digest_size=6).hexdigest()


@dataclass
class AdSet:
    id: str  # e.g. "MFF-broad"
    code: str  # the property
    role: str
    objective: str
    status: str
    daily_budget: float
    initial_budget: float
    base_cpl: float

    @property
    def name(self) -> str:
        return f"{self.code} · {ROLE_NAMES[self.role]}"


@dataclass(frozen=True)
class Event:
    """A change the platform made on a tool's request: what the memory bank is told."""

    day: int
    code: str  # the property
    kind: str  # tracking, form_mode, form_fields, budget_split, page, flow, email_list
    detail: str


@dataclass
class World:
    """The whole simulated platform on one simulated day."""

    seed: int
    day: int
    target_cpl: dict[str, float]
    vertical: dict[str, str]
    pages: dict[tuple[str, str], Page]
    flows: dict[tuple[str, str], Flow]
    ad_sets: dict[str, AdSet]
    esp: dict[str, str]  # the email service's connection per property
    email_lists: dict[str, str]
    events: list[Event] = field(default_factory=list)
    # What this morning's reports were made from: today's changes show tomorrow.
    morning: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"World({SIMULATED}, seed={self.seed}, day={self.day})"

    @classmethod
    def generate(cls, seed: int) -> World:
        """Day 1, as the session finds it in the morning."""
        pages: dict[tuple[str, str], Page] = {}
        flows: dict[tuple[str, str], Flow] = {}
        ad_sets: dict[str, AdSet] = {}
        for spec in SPECS:
            code = spec.code
            rng = random.Random(f"{seed}:{code}:setup")
            tracking = standard_tracking(code)
            if not spec.tracking_complete:  # hand-made links: no sub1, a stray medium
                tracking = {
                    "utm_source": "facebook",
                    "utm_medium": "cpc",
                    "utm_campaign": code.lower(),
                }
            pages[code, "landing"] = Page(code, "landing", "lp-3", tracking=tracking)
            pages[code, "signup"] = Page(
                code,
                "signup",
                spec.signup_layout,
                form_fields=list(spec.form_fields),
                form_mode="two_step" if spec.signup_layout == "signup-v4" else "single_step",
            )
            if spec.has_flows:
                pages[code, "thank-you"] = Page(code, "thank-you", TEMPLATES["ty-standard"])
                flows[code, "signup"] = Flow(
                    code,
                    "signup",
                    ["landing", "signup", "thank-you"],
                    f"{code} Daily",
                    STANDARD_POSTBACK.replace("{property}", code),
                )
                flows[code, "thank-you"] = Flow(
                    code, "thank-you", ["thank-you"], None, None, double_opt_in=False
                )
            for role, budget, (low, high) in zip(ROLES, spec.budgets, spec.base_cpl, strict=True):
                ad_id = f"{code}-{role}"
                ad_sets[ad_id] = AdSet(
                    ad_id, code, role, "LEADS", "ACTIVE", budget, budget,
                    round(rng.uniform(low, high), 3),
                )  # fmt: skip
        world = cls(
            seed=seed,
            day=1,
            target_cpl={s.code: s.target_cpl for s in SPECS},
            vertical={s.code: s.vertical for s in SPECS},
            pages=pages,
            flows=flows,
            ad_sets=ad_sets,
            esp={code: "connected" for code in CODES},
            email_lists={code: f"{code} Daily" for code in CODES if (code, "signup") in flows},
        )
        world.start_day(1)
        return world

    def start_day(self, day: int) -> None:
        """Move the calendar to ``day``: the reports now include what changed before."""
        self.day = day
        self.events.clear()
        self.morning = {
            ad.id: (ad.daily_budget, self._form_cost(ad.code)) for ad in self.ad_sets.values()
        }

    def _form_cost(self, code: str) -> float:
        signup = self.pages[code, "signup"]
        cost = 1 + FIELD_COST * (len(signup.form_fields) - 1)
        if signup.form_mode == "two_step":
            cost *= 1 + TWO_STEP_COST
        return cost

    def copy(self) -> World:
        return copy.deepcopy(self)

    @property
    def today(self) -> date:
        return FIRST_DAY + timedelta(days=self.day - 1)

    # -- what the checks read -----------------------------------------------------------

    def layout(self, code: str, page: str) -> str | None:
        found = self.pages.get((code, page))
        return None if found is None else found.layout

    def flow_hash(self, code: str, flow: str) -> str | None:
        found = self.flows.get((code, flow))
        return None if found is None else found.config_hash()

    def ad_sets_of(self, code: str) -> list[AdSet]:
        found = [a for a in self.ad_sets.values() if a.code == code]
        if not found:
            raise WorldError(f"no property {code!r} in the {SIMULATED} ad account: {CODES}")
        return found

    # -- metrics ------------------------------------------------------------------------

    def metrics(self, ad_id: str) -> dict[str, float]:
        """The ad set's last 7 days as of this morning."""
        ad = self.ad_sets[ad_id]
        budget, form = self.morning[ad_id]
        fatigue = (budget / ad.initial_budget) ** BUDGET_ELASTICITY
        rng = random.Random(f"{self.seed}:{ad_id}:day{self.day}")
        cpl = ad.base_cpl * form * fatigue * rng.uniform(0.97, 1.03)
        spend = round(budget * 7 * rng.uniform(0.93, 1.0), 2)
        leads = max(1, round(spend / cpl))
        return {"spend": spend, "leads": leads, "cpl": round(spend / leads, 2)}

    def blended(self, code: str) -> dict[str, float]:
        rows = [self.metrics(a.id) for a in self.ad_sets_of(code)]
        spend = round(sum(r["spend"] for r in rows), 2)
        leads = sum(int(r["leads"]) for r in rows)
        return {"spend": spend, "leads": leads, "cpl": round(spend / leads, 2)}

    def match_rate(self, code: str) -> float:
        """The share of leads the attribution network can tie to a conversion."""
        flow = self.flows.get((code, "signup"))
        if flow is None or flow.postback is None:
            return 0.0
        rng = random.Random(f"{self.seed}:{code}:attribution:day{self.day}")
        if "sub1" in self.pages[code, "landing"].tracking:
            return round(rng.uniform(0.93, 0.98), 3)
        return round(rng.uniform(0.55, 0.65), 3)

    # -- what the tools do ----------------------------------------------------------------

    def _page(self, code: str, page: str) -> Page:
        found = self.pages.get((code, page))
        if found is None:
            raise WorldError(f"{code} has no {page!r} page on the {SIMULATED} platform")
        return found

    def _ad_set(self, code: str, role: str) -> AdSet:
        found = self.ad_sets.get(f"{code}-{role}")
        if found is None:
            raise WorldError(f"{code} has no ad set with the role {role!r}; roles: {ROLES}")
        return found

    def _event(self, code: str, kind: str, detail: str) -> None:
        self.events.append(Event(self.day, code, kind, detail))

    def inspect_page(self, code: str, page: str) -> dict[str, Any]:
        found = self._page(code, page)
        return {
            "source": f"{SIMULATED} page builder",
            "url": found.url,
            "layout": found.layout,
            "form": {"fields": list(found.form_fields), "mode": found.form_mode},
            "tracking": dict(found.tracking),
        }

    def ad_set_report(self, code: str) -> dict[str, Any]:
        rows = []
        for ad in self.ad_sets_of(code):
            rows.append(
                {
                    "id": ad.id,
                    "name": ad.name,
                    "role": ad.role,
                    "status": ad.status,
                    "objective": ad.objective,
                    "daily_budget": ad.daily_budget,
                    **self.metrics(ad.id),
                }
            )
        return {
            "source": f"{SIMULATED} ad account",
            "window": "last 7 days",
            "target_cpl": self.target_cpl[code],
            "blended": self.blended(code),
            "ad_sets": rows,
        }

    def set_tracking(self, code: str, page: str, params: dict[str, str]) -> dict[str, Any]:
        found = self._page(code, page)
        if found.tracking != params:
            before, after = found.tracking, dict(params)
            changes = [f"+{k}" for k in after if k not in before]
            changes += [
                f"{k} {before[k]} -> {after[k]}"
                for k in after
                if before.get(k, after[k]) != after[k]
            ]
            changes += [f"-{k}" for k in before if k not in after]
            found.tracking = after
            self._event(code, "tracking", f"{page} tracking {', '.join(changes)}")
        return {"url": found.url, "tracking": dict(found.tracking)}

    def set_form_mode(self, code: str, page: str, mode: str) -> dict[str, Any]:
        if mode not in ("single_step", "two_step"):
            raise WorldError(f"form mode {mode!r}: use 'single_step' or 'two_step'")
        found = self._page(code, page)
        if found.form_mode != mode:
            self._event(code, "form_mode", f"{page} form {found.form_mode} -> {mode}")
            found.form_mode = mode
        return {"url": found.url, "form": {"fields": found.form_fields, "mode": mode}}

    def set_form_fields(self, code: str, page: str, fields: list[str]) -> dict[str, Any]:
        if "email" not in fields:
            raise WorldError("a signup form needs an email field")
        found = self._page(code, page)
        if found.form_fields != list(fields):
            before = ", ".join(found.form_fields)
            self._event(code, "form_fields", f"{page} form fields {before} -> {', '.join(fields)}")
            found.form_fields = list(fields)
        return {"url": found.url, "form": {"fields": found.form_fields, "mode": found.form_mode}}

    def set_budget_split(self, code: str, split: dict[str, float]) -> dict[str, Any]:
        ads = self.ad_sets_of(code)
        if sorted(split) != sorted(ROLES) or abs(sum(split.values()) - 1) > 1e-6:
            raise WorldError(f"a budget split gives each of {ROLES} a share, adding up to 1")
        total = sum(a.daily_budget for a in ads)
        changes = []
        for role, share in split.items():
            ad = self._ad_set(code, role)
            budget = round(total * share, 2)
            if budget != ad.daily_budget:
                changes.append(f"{role} ${ad.daily_budget:.0f} -> ${budget:.0f}")
                ad.daily_budget = budget
        if changes:
            self._event(code, "budget_split", "daily budget " + ", ".join(changes))
        return {"daily_budgets": {a.role: a.daily_budget for a in ads}, "total": total}

    def get_flow(self, code: str, flow: str) -> dict[str, Any]:
        found = self.flows.get((code, flow))
        if found is None:
            return {"property": code, "flow": flow, "exists": False}
        return {
            "property": code,
            "flow": flow,
            "exists": True,
            "config": found.config(),
            "config_hash": found.config_hash(),
        }

    def upsert_page(self, code: str, page: str, template: str) -> dict[str, Any]:
        version = TEMPLATES.get(template)
        if version is None:
            raise WorldError(f"no page template {template!r}; templates: {sorted(TEMPLATES)}")
        found = self.pages.get((code, page))
        if found is None or found.layout != version:
            self.pages[code, page] = Page(code, page, version)
            self._event(code, "page", f"{page} page from template {template} ({version})")
        return {"url": self.pages[code, page].url, "layout": version}

    def clone_flow(self, source: str, target: str, flow: str) -> dict[str, Any]:
        pattern = self.flows.get((source, flow))
        if pattern is None:
            raise WorldError(f"{source} has no {flow!r} flow to copy")
        for step in pattern.steps:
            self._page(target, step)  # the pages must exist first

        def local(text: str | None) -> str | None:
            return None if text is None else text.replace(source, target)

        clone = Flow(
            target,
            flow,
            list(pattern.steps),
            local(pattern.email_list),
            local(pattern.postback),
            pattern.double_opt_in,
        )
        if self.flows.get((target, flow)) != clone:
            self.flows[target, flow] = clone
            self._event(target, "flow", f"{flow} flow cloned from {source}")
        return {"flow": flow, "config_hash": clone.config_hash(), "steps": clone.steps}

    def connect_email_list(self, code: str, list_name: str) -> dict[str, Any]:
        if self.esp.get(code) != "connected":
            raise WorldError(f"{code}'s email service is not connected")
        if self.email_lists.get(code) != list_name:
            self.email_lists[code] = list_name
            self._event(code, "email_list", f"signups go to the list {list_name!r}")
        return {"list": list_name, "esp": "connected"}

    def send_test_conversion(self, code: str, flow: str) -> dict[str, Any]:
        found = self.flows.get((code, flow))
        received = found is not None and found.postback is not None
        rng = random.Random(f"{self.seed}:{code}:{flow}:test:day{self.day}")
        return {
            "sub1": f"test-{code.lower()}-d{self.day}",
            "received_by_network": received,
            "postback_latency_s": round(rng.uniform(0.8, 1.6), 2) if received else None,
        }

    def attribution_report(self, code: str, days: int) -> dict[str, Any]:
        leads = int(self.blended(code)["leads"]) * days // 7
        rate = self.match_rate(code)
        matched = round(leads * rate)
        return {
            "source": f"{SIMULATED} attribution network",
            "window_days": days,
            "leads_on_ad_platform": leads,
            "conversions_matched": matched,
            "match_rate": round(matched / leads, 3) if leads else 0.0,
        }
