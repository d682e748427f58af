"""The bank in an SQLite or PostgreSQL store: tables ``mm_bank_*`` beside the cache's.

The tables are created on a bank's first use of a store, and their version is kept in
the cache's ``mm_meta`` table as ``bank_schema_version``. Records are stored as JSON
text. Recall finds a record when every word of the query is one of its words (see
:mod:`.text`), as the memory store does, and neither store's own idea of a word may
change that. On SQLite, FTS5 with its ``ascii`` tokenizer splits the words at the
spaces between them and nowhere else (``unicode61`` splits or merges some letters).
On PostgreSQL, a ``tsvector`` of the words as they are (no parser: it drops or splits
some) in a GIN index finds the candidates, and ``LIKE`` decides, which also covers the
documents too big for a ``tsvector``. A Python whose SQLite lacks FTS5 falls back to
``LIKE`` over the same words, after a warning.

SQL text never holds a ``?`` or ``%`` but as placeholders: on PostgreSQL every ``?``
becomes ``%s``, and a literal ``%`` would then be read as one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sqlite3
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..errors import ConfigurationError
from ..store.base import Cursor, SQLDatabase
from ..store.schema import statements, upgrade
from .backend import Backend, Query, Row, Tx
from .model import Action, Closing, Decision, Entity, Learning, Record, Snapshot
from .text import Doc

T = TypeVar("T")

BANK_SCHEMA_VERSION = 2

# A document's tsvector: its words as lexemes. One that tsvector cannot hold (a word
# of 2 KB or more, or more than 1 MB in all; 100 KB of words stays well under it) gets
# the lexeme "_", which no word can be, and every search takes it as a candidate.
_LEXEME_BYTES = 2047
_TSV = (
    "CASE WHEN octet_length(words) <= 100000 AND NOT EXISTS (SELECT 1 FROM "
    f"unnest(string_to_array(words, ' ')) AS w WHERE octet_length(w) > {_LEXEME_BYTES}) "
    "THEN array_to_tsvector(string_to_array(words, ' ')) "
    "ELSE array_to_tsvector(ARRAY['_']) END"
)

# Statements that bring the bank's tables from version N-1 to N.
MIGRATIONS: dict[str, dict[int, list[str]]] = {
    # 2: tsvectors of the words as they are, not as PostgreSQL's parser reads them.
    "postgresql": {2: [f"UPDATE mm_bank_docs SET tsv = {_TSV}"]},
    # 2: FTS5's ascii tokenizer; _open_schema remakes the index.
    "sqlite": {2: []},
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mm_bank_entities (
    seq {serial} PRIMARY KEY,
    ref TEXT NOT NULL,
    version INTEGER NOT NULL,
    attributes TEXT NOT NULL,
    updated_at {real} NOT NULL,
    UNIQUE (ref, version)
);
CREATE TABLE IF NOT EXISTS mm_bank_snapshots (
    seq {serial} PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    entity TEXT NOT NULL,
    at {real} NOT NULL,
    metrics TEXT NOT NULL,
    analysis TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mm_bank_snapshots_entity ON mm_bank_snapshots (entity, at);
CREATE TABLE IF NOT EXISTS mm_bank_actions (
    seq {serial} PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    entity TEXT NOT NULL,
    kind TEXT NOT NULL,
    reasoning TEXT NOT NULL,
    expected TEXT NOT NULL,
    at {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS mm_bank_actions_entity ON mm_bank_actions (entity, at);
CREATE TABLE IF NOT EXISTS mm_bank_closings (
    seq {serial} PRIMARY KEY,
    action TEXT NOT NULL UNIQUE,
    actual TEXT NOT NULL,
    at {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS mm_bank_learnings (
    seq {serial} PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    kind TEXT NOT NULL,
    insight TEXT NOT NULL,
    data TEXT NOT NULL,
    at {real} NOT NULL,
    supersedes TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS mm_bank_learnings_scope ON mm_bank_learnings (scope, at);
CREATE TABLE IF NOT EXISTS mm_bank_decisions (
    seq {serial} PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    scope TEXT,
    kind TEXT NOT NULL,
    context TEXT NOT NULL,
    reasoning TEXT NOT NULL,
    at {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS mm_bank_decisions_scope ON mm_bank_decisions (scope, at);
CREATE TABLE IF NOT EXISTS mm_bank_docs (
    seq {serial} PRIMARY KEY,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    scope TEXT,
    kind TEXT,
    at {real} NOT NULL,
    text TEXT NOT NULL,
    words TEXT NOT NULL,
    UNIQUE (type, id)
);
CREATE INDEX IF NOT EXISTS mm_bank_docs_at ON mm_bank_docs (at)
"""

_POSTGRES_SEARCH = """
ALTER TABLE mm_bank_docs ADD COLUMN IF NOT EXISTS tsv tsvector;
CREATE INDEX IF NOT EXISTS mm_bank_docs_tsv ON mm_bank_docs USING GIN (tsv)
"""

_FTS5 = "CREATE VIRTUAL TABLE mm_bank_fts USING fts5(words, tokenize = 'ascii')"

_ACTION = (
    "SELECT a.id, a.entity, a.kind, a.reasoning, a.expected, a.at, c.actual, c.at "
    "FROM mm_bank_actions a LEFT JOIN mm_bank_closings c ON c.action = a.id"
)
_LEARNING = (
    "SELECT l.id, l.scope, l.kind, l.insight, l.data, l.at, l.supersedes, "
    "(SELECT n.id FROM mm_bank_learnings n WHERE n.supersedes = l.id) FROM mm_bank_learnings l"
)
_SNAPSHOT = "SELECT id, entity, at, metrics, analysis FROM mm_bank_snapshots"
_DECISION = "SELECT id, scope, kind, context, reasoning, at FROM mm_bank_decisions"


@functools.cache
def has_fts5() -> bool:
    """Whether this Python's SQLite was built with FTS5."""
    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x)")
    except sqlite3.OperationalError:
        return False
    return True


class SQLBackend(Backend):
    def __init__(self, store: SQLDatabase) -> None:
        if store.dialect not in MIGRATIONS:
            raise ConfigurationError(
                f"a MemoryBank keeps its tables in SQLite or PostgreSQL, and {store!r} "
                f"speaks {store.dialect!r}: open the bank on a sqlite:/// or postgresql:// store"
            )
        self._store = store
        self._postgres = store.dialect == "postgresql"
        self._fts5 = not self._postgres and has_fts5()
        if not self._postgres and not self._fts5:
            _warn_no_fts5()
        store.write(self._open_schema)

    def __repr__(self) -> str:
        search = "tsvector" if self._postgres else "FTS5" if self._fts5 else "LIKE"
        return f"SQLBackend({self._store!r}, search={search})"

    def read(self, work: Callable[[Tx], T]) -> T:
        return self._store.read(lambda cur: work(_SQLTx(cur, self._postgres, self._fts5)))

    def write(self, work: Callable[[Tx], T]) -> T:
        return self._store.write(lambda cur: work(_SQLTx(cur, self._postgres, self._fts5)))

    def _open_schema(self, cur: Cursor) -> None:
        store = self._store
        tables = _SCHEMA + (";" + _POSTGRES_SEARCH if self._postgres else "")
        upgrade(
            cur,
            store.dialect,
            "bank_schema_version",
            BANK_SCHEMA_VERSION,
            statements(tables, store.dialect),
            MIGRATIONS[store.dialect],
            f"the memory bank in {store.url}",
        )
        if self._fts5:
            cur.execute("SELECT sql FROM sqlite_master WHERE name = 'mm_bank_fts'")
            found = cur.fetchone()
            if found is None or found[0] != _FTS5:
                # Also when a Python without FTS5 made the tables, or an older
                # muscle-mem made the index another way: index what is stored.
                if found is not None:
                    cur.execute("DROP TABLE mm_bank_fts")
                cur.execute(_FTS5)
                cur.execute(
                    "INSERT INTO mm_bank_fts (rowid, words) SELECT seq, words FROM mm_bank_docs"
                )


@functools.cache
def _warn_no_fts5() -> None:
    warnings.warn(
        "muscle-mem: this Python's SQLite has no FTS5, so the memory bank's recall scans "
        "with LIKE; use a Python built with FTS5 for indexed full-text search",
        RuntimeWarning,
        stacklevel=4,
    )


class _SQLTx(Tx):
    def __init__(self, cur: Cursor, postgres: bool, fts5: bool) -> None:
        self._cur = cur
        self._postgres = postgres
        self._fts5 = fts5

    def lock(self, ref: str) -> None:
        # SQLite writes one transaction at a time already. PostgreSQL does not: two
        # writers would both read version N and race to insert N + 1.
        if self._postgres:
            key = hashlib.blake2b(f"mm_bank:{ref}".encode(), digest_size=8).digest()
            self._cur.execute(
                "SELECT pg_advisory_xact_lock(?)", (int.from_bytes(key, "big", signed=True),)
            )

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self._cur.execute(sql, params)
        return self._cur.fetchall()

    def versions(self, ref: str) -> list[Entity]:
        rows = self._rows(
            "SELECT ref, version, attributes, updated_at FROM mm_bank_entities "
            "WHERE ref = ? ORDER BY version",
            (ref,),
        )
        return [_entity(row) for row in rows]

    def entities(self) -> list[Entity]:
        rows = self._rows(
            "SELECT e.ref, e.version, e.attributes, e.updated_at FROM mm_bank_entities e "
            "WHERE e.version = (SELECT MAX(m.version) FROM mm_bank_entities m WHERE m.ref = e.ref)"
        )
        return [_entity(row) for row in rows]

    def snapshots(self, refs: Sequence[str] | None) -> list[Snapshot]:
        return [_snapshot(r) for r in self._among(_SNAPSHOT, "entity", refs, "at, seq")]

    def actions(self, refs: Sequence[str] | None) -> list[Action]:
        return [_action(r) for r in self._among(_ACTION, "a.entity", refs, "a.at, a.seq")]

    def learnings(self, scopes: Sequence[str] | None) -> list[Learning]:
        return [_learning(r) for r in self._among(_LEARNING, "l.scope", scopes, "l.at, l.seq")]

    def decisions(self, scopes: Sequence[str] | None) -> list[Decision]:
        return [_decision(r) for r in self._among(_DECISION, "scope", scopes, "at, seq")]

    def _among(
        self, select: str, column: str, values: Sequence[str] | None, order: str
    ) -> list[Any]:
        """The rows of ``select`` whose ``column`` is one of ``values`` (None: any)."""
        if values is None:
            return self._rows(f"{select} ORDER BY {order}")
        if not values:
            return []  # what SQL's ``IN ()`` cannot say
        marks = ", ".join("?" * len(values))
        return self._rows(f"{select} WHERE {column} IN ({marks}) ORDER BY {order}", values)

    def record(self, type: str, id: str) -> Record | None:
        readers: dict[str, tuple[str, Callable[[Any], Record]]] = {
            "snapshot": (f"{_SNAPSHOT} WHERE id = ?", _snapshot),
            "action": (f"{_ACTION} WHERE a.id = ?", _action),
            "learning": (f"{_LEARNING} WHERE l.id = ?", _learning),
            "decision": (f"{_DECISION} WHERE id = ?", _decision),
        }
        found = readers.get(type)
        if found is None:
            return None
        sql, make = found
        rows = self._rows(sql, (id,))
        return make(rows[0]) if rows else None

    def search(self, query: Query) -> list[Doc]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.scopes is not None:
            if not query.scopes:
                return []
            clauses.append(f"d.scope IN ({', '.join('?' * len(query.scopes))})")
            params += query.scopes
        for column, value in (("kind", query.kind), ("type", query.type)):
            if value is not None:
                clauses.append(f"d.{column} = ?")
                params.append(value)
        if query.since is not None:
            clauses.append("d.at >= ?")
            params.append(query.since)
        if query.words is not None:
            if not query.words:
                return []
            if self._postgres:
                # Candidates from the index: the documents with every word, and those
                # too big for a tsvector ("_"); LIKE below decides. Words hold letters
                # and digits only, so each, quoted, is one lexeme.
                short = [w for w in query.words if len(w.encode()) <= _LEXEME_BYTES]
                lexemes = " & ".join(f"'{word}'" for word in short)
                clauses.append("d.tsv @@ ?::tsquery")
                params.append(f"({lexemes}) | '_'" if short else "'_'")
            if self._fts5:
                # Each word quoted: FTS5 reads it as a plain term, never as syntax.
                clauses.append("d.seq IN (SELECT rowid FROM mm_bank_fts WHERE mm_bank_fts MATCH ?)")
                params.append(" ".join(f'"{word}"' for word in query.words))
            else:
                # Words hold no % or _ (letters and digits only) for LIKE to misread.
                for word in query.words:
                    clauses.append("(' ' || d.words || ' ') LIKE ?")
                    params.append(f"% {word} %")
        if not query.include_superseded:
            clauses.append(
                "NOT (d.type = 'learning' AND EXISTS "
                "(SELECT 1 FROM mm_bank_learnings n WHERE n.supersedes = d.id))"
            )
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._rows(
            f"SELECT d.type, d.id, d.scope, d.kind, d.at, d.text FROM mm_bank_docs d{where} "
            "ORDER BY d.at DESC, d.seq DESC LIMIT ? OFFSET ?",
            (*params, query.limit, query.offset),
        )
        return [Doc(*row) for row in rows]

    def add(self, row: Row) -> bool:
        if isinstance(row, Entity):
            sql = (
                "INSERT INTO mm_bank_entities (ref, version, attributes, updated_at) "
                "VALUES (?, ?, ?, ?)"
            )
            params: tuple[Any, ...] = (row.ref, row.version, _json(row.attributes), row.updated_at)
        elif isinstance(row, Snapshot):
            sql = (
                "INSERT INTO mm_bank_snapshots (id, entity, at, metrics, analysis) "
                "VALUES (?, ?, ?, ?, ?)"
            )
            params = (row.id, row.entity, row.at, _json(row.metrics), _json(row.analysis))
        elif isinstance(row, Action):
            sql = (
                "INSERT INTO mm_bank_actions (id, entity, kind, reasoning, expected, at) "
                "VALUES (?, ?, ?, ?, ?, ?)"
            )
            params = (row.id, row.entity, row.kind, row.reasoning, _json(row.expected), row.at)
        elif isinstance(row, Closing):
            sql = "INSERT INTO mm_bank_closings (action, actual, at) VALUES (?, ?, ?)"
            params = (row.action, _json(row.actual), row.at)
        elif isinstance(row, Learning):
            sql = (
                "INSERT INTO mm_bank_learnings (id, scope, kind, insight, data, at, supersedes) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)"
            )
            params = (
                row.id,
                row.scope,
                row.kind,
                row.insight,
                _json(row.data),
                row.at,
                row.supersedes,
            )
        else:
            sql = (
                "INSERT INTO mm_bank_decisions (id, scope, kind, context, reasoning, at) "
                "VALUES (?, ?, ?, ?, ?, ?)"
            )
            params = (row.id, row.scope, row.kind, _json(row.context), row.reasoning, row.at)
        # RETURNING says whether the row went in: nothing comes back on a conflict.
        return bool(self._rows(f"{sql} ON CONFLICT DO NOTHING RETURNING seq", params))

    def index(self, doc: Doc) -> None:
        columns = "type, id, scope, kind, at, text, words"
        values = "?, ?, ?, ?, ?, ?, ?"
        params: list[Any] = [doc.type, doc.id, doc.scope, doc.kind, doc.at, doc.text, doc.words]
        updates = (
            "scope = excluded.scope, kind = excluded.kind, at = excluded.at, "
            "text = excluded.text, words = excluded.words"
        )
        seq = self._rows(
            f"INSERT INTO mm_bank_docs ({columns}) VALUES ({values}) "
            f"ON CONFLICT (type, id) DO UPDATE SET {updates} RETURNING seq",
            params,
        )[0][0]
        if self._postgres:
            self._cur.execute(f"UPDATE mm_bank_docs SET tsv = {_TSV} WHERE seq = ?", (seq,))
        if self._fts5:
            self._cur.execute("DELETE FROM mm_bank_fts WHERE rowid = ?", (seq,))
            self._cur.execute(
                "INSERT INTO mm_bank_fts (rowid, words) VALUES (?, ?)", (seq, doc.words)
            )


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=False, allow_nan=False)


def _entity(row: Sequence[Any]) -> Entity:
    ref, version, attributes, updated_at = row
    kind, _, id = ref.partition(":")
    return Entity(kind, id, json.loads(attributes), version, updated_at)


def _snapshot(row: Sequence[Any]) -> Snapshot:
    id, entity, at, metrics, analysis = row
    return Snapshot(id, entity, at, json.loads(metrics), json.loads(analysis))


def _action(row: Sequence[Any]) -> Action:
    id, entity, kind, reasoning, expected, at, actual, closed_at = row
    return Action(
        id,
        entity,
        kind,
        reasoning,
        json.loads(expected),
        at,
        None if actual is None else json.loads(actual),
        closed_at,
    )


def _learning(row: Sequence[Any]) -> Learning:
    id, scope, kind, insight, data, at, supersedes, superseded_by = row
    return Learning(id, scope, kind, insight, json.loads(data), at, supersedes, superseded_by)


def _decision(row: Sequence[Any]) -> Decision:
    id, scope, kind, context, reasoning, at = row
    return Decision(id, scope, kind, json.loads(context), reasoning, at)
