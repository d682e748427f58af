"""MemoryBank: what an agent did and learned, kept beside its behavior cache."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import (
    BankError,
    BankImportError,
    ConfigurationError,
    UnknownEntityError,
    UnknownRecordError,
)
from ..models import RunRecord
from ..store import Store, open_store
from ..store.base import SQLDatabase
from . import markdown, ops, seed_json
from . import validate as check
from .backend import Backend, Query, Tx
from .brief import Brief, render
from .model import Action, Closing, Decision, Entity, Learning, Recalled, Snapshot, Trend
from .text import words

RECORD_TYPES = ("learning", "decision", "action", "snapshot")
MAX_LIMIT = 1_000


class MemoryBank:
    """Entities, their metrics over time, actions and their outcomes, learnings and
    decisions, in the store an :class:`~muscle_mem.Engine` uses.

    ``store`` is what ``Engine(store=...)`` takes: a Store, a URL or path, or None for
    ``$MUSCLE_MEM_STORE`` (else memory). One SQLite file or PostgreSQL database holds the
    cache and the bank side by side; two banks on one MemoryStore share its memory.
    Lists of versions and snapshots are oldest first; queries (actions, recall) newest
    first. Bad input raises a :class:`BankError` and stores nothing.
    """

    def __init__(self, store: Store | str | Path | None = None) -> None:
        self._owns_store = not isinstance(store, Store)
        self.store = open_store(store)
        try:
            self._backend = _backend(self.store)
        except BaseException:
            if self._owns_store:
                self.store.close()
            raise

    def __repr__(self) -> str:
        return f"MemoryBank({self.store!r})"

    def __enter__(self) -> MemoryBank:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store if this bank opened it (from a URL, a path or None)."""
        if self._owns_store:
            self.store.close()

    # -- entities ---------------------------------------------------------------------

    def entity(self, kind: str, id: str, /, **attributes: Any) -> Entity:
        """Create the entity, or merge ``attributes`` over its latest version.

        A change makes a new version (the old ones stay, see :meth:`history`); no
        attributes, or the ones it has already, return the latest version unchanged.
        """
        kind = check.kind(kind)
        id = check.name(id, "id")
        merged = check.jsonable(attributes, "attributes")
        at = check.moment(None)
        return self._backend.write(lambda tx: ops.put_entity(tx, kind, id, merged, at))

    def get(self, ref: Entity | str) -> Entity:
        """The latest version of the entity ``ref`` ("kind:id" or an Entity)."""
        return self.history(ref)[-1]

    def history(self, entity: Entity | str) -> list[Entity]:
        """Every version of the entity, oldest first."""
        ref = check.ref(entity)
        return self._backend.read(lambda tx: _versions(tx, ref))

    def entities(self, kind: str | None = None) -> list[Entity]:
        """The latest version of every entity (of ``kind``), ordered by kind and id."""
        if kind is not None:
            kind = check.kind(kind)
        found = self._backend.read(lambda tx: tx.entities())
        return sorted(
            (e for e in found if kind is None or e.kind == kind), key=lambda e: (e.kind, e.id)
        )

    # -- snapshots ----------------------------------------------------------------------

    def snapshot(
        self,
        entity: Entity | str,
        metrics: Mapping[str, float],
        analysis: Any = None,
        at: datetime | float | None = None,
    ) -> Snapshot:
        """Record the entity's ``metrics`` (name -> number) at ``at`` (default now),
        with the agent's ``analysis`` (text or JSON data), which recall searches."""
        ref = check.ref(entity)
        snapshot = Snapshot(
            ops.new_id("snp"),
            ref,
            check.moment(at),
            check.metrics(metrics),
            check.jsonable(analysis, "analysis"),
        )

        def work(tx: Tx) -> Snapshot:
            _versions(tx, ref)
            ops.add(tx, snapshot)
            return snapshot

        return self._backend.write(work)

    def snapshots(self, entity: Entity | str) -> list[Snapshot]:
        """The entity's snapshots, oldest first."""
        ref = check.ref(entity)
        return self._backend.read(lambda tx: (_versions(tx, ref), tx.snapshots([ref]))[1])

    def trend(self, entity: Entity | str, metric: str) -> Trend:
        """``metric`` over the entity's snapshots that have it, oldest first, with its
        change from the first to the last."""
        metric = check.name(metric, "metric")
        points = tuple(
            (s.at, s.metrics[metric]) for s in self.snapshots(entity) if metric in s.metrics
        )
        return Trend(check.ref(entity), metric, points)

    # -- actions --------------------------------------------------------------------------

    def action(
        self,
        entity: Entity | str,
        kind: str,
        reasoning: str,
        expected: Mapping[str, float] | str | None = None,
        at: datetime | float | None = None,
    ) -> str:
        """Record an action on the entity and return its id, for :meth:`outcome`.

        ``expected`` is the relative change hoped for per metric (``{"cpl": -0.15}``:
        CPL down 15%) or free text, which is never judged a shortfall.
        """
        ref = check.ref(entity)
        action = Action(
            ops.new_id("act"),
            ref,
            check.kind(kind),
            check.name(reasoning, "reasoning"),
            check.impact(expected, "expected"),
            check.moment(at),
        )

        def work(tx: Tx) -> str:
            _versions(tx, ref)
            ops.add(tx, action)
            return action.id

        return self._backend.write(work)

    def outcome(
        self,
        action: Action | str,
        actual: Mapping[str, float] | str,
        at: datetime | float | None = None,
    ) -> Action:
        """Close the action with what came of it, in the shape of its ``expected``
        (relative change per metric, or text). An outcome is final."""
        action_id = check.name(getattr(action, "id", action), "action id")
        if actual is None:
            raise BankError("actual must say what came of the action: a dict or text, not None")
        closing = Closing(action_id, check.impact(actual, "actual"), check.moment(at))

        def work(tx: Tx) -> Action:
            found = tx.record("action", action_id)
            if not isinstance(found, Action):
                raise UnknownRecordError(
                    f"no action {action_id!r} in the bank: pass the id bank.action(...) "
                    "returned (bank.actions(open=True) lists the open ones)"
                )
            if not found.open or not tx.add(closing):
                raise BankError(
                    f"action {action_id!r} is closed already: an outcome is final; record "
                    "a new action for a new attempt"
                )
            closed = dataclasses.replace(found, actual=closing.actual, closed_at=closing.at)
            found_doc = ops.doc(closed)
            assert found_doc is not None
            tx.index(found_doc)
            return closed

        return self._backend.write(work)

    def actions(self, entity: Entity | str | None = None, open: bool | None = None) -> list[Action]:
        """Actions (on the entity), newest first; ``open`` True or False keeps only the
        open or the closed ones."""
        refs = None if entity is None else [check.ref(entity)]
        if open is not None and not isinstance(open, bool):
            raise BankError(f"open must be True, False or None, got {open!r}")
        found = self._backend.read(lambda tx: tx.actions(refs))
        return [a for a in reversed(found) if open is None or a.open == open]

    def shortfalls(self, entity: Entity | str | None = None) -> list[Action]:
        """Closed actions whose outcome fell short of what was expected, newest first."""
        return [a for a in self.actions(entity, open=False) if a.shortfall]

    # -- learnings and decisions ------------------------------------------------------------

    def learn(
        self,
        scope: Entity | str,
        kind: str,
        insight: str,
        data: Any = None,
        supersedes: Learning | str | None = None,
        at: datetime | float | None = None,
    ) -> Learning:
        """Record an insight about ``scope`` (an entity or a scope like "brand:voyage",
        stored or not), with the ``data`` behind it. ``supersedes`` names an older
        learning this one replaces: it is kept, marked, and left out of briefs."""
        old = (
            None
            if supersedes is None
            else check.name(getattr(supersedes, "id", supersedes), "supersedes")
        )
        learning = Learning(
            ops.new_id("lrn"),
            check.ref(scope, "scope"),
            check.kind(kind),
            check.name(insight, "insight"),
            check.jsonable(data, "data"),
            check.moment(at),
            supersedes=old,
        )

        def work(tx: Tx) -> Learning:
            if old is not None:
                _supersedable(tx, old)
            if not ops.add(tx, learning):
                # Another writer superseded the same learning since we checked.
                _supersedable(tx, old or "")
            return learning

        return self._backend.write(work)

    def decide(
        self,
        kind: str,
        context: Any,
        reasoning: str,
        scope: Entity | str | None = None,
        at: datetime | float | None = None,
    ) -> Decision:
        """Record a decision, the ``context`` it was made in (text or JSON data) and
        why; scoped to an entity or a scope like "brand:voyage", or to nothing."""
        decision = Decision(
            ops.new_id("dec"),
            None if scope is None else check.ref(scope, "scope"),
            check.kind(kind),
            check.jsonable(context, "context"),
            check.name(reasoning, "reasoning"),
            check.moment(at),
        )
        self._backend.write(lambda tx: ops.add(tx, decision))
        return decision

    # -- recall ---------------------------------------------------------------------------------

    def recall(
        self,
        scope: Entity | str | None = None,
        kind: str | None = None,
        since: datetime | float | None = None,
        text: str | None = None,
        limit: int = 20,
        offset: int = 0,
        *,
        type: str | None = None,
        include_superseded: bool = False,
    ) -> list[Recalled]:
        """Learnings, decisions, actions and snapshot analyses, newest first.

        ``scope`` keeps what is about it or the entities it covers (a brand's campaigns);
        ``kind`` a learning's, decision's or action's kind; ``since`` what is that recent;
        ``text`` what has all its words (case-insensitive; any text is safe: it is read
        as words, never as query syntax); ``type`` one of learning, decision, action,
        snapshot. Superseded learnings only with ``include_superseded=True``.
        """
        scope_ref = None if scope is None else check.ref(scope, "scope")
        if kind is not None:
            kind = check.kind(kind)
        if type is not None and type not in RECORD_TYPES:
            raise BankError(f"type must be one of {', '.join(RECORD_TYPES)}, got {type!r}")
        if text is not None and not isinstance(text, str):
            raise BankError(f"text must be a string of words to find, got {text!r}")
        for what, value, least in (("limit", limit, 1), ("offset", offset, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise BankError(f"{what} must be a whole number of at least {least}, got {value!r}")
        if offset > check.MAX_OFFSET:
            raise BankError(f"offset must be at most {check.MAX_OFFSET:,}, got {offset!r}")
        query = Query(
            scopes=None,
            kind=kind,
            type=type,
            since=None if since is None else check.moment(since, "since"),
            words=None if text is None else tuple(dict.fromkeys(words(text))),
            include_superseded=bool(include_superseded),
            limit=min(limit, MAX_LIMIT),
            offset=offset,
        )

        def work(tx: Tx) -> list[Recalled]:
            scoped = query
            if scope_ref is not None:
                refs = (scope_ref, *(e.ref for e in ops.related(tx, scope_ref)))
                scoped = dataclasses.replace(query, scopes=refs)
            found = []
            for doc in tx.search(scoped):
                record = tx.record(doc.type, doc.id)
                if record is not None:
                    found.append(
                        Recalled(record.type, doc.id, doc.scope, doc.kind, doc.at, doc.text, record)
                    )
            return found

        return self._backend.read(work)

    def brief(self, scope: Entity | str, budget_chars: int = 2000) -> str:
        """A markdown summary of what is remembered about ``scope``, for an agent's
        prompt: never longer than ``budget_chars``; what does not fit is counted."""
        ref = check.ref(scope, "scope")
        if isinstance(budget_chars, bool) or not isinstance(budget_chars, int) or budget_chars < 1:
            raise BankError(
                f"budget_chars must be a whole number of at least 1, got {budget_chars!r}"
            )

        def work(tx: Tx) -> Brief:
            versions = tx.versions(ref)
            others = ops.related(tx, ref)
            refs = [ref, *(e.ref for e in others)]
            return Brief(
                scope=ref,
                entity=versions[-1] if versions else None,
                snapshots=tx.snapshots([ref]),
                related=[(e, tx.snapshots([e.ref])) for e in others],
                actions=tx.actions(refs),
                learnings=[x for x in tx.learnings(refs) if not x.superseded],
                decisions=tx.decisions(refs),
            )

        return render(self._backend.read(work), budget_chars)

    # -- episodes and JSON -------------------------------------------------------------------

    def episodes(self, entity: Entity | str) -> list[RunRecord]:
        """The engine runs about the entity (``engine(..., about=entity)``), the last
        started first."""
        ref = check.ref(entity)
        # The run log lists runs as they were committed; a slow run started first
        # commits last, so order by when each started.
        runs = reversed(self.store.runs(about=ref))  # ties: the last committed first
        return sorted(runs, key=lambda run: run.started_at, reverse=True)

    def export(self) -> dict[str, Any]:
        """Everything in the bank as ``{"campaign_memory": ..., "strategic_memory": ...}``,
        the JSON shapes of campaign_memory.json and strategic_memory.json, with ids,
        times, versions and outcomes: importing it elsewhere makes the same bank."""
        return self._backend.read(seed_json.export)

    def export_markdown(self, directory: str | Path) -> tuple[int, int]:
        """Write the bank as folders of markdown under ``directory`` (daily logs,
        conversion data, optimization wins, learnings, decisions: see
        :mod:`muscle_mem.bank.markdown`); returns how many files were written or
        changed, and how many stale ones it had written before were removed. One way:
        :meth:`export` is what imports back."""

        def work(tx: Tx) -> dict[str, str]:
            latest = sorted(tx.entities(), key=lambda e: (e.kind, e.id))
            return markdown.render(
                [(e, tx.versions(e.ref)) for e in latest],
                tx.snapshots(None),
                tx.actions(None),
                tx.learnings(None),
                tx.decisions(None),
                runs,
            )

        runs = self.store.runs()
        return markdown.write(directory, self._backend.read(work))

    def import_json(self, data: Mapping[str, Any] | str | bytes) -> dict[str, int]:
        """Import a document :meth:`export` made, or campaign_memory.json /
        strategic_memory.json content (either or both; numbers may be strings).

        Checks the whole document first: a malformed one raises a
        :class:`~muscle_mem.bank.BankImportError` naming where, and stores nothing.
        Returns how many records of each kind were new; importing again stores none.
        """
        if isinstance(data, (str, bytes)):
            try:
                data = json.loads(data)
            except ValueError as error:
                raise BankImportError("", f"not JSON: {error}") from None
        plan = seed_json.parse(data)
        at = check.moment(None)
        return self._backend.write(lambda tx: seed_json.apply(tx, plan, at))


def _backend(store: Store) -> Backend:
    # Asked of the store, not of its class: a store of another making can hold a bank.
    if store.in_memory:
        from .memory import MemoryBackend

        return MemoryBackend(store)
    if isinstance(store, SQLDatabase):
        from .sql import SQLBackend

        return SQLBackend(store)
    raise ConfigurationError(
        f"a MemoryBank keeps its data in a MemoryStore, SQLite or PostgreSQL store; "
        f"{store!r} is none of them, so the bank cannot live in it. Open the bank on "
        "memory://, sqlite:///path.db or postgresql://..., or give the store class "
        "in_memory = True (its data lives in this process) or the read, write and "
        "dialect of muscle_mem.store.base.SQLDatabase"
    )


def _versions(tx: Tx, ref: str) -> list[Entity]:
    versions = tx.versions(ref)
    if not versions:
        kind, _, id = ref.partition(":")
        raise UnknownEntityError(
            f"no entity {ref!r} in the bank: create it first with "
            f"bank.entity({kind!r}, {id!r}, ...)"
        )
    return versions


def _supersedable(tx: Tx, old: str) -> None:
    found = tx.record("learning", old)
    if not isinstance(found, Learning):
        raise UnknownRecordError(
            f"supersedes names no learning {old!r}: pass the id of a learning "
            "bank.learn(...) returned"
        )
    if found.superseded_by is not None:
        raise BankError(
            f"learning {old!r} is superseded already, by {found.superseded_by!r}: "
            "supersede that one instead"
        )
