"""The bank as JSON, in the shapes of ``campaign_memory.json`` and
``strategic_memory.json``, and back.

Exports carry what a faithful copy needs beyond those shapes: ids, times (ISO 8601,
UTC), every version of an entity, outcomes and superseded links. Hand-written
documents may leave those out, and may write numbers as strings ("15000", "3.0"). A
record without an id gets one derived from its place and content, so importing the
same document twice stores it once. Campaigns go under ``campaigns``; entities of other
kinds under ``entities`` keyed by ref; learnings about ``brand:X`` under
``brand_strategies.X``, others under ``learnings`` keyed by scope.

A document is one of two shapes, and a key neither knows is refused, never skipped (a
misspelled ``strategic_decision`` would otherwise import nothing and report success):

- an export: ``{"campaign_memory": {...}, "strategic_memory": {...}}`` (either or
  both), the first holding ``campaigns`` and ``entities``, the second
  ``brand_strategies``, ``learnings`` and ``strategic_decisions``;
- a file's content bare: those same inner keys at the top, from either file or both.

The whole document is checked before anything is written; a problem raises a
:class:`BankImportError` naming where it is, e.g.
``campaigns.sim_1.performance_snapshots[0].performance.ctr: expected a number``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

from ..errors import BankError, BankImportError
from . import ops
from . import validate as check
from .backend import Tx
from .model import Action, Closing, Decision, Entity, Learning, Snapshot

T = TypeVar("T")

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


# -- export ------------------------------------------------------------------------------


def export(tx: Tx) -> dict[str, Any]:
    entities = sorted(tx.entities(), key=lambda e: (e.kind, e.id))
    snapshots = _by(tx.snapshots(None), lambda s: s.entity)
    actions = _by(tx.actions(None), lambda a: a.entity)
    campaigns: dict[str, Any] = {}
    others: dict[str, Any] = {}
    for entity in entities:
        versions = tx.versions(entity.ref)
        entry = {
            "launch_date": iso(versions[0].updated_at),
            "campaign_data": entity.attributes,
            "versions": [
                {"version": v.version, "updated_at": iso(v.updated_at), "attributes": v.attributes}
                for v in versions
            ],
            "performance_snapshots": [_snapshot(s) for s in snapshots.get(entity.ref, [])],
            "optimizations": [_action(a) for a in actions.get(entity.ref, [])],
        }
        if entity.kind == "campaign":
            campaigns[entity.id] = entry
        else:
            others[entity.ref] = entry
    brands: dict[str, Any] = {}
    scoped: dict[str, Any] = {}
    for learning in tx.learnings(None):
        kind, _, id = learning.scope.partition(":")
        if kind == "brand":
            brands.setdefault(id, {"learnings": []})["learnings"].append(_learning(learning))
        else:
            scoped.setdefault(learning.scope, []).append(_learning(learning))
    return {
        "campaign_memory": {"campaigns": campaigns, "entities": others},
        "strategic_memory": {
            "brand_strategies": dict(sorted(brands.items())),
            "learnings": dict(sorted(scoped.items())),
            "strategic_decisions": [_decision(d) for d in tx.decisions(None)],
        },
    }


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat()


def _by(records: list[T], key: Callable[[T], str]) -> dict[str, list[T]]:
    grouped: dict[str, list[T]] = {}
    for record in records:
        grouped.setdefault(key(record), []).append(record)
    return grouped


def _snapshot(s: Snapshot) -> dict[str, Any]:
    return {"id": s.id, "timestamp": iso(s.at), "performance": s.metrics, "analysis": s.analysis}


def _action(a: Action) -> dict[str, Any]:
    outcome = None
    if a.closed_at is not None:
        outcome = {"actual_impact": a.actual, "timestamp": iso(a.closed_at)}
    return {
        "id": a.id,
        "type": a.kind,
        "reasoning": a.reasoning,
        "expected_impact": a.expected,
        "timestamp": iso(a.at),
        "outcome": outcome,
    }


def _learning(x: Learning) -> dict[str, Any]:
    return {
        "id": x.id,
        "type": x.kind,
        "insight": x.insight,
        "supporting_data": x.data,
        "timestamp": iso(x.at),
        "supersedes": x.supersedes,
        "superseded_by": x.superseded_by,
    }


def _decision(d: Decision) -> dict[str, Any]:
    return {
        "id": d.id,
        "type": d.kind,
        "scope": d.scope,
        "context": d.context,
        "reasoning": d.reasoning,
        "timestamp": iso(d.at),
    }


# -- import: check everything first ----------------------------------------------------------


@dataclass
class _EntityPlan:
    path: str
    kind: str
    id: str
    attributes: dict[str, Any]
    launched: float | None
    versions: list[tuple[str, Entity]] | None  # (path, version) when the document has them


@dataclass
class Plan:
    """A checked document, ready to write. Records without a time have ``at`` NaN and
    take the import's time (or their entity's launch date)."""

    entities: list[_EntityPlan] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    closings: list[Closing] = field(default_factory=list)
    learnings: list[tuple[str, Learning]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)


# "No time given": NaN, which no time can be (a time is a finite number), so any real
# time, -1 included, survives a round trip.
_UNSET = math.nan

_FILES = {
    "campaign_memory": ("campaigns", "entities"),
    "strategic_memory": ("brand_strategies", "learnings", "strategic_decisions"),
}
_BARE = _FILES["campaign_memory"] + _FILES["strategic_memory"]


def parse(data: object) -> Plan:
    if not isinstance(data, Mapping):
        raise BankImportError("", f"expected a JSON object, got {type(data).__qualname__}")
    plan = Plan()
    if "campaign_memory" in data or "strategic_memory" in data:
        _known(data, "", tuple(_FILES))
        parts = [(k, data[k], _FILES[k]) for k in _FILES if k in data]
    elif any(key in data for key in _BARE):
        parts = [("", data, _BARE)]
    else:
        raise BankImportError(
            "",
            "nothing to import: expected campaign_memory and/or strategic_memory, or the "
            "keys of one of them (campaigns, brand_strategies, strategic_decisions)",
        )
    for prefix, part, keys in parts:
        _known(_object(part, prefix), prefix, keys)
        _campaign_memory(plan, part, prefix)
        _strategic_memory(plan, part, prefix)
    superseded: dict[str, str] = {}
    for path, learning in plan.learnings:
        if learning.supersedes is None:
            continue
        if learning.supersedes in superseded:
            raise BankImportError(
                f"{path}.supersedes",
                f"learning {learning.supersedes!r} is superseded twice in the document "
                f"(also at {superseded[learning.supersedes]}); a learning is superseded once",
            )
        superseded[learning.supersedes] = path
    return plan


def _known(part: Mapping[str, Any], path: str, keys: tuple[str, ...]) -> None:
    for key in part:
        if key not in keys:
            raise BankImportError(
                _join(path, str(key)),
                f"not a key this document can have: expected {', '.join(keys)}",
            )


def _join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def _object(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BankImportError(path, f"expected an object, got {_show(value)}")
    return value


def _list(value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise BankImportError(path, f"expected a list, got {_show(value)}")
    return value


def _show(value: object) -> str:
    text = (
        json.dumps(value)
        if isinstance(value, (str, int, float, bool, type(None)))
        else type(value).__qualname__
    )
    return text if len(text) <= 60 else text[:57] + "..."


def _field(
    entry: Mapping[str, Any], key: str, path: str, read: Callable[[Any, str], T], default: T
) -> T:
    return (
        read(entry[key], _join(path, key)) if key in entry and entry[key] is not None else default
    )


def _text(value: object, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BankImportError(path, f"expected a non-empty string, got {_show(value)}")
    return _checked(path, check.text, value, "the text")


def _required(entry: Mapping[str, Any], key: str, path: str) -> str:
    if key not in entry:
        raise BankImportError(_join(path, key), "missing: expected a non-empty string")
    return _text(entry[key], _join(path, key))


def _checked(path: str, work: Callable[..., T], *args: Any) -> T:
    try:
        return work(*args)
    except BankError as error:
        raise BankImportError(path, str(error)) from None


def _kind(entry: Mapping[str, Any], path: str) -> str:
    return _checked(_join(path, "type"), check.kind, _required(entry, "type", path), "type")


def _scope(value: object, path: str) -> str:
    return _checked(path, check.ref, value, "scope")


def _number(value: object, path: str) -> float:
    """A number, or a string holding one ("15000" is 15000, "3.0" is 3.0), that the
    bank can keep: finite and within a float's range, as the API demands."""
    number: object = value
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        text = value.strip()
        try:
            number = int(text) if text.lstrip("+-").isdigit() else float(text)
        except ValueError:  # more digits than int() reads: far beyond a float anyway
            number = float(text)
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise BankImportError(path, f"expected a number, got {_show(value)}")
    return _checked(path, check.number, number, f"the number {_show(value)}")


def _numbers(value: object, path: str) -> dict[str, float]:
    entries = _object(value, path)
    if not entries:
        raise BankImportError(path, "expected at least one metric")
    return {_text(k, path): _number(v, _join(path, k)) for k, v in entries.items()}


def _impact(value: object, path: str) -> Any:
    if isinstance(value, str):
        return _text(value, path)
    return _numbers(value, path)


def _time(value: object, path: str) -> float:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BankImportError(path, f"expected an ISO 8601 time, got {_show(value)}") from None
        return _checked(path, check.moment, parsed, "the time")
    return _checked(path, check.moment, _number(value, path), "the time")


def _json(value: object, path: str) -> Any:
    return _checked(path, check.jsonable, value, "the value")


def _id(entry: Mapping[str, Any], path: str, prefix: str, *place: object) -> str:
    if entry.get("id") is not None:
        return _text(entry["id"], _join(path, "id"))
    # Derived from where it sits and what it says, not from the document's layout, so
    # the same record imported twice (or via either file) is one record.
    content = json.dumps([*place, entry], sort_keys=True, default=str)
    return f"{prefix}_{hashlib.sha256(content.encode()).hexdigest()[:16]}"


def _campaign_memory(plan: Plan, part: Mapping[str, Any], prefix: str) -> None:
    for section, as_ref in (("campaigns", False), ("entities", True)):
        if part.get(section) is None:
            continue
        path = _join(prefix, section)
        for key, entry in _object(part[section], path).items():
            here = _join(path, key)
            if as_ref:
                ref = _checked(here, check.ref, key, "an entities key")
                kind, _, id = ref.partition(":")
                _checked(here, check.kind, kind, "its kind")
            else:
                kind, id = (
                    "campaign",
                    _checked(here, check.name, key, "a campaign id"),
                )
            _entity(plan, _object(entry, here), here, kind, id)


def _entity(plan: Plan, entry: Mapping[str, Any], path: str, kind: str, id: str) -> None:
    ref = f"{kind}:{id}"
    launched = _field(entry, "launch_date", path, _time, None)
    attributes: dict[str, Any] = {}
    if entry.get("campaign_data") is not None:
        data = _object(entry["campaign_data"], _join(path, "campaign_data"))
        attributes = _json(dict(data), _join(path, "campaign_data"))
    versions = None
    if entry.get("versions") is not None:
        versions = []
        vpath = _join(path, "versions")
        for i, item in enumerate(_list(entry["versions"], vpath)):
            here = _join(vpath, i)
            item = _object(item, here)
            number = item.get("version")
            if isinstance(number, bool) or not isinstance(number, int) or number != i + 1:
                raise BankImportError(
                    _join(here, "version"), f"expected {i + 1}, got {_show(number)}"
                )
            if "updated_at" not in item:
                raise BankImportError(
                    _join(here, "updated_at"), "missing: expected an ISO 8601 time"
                )
            version = Entity(
                kind,
                id,
                _json(
                    dict(_object(item.get("attributes"), _join(here, "attributes"))),
                    _join(here, "attributes"),
                ),
                number,
                _time(item["updated_at"], _join(here, "updated_at")),
            )
            versions.append((here, version))
    plan.entities.append(_EntityPlan(path, kind, id, attributes, launched, versions))
    default = _UNSET if launched is None else launched
    spath = _join(path, "performance_snapshots")
    for i, item in enumerate(_list(entry.get("performance_snapshots") or [], spath)):
        here = _join(spath, i)
        item = _object(item, here)
        if "performance" not in item:
            raise BankImportError(_join(here, "performance"), "missing: expected metric -> number")
        plan.snapshots.append(
            Snapshot(
                _id(item, here, "snp", ref, "snapshot", i),
                ref,
                _field(item, "timestamp", here, _time, default),
                _numbers(item["performance"], _join(here, "performance")),
                _field(item, "analysis", here, _json, None),
            )
        )
    opath = _join(path, "optimizations")
    for i, item in enumerate(_list(entry.get("optimizations") or [], opath)):
        here = _join(opath, i)
        item = _object(item, here)
        action = Action(
            _id(item, here, "act", ref, "action", i),
            ref,
            _kind(item, here),
            _required(item, "reasoning", here),
            _field(item, "expected_impact", here, _impact, None),
            _field(item, "timestamp", here, _time, default),
        )
        plan.actions.append(action)
        if item.get("outcome") is not None:
            outcome = _object(item["outcome"], _join(here, "outcome"))
            opath2 = _join(here, "outcome")
            if outcome.get("actual_impact") is None:
                raise BankImportError(
                    _join(opath2, "actual_impact"), "missing: expected metric -> change, or text"
                )
            plan.closings.append(
                Closing(
                    action.id,
                    _impact(outcome["actual_impact"], _join(opath2, "actual_impact")),
                    _field(outcome, "timestamp", opath2, _time, _UNSET),
                )
            )


def _strategic_memory(plan: Plan, part: Mapping[str, Any], prefix: str) -> None:
    groups: list[tuple[str, str, object]] = []
    if part.get("brand_strategies") is not None:
        path = _join(prefix, "brand_strategies")
        for brand, strategy in _object(part["brand_strategies"], path).items():
            here = _join(path, brand)
            scope = _checked(here, check.ref, f"brand:{brand}", "brand")
            groups.append(
                (_join(here, "learnings"), scope, _object(strategy, here).get("learnings") or [])
            )
    if part.get("learnings") is not None:
        path = _join(prefix, "learnings")
        for scope, items in _object(part["learnings"], path).items():
            here = _join(path, scope)
            groups.append(
                (
                    here,
                    _checked(here, check.ref, scope, "a learnings key"),
                    items,
                )
            )
    for path, scope, items in groups:
        for i, item in enumerate(_list(items, path)):
            here = _join(path, i)
            item = _object(item, here)
            supersedes = _field(item, "supersedes", here, _text, None)
            plan.learnings.append(
                (
                    here,
                    Learning(
                        _id(item, here, "lrn", scope, "learning", i),
                        scope,
                        _kind(item, here),
                        _required(item, "insight", here),
                        _field(item, "supporting_data", here, _json, None),
                        _field(item, "timestamp", here, _time, _UNSET),
                        supersedes=supersedes,
                    ),
                )
            )
    if part.get("strategic_decisions") is None:
        return
    path = _join(prefix, "strategic_decisions")
    for i, item in enumerate(_list(part["strategic_decisions"], path)):
        here = _join(path, i)
        item = _object(item, here)
        context = _field(item, "context", here, _json, None)
        # Written by an export: the scope as it was, None included. By hand: the brand.
        if "scope" in item:
            decided: str | None = _field(item, "scope", here, _scope, None)
        else:
            decided = _brand_of(context)
        plan.decisions.append(
            Decision(
                _id(item, here, "dec", "decision", i),
                decided,
                _kind(item, here),
                context,
                _required(item, "reasoning", here),
                _field(item, "timestamp", here, _time, _UNSET),
            )
        )


def _brand_of(context: Any) -> str | None:
    """A hand-written decision's scope: the brand its context names. The seed names it
    "Voyage" there and "voyage" in brand_strategies, so brand scopes are lower case."""
    brand = context.get("brand") if isinstance(context, Mapping) else None
    if isinstance(brand, str) and brand.strip() and ":" not in brand:
        return f"brand:{brand.strip().lower()}"
    return None


# -- import: write ---------------------------------------------------------------------------


def apply(tx: Tx, plan: Plan, now: float) -> dict[str, int]:
    counts = dict.fromkeys(
        ("entities", "snapshots", "actions", "outcomes", "learnings", "decisions"), 0
    )
    for entity in plan.entities:
        counts["entities"] += _apply_entity(tx, entity, now)
    for snapshot in plan.snapshots:
        counts["snapshots"] += ops.add(tx, _timed(snapshot, now))
    for action in plan.actions:
        counts["actions"] += ops.add(tx, _timed(action, now))
    for closing in plan.closings:
        closing = _timed(closing, now)
        if tx.add(closing):
            closed = tx.record("action", closing.action)
            found = ops.doc(closed) if closed is not None else None
            if found is not None:
                tx.index(found)
            counts["outcomes"] += 1
    ids = {learning.id for _, learning in plan.learnings}
    for path, learning in plan.learnings:
        if learning.supersedes is not None:
            _check_supersedes(tx, path, learning, ids)
        counts["learnings"] += ops.add(tx, _timed(learning, now))
    for decision in plan.decisions:
        counts["decisions"] += ops.add(tx, _timed(decision, now))
    return counts


def _timed(record: T, now: float) -> T:
    if math.isnan(record.at):  # type: ignore[attr-defined]
        return dataclasses.replace(record, at=now)  # type: ignore[type-var]
    return record


def _apply_entity(tx: Tx, plan: _EntityPlan, now: float) -> int:
    if plan.versions is None:
        before = tx.versions(f"{plan.kind}:{plan.id}")
        at = plan.launched if plan.launched is not None and not before else now
        after = ops.put_entity(tx, plan.kind, plan.id, plan.attributes, at)
        return int(not before or after.version != before[-1].version)
    stored = {v.version: v for v in tx.versions(f"{plan.kind}:{plan.id}")}
    added = 0
    for path, version in plan.versions:
        have = stored.get(version.version)
        if have is None:
            added += tx.add(version)
        elif (
            dict(have.attributes) != dict(version.attributes)
            or have.updated_at != version.updated_at
        ):
            raise BankImportError(
                path,
                f"conflicts with version {version.version} of {version.ref} already stored "
                "(other attributes or time): import into another store, or drop 'versions' "
                "to merge campaign_data into the stored entity",
            )
    return added


def _check_supersedes(tx: Tx, path: str, learning: Learning, ids: set[str]) -> None:
    old = learning.supersedes
    assert old is not None
    found = tx.record("learning", old)
    if found is None and old not in ids:
        raise BankImportError(
            f"{path}.supersedes", f"names no learning {old!r} in the document or the store"
        )
    if isinstance(found, Learning) and found.superseded_by not in (None, learning.id):
        raise BankImportError(
            f"{path}.supersedes",
            f"learning {old!r} is superseded already, by {found.superseded_by!r}",
        )
