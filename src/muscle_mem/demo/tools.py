"""The agent's tools on the simulated platform, instrumented with ``@engine.method``.

Each tool's check captures only what makes the call safe to repeat, and captures it as
a small value compared by equality (so the engine finds it by hash):

- acting on a page is safe while the page has the layout it had (fields and slots move
  with the layout);
- reading or testing a flow is safe while its configuration is the one we saw;
- copying a flow is safe while the pattern we copy is unchanged;
- splitting budget is safe while the ad sets are active and rank by CPL as they did
  (that ranking is what the split was decided on).

The engine they record into is made at run time, from the store the command line
names, so :func:`instrument` applies ``@engine.method`` to :class:`AdPlatform`'s tools.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from muscle_mem import Check

from .world import TEMPLATES, World

if TYPE_CHECKING:
    from muscle_mem import Engine


class Platform:
    """The simulated platform's client: what the tools call through."""

    def __init__(self, world: World) -> None:
        self.world = world

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.world!r})"


# -- checks: what must hold for a recorded call to be safe now ---------------------------


def page_layout(platform: Platform, property: str, page: str, **_: Any) -> str | None:
    """The page's layout version."""
    return platform.world.layout(property, page)


def flow_config(platform: Platform, property: str, flow: str = "signup", **_: Any) -> str | None:
    """The flow's configuration hash (the signup flow for an attribution report)."""
    return platform.world.flow_hash(property, flow)


def pattern_config(platform: Platform, source: str, target: str, flow: str) -> str | None:
    """The configuration hash of the flow being copied."""
    return platform.world.flow_hash(source, flow)


def account_state(platform: Platform, property: str) -> tuple[tuple[str, str, str], ...]:
    """Which ad sets the account has, their objective and status."""
    return tuple(
        sorted((a.role, a.objective, a.status) for a in platform.world.ad_sets_of(property))
    )


def cpl_ranking(platform: Platform, property: str, split: dict[str, float]) -> tuple[Any, ...]:
    """The ad sets' status, and their roles from the costliest lead to the cheapest."""
    world = platform.world
    ads = world.ad_sets_of(property)
    ranked = sorted(ads, key=lambda a: -world.metrics(a.id)["cpl"])
    return tuple(sorted((a.role, a.status) for a in ads)), tuple(a.role for a in ranked)


def template_version(platform: Platform, property: str, page: str, template: str) -> str | None:
    """The version of the page template the page is built from."""
    return TEMPLATES.get(template)


def email_service(platform: Platform, property: str, list_name: str) -> str | None:
    """Whether the property's email service is connected."""
    return platform.world.esp.get(property)


# -- tools -------------------------------------------------------------------------------


class AdPlatform(Platform):
    """The tools, before :func:`instrument` records them with an engine."""

    def inspect_page(self, property: str, page: str) -> dict[str, Any]:
        return self.world.inspect_page(property, page)

    def ad_set_report(self, property: str) -> dict[str, Any]:
        return self.world.ad_set_report(property)

    def set_tracking(self, property: str, page: str, params: dict[str, str]) -> dict[str, Any]:
        return self.world.set_tracking(property, page, params)

    def set_form_mode(self, property: str, page: str, mode: str) -> dict[str, Any]:
        return self.world.set_form_mode(property, page, mode)

    def set_form_fields(self, property: str, page: str, fields: list[str]) -> dict[str, Any]:
        return self.world.set_form_fields(property, page, fields)

    def set_budget_split(self, property: str, split: dict[str, float]) -> dict[str, Any]:
        return self.world.set_budget_split(property, split)

    def get_flow(self, property: str, flow: str) -> dict[str, Any]:
        return self.world.get_flow(property, flow)

    def upsert_page(self, property: str, page: str, template: str) -> dict[str, Any]:
        return self.world.upsert_page(property, page, template)

    def clone_flow(self, source: str, target: str, flow: str) -> dict[str, Any]:
        return self.world.clone_flow(source, target, flow)

    def connect_email_list(self, property: str, list_name: str) -> dict[str, Any]:
        return self.world.connect_email_list(property, list_name)

    def send_test_conversion(self, property: str, flow: str) -> dict[str, Any]:
        return self.world.send_test_conversion(property, flow)

    def attribution_report(self, property: str, days: int) -> dict[str, Any]:
        return self.world.attribution_report(property, days)


# Each tool's pre-check. Written out as decorators, the first would read
#     @engine.method(pre_check=Check(page_layout))
#     def inspect_page(self, property: str, page: str) -> dict[str, Any]: ...
CHECKS = {
    "inspect_page": Check(page_layout),
    "ad_set_report": Check(account_state),
    "set_tracking": Check(page_layout),
    "set_form_mode": Check(page_layout),
    "set_form_fields": Check(page_layout),
    "set_budget_split": Check(cpl_ranking),
    "get_flow": Check(flow_config),
    "upsert_page": Check(template_version),
    "clone_flow": Check(pattern_config),
    "connect_email_list": Check(email_service),
    "send_test_conversion": Check(flow_config),
    "attribution_report": Check(flow_config),
}


def instrument(engine: Engine) -> type[AdPlatform]:
    """:class:`AdPlatform` with every tool recorded by ``engine`` (``@engine.method``
    with its check). The engine is made at run time, from the store the command line
    names, so the decorators are applied here rather than in the class body; the tools
    keep their names (``muscle_mem.demo.tools.AdPlatform.inspect_page``)."""
    tools = {
        name: engine.method(pre_check=check)(getattr(AdPlatform, name))
        for name, check in CHECKS.items()
    }
    return type("AdPlatform", (AdPlatform,), {**tools, "__module__": __name__})


# -- what a model is told about the tools (OpenAI's chat-completions "tools") ------------

_PROPERTY = {"type": "string", "enum": ["MFF", "MMM", "MCAD", "MMD"]}
_PAGE = {"type": "string", "enum": ["landing", "signup", "thank-you"]}
_FLOW = {"type": "string", "enum": ["signup", "thank-you"]}

_DESCRIPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "inspect_page": (
        "Read a page of a property: its layout version, form fields and mode, tracking parameters.",
        {"property": _PROPERTY, "page": _PAGE},
    ),
    "ad_set_report": (
        "The property's ad sets over the last 7 days: budget, spend, leads, CPL, and the "
        "blended CPL against the target.",
        {"property": _PROPERTY},
    ),
    "set_tracking": (
        "Set the URL-tracking parameters of a page's outbound links (utm_*, sub1).",
        {
            "property": _PROPERTY,
            "page": _PAGE,
            "params": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    ),
    "set_form_mode": (
        "Make a page's signup form single-step or two-step.",
        {
            "property": _PROPERTY,
            "page": _PAGE,
            "mode": {"type": "string", "enum": ["single_step", "two_step"]},
        },
    ),
    "set_form_fields": (
        "Set the fields of a page's signup form, in order; it must include email.",
        {
            "property": _PROPERTY,
            "page": _PAGE,
            "fields": {"type": "array", "items": {"type": "string"}},
        },
    ),
    "set_budget_split": (
        "Split the property's total daily budget between its ad sets by role "
        "(broad, lal1, rt7); the shares add up to 1.",
        {
            "property": _PROPERTY,
            "split": {
                "type": "object",
                "properties": {r: {"type": "number"} for r in ("broad", "lal1", "rt7")},
                "required": ["broad", "lal1", "rt7"],
            },
        },
    ),
    "get_flow": (
        "Read a property's signup or thank-you flow: whether it exists and its configuration.",
        {"property": _PROPERTY, "flow": _FLOW},
    ),
    "upsert_page": (
        "Create or rebuild a page of a property from a page template (e.g. 'ty-standard').",
        {"property": _PROPERTY, "page": _PAGE, "template": {"type": "string"}},
    ),
    "clone_flow": (
        "Copy a flow's configuration from one property to another, with the target's names in it.",
        {"source": _PROPERTY, "target": _PROPERTY, "flow": _FLOW},
    ),
    "connect_email_list": (
        "Send the property's signups to an email list of its email service.",
        {"property": _PROPERTY, "list_name": {"type": "string"}},
    ),
    "send_test_conversion": (
        "Send a test lead through a flow and see whether the attribution network got it.",
        {"property": _PROPERTY, "flow": _FLOW},
    ),
    "attribution_report": (
        "Reconcile the ad platform's leads with the attribution network's conversions.",
        {"property": _PROPERTY, "days": {"type": "integer", "minimum": 1, "maximum": 28}},
    ),
}

TOOL_NAMES = tuple(_DESCRIPTIONS)

TOOL_SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
                "additionalProperties": False,
            },
        },
    }
    for name, (description, properties) in _DESCRIPTIONS.items()
]


def parameters(platform: Platform, name: str) -> list[str]:
    """The names of a tool's arguments, in order (``self`` left out)."""
    return list(inspect.signature(getattr(platform, name)).parameters)
