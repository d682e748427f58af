"""The brief: what is remembered about a scope, as markdown for an agent's prompt.

Sections come in priority order and fill the budget in that order: the entity's state
and metrics, the entities the scope covers, actions that fell short, open actions,
learnings, decisions. A section that runs out of room ends with how many items it left
out, and no section below it is shown (a decision must not take the place of a
shortfall); those are counted in a last line when it fits. Each item is one line:
line breaks in remembered text are spaces, so it cannot start a heading of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .model import Action, Decision, Entity, Learning, Snapshot, describe_impact
from .text import flatten

ITEM_CHARS = 240  # one long insight must not crowd out every other


@dataclass(frozen=True)
class Brief:
    """What a brief is rendered from."""

    scope: str
    entity: Entity | None
    snapshots: Sequence[Snapshot]
    related: Sequence[tuple[Entity, Sequence[Snapshot]]]
    actions: Sequence[Action]  # oldest first
    learnings: Sequence[Learning]  # oldest first, superseded ones left out
    decisions: Sequence[Decision]  # oldest first


@dataclass(frozen=True)
class _Section:
    title: str
    noun: str
    items: list[str]


def render(brief: Brief, budget: int) -> str:
    scope = _one_line(brief.scope)
    header = f"# Memory: {scope}"
    sections = [s for s in _sections(brief) if s.items]
    if not sections:
        return _cut(f"{header}\n\nNothing remembered about {scope} yet.", budget)
    reserve = 0
    # Sections left out are named in a last line; making room for it may leave out
    # more, so a few rounds settle it, and a budget too small for it goes without.
    for _ in range(3):
        text, left_out = _fill(header, sections, budget - reserve)
        if not left_out:
            return _cut(text, budget)
        note = f"\n\n…and left out for room: {', '.join(left_out)}"
        if len(text) + len(note) <= budget:
            return text + note
        reserve = len(note)
    return _cut(text, budget)


def _fill(header: str, sections: list[_Section], budget: int) -> tuple[str, list[str]]:
    """The sections that fit, in order, and the ones left out: every one after the
    first that does not fit whole."""
    text = header
    for i, section in enumerate(sections):
        block, shown = _fit(section, budget - len(text))
        text += block
        if shown < len(section.items):
            rest = sections[i + 1 :] if shown else sections[i:]
            return text, [f"{len(s.items)} {s.noun}" for s in rest]
    return text, []


def _fit(section: _Section, room: int) -> tuple[str, int]:
    """As much of the section as fits in ``room`` chars, ending with what it left out,
    and how many items that is; empty if not even its title and one item fit."""
    head = f"\n\n## {section.title}"
    used = len(head)
    lines: list[str] = []
    for i, item in enumerate(section.items):
        line = f"\n{_cut(_one_line(item), ITEM_CHARS)}"
        rest = len(section.items) - i - 1
        # Room for this item and for the note on the ones after it, should they not fit.
        reserve = len(_more(rest, section.noun)) if rest else 0
        if used + len(line) + reserve > room:
            break
        lines.append(line)
        used += len(line)
    if not lines:
        return "", 0
    rest = len(section.items) - len(lines)
    return head + "".join(lines) + (_more(rest, section.noun) if rest else ""), len(lines)


def _more(count: int, noun: str) -> str:
    return f"\n- …and {count} more {noun}"


def _one_line(text: str) -> str:
    # Any run of whitespace, line breaks included, as one space.
    return " ".join(text.split())


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"[:limit]


def _sections(brief: Brief) -> list[_Section]:
    newest = list(reversed(brief.actions))
    return [
        _state(brief),
        _metrics(brief.snapshots),
        _Section(
            "Covers",
            "entities",
            [_related(entity, snapshots) for entity, snapshots in brief.related],
        ),
        _Section("Fell short", "shortfalls", [_short(a) for a in newest if a.shortfall]),
        _Section("Open actions", "open actions", [_open(a) for a in newest if a.open]),
        _Section(
            "Learnings",
            "learnings",
            [_learning(x, brief.scope) for x in reversed(brief.learnings)],
        ),
        _Section(
            "Decisions",
            "decisions",
            [_decision(d, brief.scope) for d in reversed(brief.decisions)],
        ),
    ]


def _state(brief: Brief) -> _Section:
    entity = brief.entity
    if entity is None:
        return _Section("State", "attributes", [])
    title = f"State (version {entity.version}, {_day(entity.updated_at)})"
    items = [f"- {key}: {_value(value)}" for key, value in entity.attributes.items()]
    return _Section(title, "attributes", items or ["- (no attributes)"])


def _metrics(snapshots: Sequence[Snapshot]) -> _Section:
    if not snapshots:
        return _Section("Metrics", "metrics", [])
    latest = snapshots[-1]
    title = f"Metrics ({len(snapshots)} snapshot{'s' * (len(snapshots) != 1)}"
    title += f", latest {_day(latest.at)})"
    items = []
    for metric, value in latest.metrics.items():
        first = next(s for s in snapshots if metric in s.metrics)
        item = f"- {metric}: {_value(value)}"
        if first is not latest:
            start = first.metrics[metric]
            change = value - start
            percent = f", {100 * change / abs(start):+.1f}%" if start else ""
            item += f" ({_signed(change)}{percent} since {_day(first.at)})"
        items.append(item)
    if latest.analysis is not None:
        items.append(f"- analysis: {flatten(latest.analysis)}")
    return _Section(title, "metrics", items)


def _related(entity: Entity, snapshots: Sequence[Snapshot]) -> str:
    label = entity.attributes.get("name") or entity.attributes.get("title")
    line = f"- {entity.ref}" + (f" ({label})" if isinstance(label, str) else "")
    if snapshots:
        latest = snapshots[-1]
        shown = ", ".join(f"{k} {_value(v)}" for k, v in latest.metrics.items())
        line += f": {shown} ({_day(latest.at)})"
    return line


def _short(action: Action) -> str:
    return (
        f"- {action.kind} on {action.entity} ({_day(action.at)}): expected "
        f"{describe_impact(action.expected)}, got {describe_impact(action.actual)}; "
        f"short on {', '.join(action.shortfall)}"
    )


def _open(action: Action) -> str:
    return (
        f"- {action.kind} on {action.entity} ({_day(action.at)}): {action.reasoning}; "
        f"expects {describe_impact(action.expected)}"
    )


def _learning(learning: Learning, scope: str) -> str:
    where = "" if learning.scope == scope else f", {learning.scope}"
    return f"- [{learning.kind}{where}] {learning.insight} ({_day(learning.at)})"


def _decision(decision: Decision, scope: str) -> str:
    where = "" if decision.scope in (scope, None) else f", {decision.scope}"
    return f"- [{decision.kind}{where}] {decision.reasoning} ({_day(decision.at)})"


def _day(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d")


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (dict, list)):
        return flatten(value)
    return str(value)


def _signed(value: float) -> str:
    return f"{value:+g}" if isinstance(value, float) else f"{value:+d}"
