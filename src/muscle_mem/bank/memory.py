"""The bank in a store whose data lives in this process (a MemoryStore): the reference
the SQL backend must agree with.

The data belongs to the store, not to a bank object, so two banks on one MemoryStore
share it, and it goes when the store does. Records hold dicts and lists, so they are
copied on the way in and out: as in a database, changing a record one was handed
changes nothing stored.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TypeVar

from ..store import Store
from .backend import Backend, Query, Row, Tx
from .model import Action, Closing, Decision, Entity, Learning, Record, Snapshot
from .text import Doc

T = TypeVar("T")


class _Data:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.entities: dict[str, list[Entity]] = {}
        self.snapshots: dict[str, Snapshot] = {}
        self.actions: dict[str, Action] = {}
        self.closings: dict[str, Closing] = {}
        self.learnings: dict[str, Learning] = {}
        self.superseded_by: dict[str, str] = {}
        self.decisions: dict[str, Decision] = {}
        self.docs: dict[tuple[str, str], Doc] = {}


_banks: weakref.WeakKeyDictionary[Store, _Data] = weakref.WeakKeyDictionary()
_banks_lock = threading.Lock()


def _oldest_first(records: list[T]) -> list[T]:
    # sorted is stable: records of one time keep the order they were stored in.
    return sorted(records, key=lambda record: record.at)  # type: ignore[attr-defined]


class _MemoryTx(Tx):
    def __init__(self, data: _Data) -> None:
        self._data = data
        self._undo: list[Callable[[], object]] = []

    def rollback(self) -> None:
        for undo in reversed(self._undo):
            undo()

    def versions(self, ref: str) -> list[Entity]:
        return copy.deepcopy(self._data.entities.get(ref, []))

    def entities(self) -> list[Entity]:
        return copy.deepcopy([versions[-1] for versions in self._data.entities.values()])

    def snapshots(self, refs: Sequence[str] | None) -> list[Snapshot]:
        kept = self._data.snapshots.values()
        return copy.deepcopy(_oldest_first([s for s in kept if refs is None or s.entity in refs]))

    def actions(self, refs: Sequence[str] | None) -> list[Action]:
        kept = self._data.actions.values()
        found = [self._closed(a) for a in kept if refs is None or a.entity in refs]
        return copy.deepcopy(_oldest_first(found))

    def learnings(self, scopes: Sequence[str] | None) -> list[Learning]:
        kept = self._data.learnings.values()
        found = [self._marked(x) for x in kept if scopes is None or x.scope in scopes]
        return copy.deepcopy(_oldest_first(found))

    def decisions(self, scopes: Sequence[str] | None) -> list[Decision]:
        kept = self._data.decisions.values()
        found = [d for d in kept if scopes is None or d.scope in scopes]
        return copy.deepcopy(_oldest_first(found))

    def record(self, type: str, id: str) -> Record | None:
        found: Record | None = None
        if type == "snapshot":
            found = self._data.snapshots.get(id)
        elif type == "action":
            action = self._data.actions.get(id)
            found = None if action is None else self._closed(action)
        elif type == "learning":
            learning = self._data.learnings.get(id)
            found = None if learning is None else self._marked(learning)
        elif type == "decision":
            found = self._data.decisions.get(id)
        return copy.deepcopy(found)

    def search(self, query: Query) -> list[Doc]:
        wanted = set(query.words) if query.words is not None else None
        found = [
            (doc.at, position, doc)
            for position, doc in enumerate(self._data.docs.values())
            if (query.scopes is None or doc.scope in query.scopes)
            and (query.kind is None or doc.kind == query.kind)
            and (query.type is None or doc.type == query.type)
            and (query.since is None or doc.at >= query.since)
            and (wanted is None or (bool(wanted) and wanted <= set(doc.words.split())))
            and (
                query.include_superseded
                or doc.type != "learning"
                or doc.id not in self._data.superseded_by
            )
        ]
        found.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return [doc for _, _, doc in found[query.offset : query.offset + query.limit]]

    def add(self, row: Row) -> bool:
        data = self._data
        row = copy.deepcopy(row)
        if isinstance(row, Entity):
            versions = data.entities.setdefault(row.ref, [])
            if any(v.version == row.version for v in versions):
                return False
            versions.append(row)
            versions.sort(key=lambda v: v.version)
            self._undo.append(lambda: _drop_version(data, row))
            return True
        if isinstance(row, Closing):
            return self._put(data.closings, row.action, row)
        if isinstance(row, Learning):
            if row.id in data.learnings or (
                row.supersedes is not None and row.supersedes in data.superseded_by
            ):
                return False
            if row.supersedes is not None:
                self._put(data.superseded_by, row.supersedes, row.id)
            return self._put(data.learnings, row.id, row)
        if isinstance(row, Snapshot):
            return self._put(data.snapshots, row.id, row)
        if isinstance(row, Action):
            return self._put(data.actions, row.id, row)
        return self._put(data.decisions, row.id, row)

    def index(self, doc: Doc) -> None:
        docs = self._data.docs
        key = (doc.type, doc.id)
        if key in docs:
            before = docs[key]
            self._undo.append(lambda: docs.__setitem__(key, before))
        else:
            self._undo.append(lambda: docs.pop(key))
        docs[key] = doc

    def _put(self, table: dict[str, T], key: str, value: T) -> bool:
        if key in table:
            return False
        table[key] = value
        self._undo.append(lambda: table.pop(key))
        return True

    def _closed(self, action: Action) -> Action:
        closing = self._data.closings.get(action.id)
        if closing is None:
            return action
        return dataclasses.replace(action, actual=closing.actual, closed_at=closing.at)

    def _marked(self, learning: Learning) -> Learning:
        newer = self._data.superseded_by.get(learning.id)
        return learning if newer is None else dataclasses.replace(learning, superseded_by=newer)


def _drop_version(data: _Data, entity: Entity) -> None:
    versions = data.entities[entity.ref]
    versions.remove(entity)
    if not versions:
        del data.entities[entity.ref]


class MemoryBackend(Backend):
    def __init__(self, store: Store) -> None:
        with _banks_lock:
            data = _banks.get(store)
            if data is None:
                data = _banks[store] = _Data()
        self._data = data

    def __repr__(self) -> str:
        return f"MemoryBackend(entities={len(self._data.entities)}, docs={len(self._data.docs)})"

    def read(self, work: Callable[[Tx], T]) -> T:
        with self._data.lock:
            return work(_MemoryTx(self._data))

    def write(self, work: Callable[[Tx], T]) -> T:
        with self._data.lock:
            tx = _MemoryTx(self._data)
            try:
                return work(tx)
            except BaseException:
                tx.rollback()
                raise
