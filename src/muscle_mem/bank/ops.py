"""Steps the bank and the importer both take inside a transaction."""

from __future__ import annotations

import uuid
from typing import Any

from .backend import Tx
from .model import Action, Decision, Entity, Learning, Record, Snapshot, describe_impact
from .text import Doc, flatten

# Writers of one entity take turns (Tx.lock); should one still lose the race for the
# next version, it reads again. More losses than this means something else is wrong.
_VERSION_ATTEMPTS = 5


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def put_entity(tx: Tx, kind: str, id: str, attributes: dict[str, Any], at: float) -> Entity:
    """The entity with ``attributes`` merged over its latest version: a new version if
    that changes anything, else the latest as it is."""
    ref = f"{kind}:{id}"
    tx.lock(ref)
    for _ in range(_VERSION_ATTEMPTS):
        versions = tx.versions(ref)
        latest = versions[-1] if versions else None
        if latest is not None:
            merged = {**latest.attributes, **attributes}
            if merged == dict(latest.attributes):
                return latest
        else:
            merged = dict(attributes)
        entity = Entity(kind, id, merged, latest.version + 1 if latest else 1, at)
        if tx.add(entity):
            return entity
    raise RuntimeError(f"{ref}: lost {_VERSION_ATTEMPTS} races for its next version")


def related(tx: Tx, scope: str) -> list[Entity]:
    """Entities the scope ``kind:id`` covers besides itself: those whose attribute
    ``kind`` is ``id`` (a brand's campaigns), compared without regard to case."""
    kind, _, id = scope.partition(":")
    wanted = id.casefold()
    found = [
        entity
        for entity in tx.entities()
        if entity.ref != scope
        and isinstance(entity.attributes.get(kind), (str, int, float))
        and str(entity.attributes[kind]).casefold() == wanted
    ]
    return sorted(found, key=lambda entity: (entity.kind, entity.id))


def doc(record: Record) -> Doc | None:
    """What recall finds ``record`` by; None for a snapshot without an analysis."""
    if isinstance(record, Snapshot):
        if record.analysis is None:
            return None
        return Doc("snapshot", record.id, record.entity, None, record.at, flatten(record.analysis))
    if isinstance(record, Action):
        text = f"{record.reasoning} (expected: {describe_impact(record.expected)}"
        if not record.open:
            text += f"; actual: {describe_impact(record.actual)}"
        return Doc("action", record.id, record.entity, record.kind, record.at, text + ")")
    if isinstance(record, Learning):
        text = record.insight
        if record.data is not None:
            text += f" ({flatten(record.data)})"
        return Doc("learning", record.id, record.scope, record.kind, record.at, text)
    assert isinstance(record, Decision)
    text = record.reasoning
    if record.context is not None:
        text += f" ({flatten(record.context)})"
    return Doc("decision", record.id, record.scope, record.kind, record.at, text)


def add(tx: Tx, record: Record) -> bool:
    """Store ``record`` and its recall document; False if it was stored already."""
    if not tx.add(record):
        return False
    found = doc(record)
    if found is not None:
        tx.index(found)
    return True
