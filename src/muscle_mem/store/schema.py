"""The cache's tables and how any schema kept in a store's database is made and upgraded.

Two packages keep tables in one SQLite file or PostgreSQL database: the cache
(``mm_*``, here) and the memory bank (``mm_bank_*``, in :mod:`muscle_mem.bank.sql`).
Both write their statements once, with ``{real}``, ``{blob}`` and ``{serial}`` where the
dialects' types differ (see :func:`statements`), and both bring their tables up to date
through :func:`upgrade`, each under its own key in the shared ``mm_meta`` table.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import StoreError
from .base import Cursor

SCHEMA_VERSION = 6
END_DIGESTS = 6  # the version from which every recorded end keeps its digest

# The column types that differ between the dialects a store's database may speak.
TYPES: dict[str, dict[str, str]] = {
    "sqlite": {"real": "REAL", "blob": "BLOB", "serial": "INTEGER"},
    "postgresql": {"real": "DOUBLE PRECISION", "blob": "BYTEA", "serial": "BIGSERIAL"},
}

# Statements that bring a store from version N-1 to N, with ``{blob}``... as in SCHEMA
# (see :func:`migrations`). A new store is made at version 1 (SCHEMA) and brought up
# through every migration, so the path an old store takes is the one every new store
# has taken too.
MIGRATIONS: dict[int, list[str]] = {
    # The run log says where each run's trajectory ended and what it was about.
    2: [
        "ALTER TABLE mm_runs ADD COLUMN path TEXT",
        "ALTER TABLE mm_runs ADD COLUMN about TEXT",
        "CREATE INDEX IF NOT EXISTS mm_runs_about ON mm_runs (about, started_at)",
    ],
    # A recorded end keeps the agent's result (templated, encoded) and its own HMAC.
    # Columns of the node rather than a table of their own: read with the tree in the
    # query that reads it anyway, and removed with the node by the same DELETE. The
    # node's signature is left as it was, so rows signed before stay valid. Nullable:
    # ends recorded before version 3 have no result, and their hits return None.
    3: [
        "ALTER TABLE mm_nodes ADD COLUMN result {blob}",
        "ALTER TABLE mm_nodes ADD COLUMN result_sig {blob}",
    ],
    # A recorded end keeps, as snapshots of its own slot (which = 'end'), the values
    # its runs gave the params the path has no place for. No table changes: the version
    # only keeps an older muscle-mem, which would read those rows as a post-check's
    # snapshots, from opening the store.
    4: [],
    # A task key keeps its task's own words (templated: "fill the form for {name}"),
    # NULL for keys recorded before until they record again; a recorded end keeps
    # whether a person approved it, and with a secret that approval's own HMAC: signed
    # apart from the node, so node ids and signatures stay as they were, and a writer
    # without the secret can clear an approval but never forge one.
    5: [
        "ALTER TABLE mm_tasks ADD COLUMN text TEXT",
        "ALTER TABLE mm_nodes ADD COLUMN approved INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE mm_nodes ADD COLUMN approved_sig {blob}",
    ],
    # What a store's own retries and checks need (issue #16). ``end_digest``: a digest
    # of a recorded end's id and result (see :func:`.rows.end_digest`), so that a result
    # or a terminal flag damaged into something else is caught without a secret; ends
    # recorded before are given theirs when a store is upgraded (see
    # ``SQLStore._open_schema``). ``uid``: the id its writer gives each run's log line,
    # so that a write retried after its acknowledgement was lost logs and counts the
    # run once (``ON CONFLICT (uid) DO NOTHING``); lines written before have none.
    6: [
        "ALTER TABLE mm_nodes ADD COLUMN end_digest {blob}",
        "ALTER TABLE mm_runs ADD COLUMN uid {blob}",
        "CREATE UNIQUE INDEX IF NOT EXISTS mm_runs_uid ON mm_runs (uid)",
    ],
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS mm_tasks (
    task_key TEXT PRIMARY KEY,
    tags TEXT NOT NULL,
    generation BIGINT NOT NULL,
    created_at {real} NOT NULL,
    last_used {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS mm_nodes (
    id TEXT PRIMARY KEY,
    task_key TEXT NOT NULL,
    parent TEXT NOT NULL,
    tool TEXT NOT NULL,
    code TEXT NOT NULL,
    call {blob} NOT NULL,
    terminal INTEGER NOT NULL DEFAULT 0,
    hits BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    created_at {real} NOT NULL,
    last_used {real} NOT NULL,
    sig {blob}
);
CREATE INDEX IF NOT EXISTS mm_nodes_task ON mm_nodes (task_key);
CREATE TABLE IF NOT EXISTS mm_snapshots (
    node TEXT NOT NULL,
    which TEXT NOT NULL,
    digest {blob} NOT NULL,
    task_key TEXT NOT NULL,
    data {blob} NOT NULL,
    used {real} NOT NULL,
    sig {blob},
    PRIMARY KEY (node, which, digest)
);
CREATE INDEX IF NOT EXISTS mm_snapshots_task ON mm_snapshots (task_key);
CREATE TABLE IF NOT EXISTS mm_runs (
    id {serial} PRIMARY KEY,
    task_key TEXT NOT NULL,
    tags TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    replayed INTEGER NOT NULL,
    recorded INTEGER NOT NULL,
    diverged_at INTEGER,
    reason TEXT,
    started_at {real} NOT NULL,
    duration_s {real} NOT NULL,
    tokens BIGINT NOT NULL,
    cost {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS mm_runs_task ON mm_runs (task_key, started_at)
"""


def statements(schema: str, dialect: str) -> list[str]:
    """The ``;``-separated statements of ``schema`` with ``dialect``'s column types."""
    return schema.format(**TYPES[dialect]).split(";")


def migrations(dialect: str) -> dict[int, list[str]]:
    """:data:`MIGRATIONS` with ``dialect``'s column types."""
    types = TYPES[dialect]
    return {step: [s.format(**types) for s in steps] for step, steps in MIGRATIONS.items()}


def version(cur: Cursor, key: str = "schema_version", what: str = "the store") -> int | None:
    """The version ``mm_meta`` keeps under ``key``; None if there is none.

    Raises the driver's error when there is no ``mm_meta`` table yet, and a
    :class:`StoreError` naming ``what`` when the version is not a whole number: without
    it, nothing in the store can be read safely.
    """
    cur.execute("SELECT value FROM mm_meta WHERE key = ?", (key,))
    row = cur.fetchone()
    if not row:
        return None
    value = row[0]
    if type(value) is str and value.isascii() and value.isdigit():
        return int(value)
    raise StoreError(
        f"{what} is damaged: its mm_meta table says {key} is {value!r:.40}, not a whole "
        "number, so which tables it holds is unknown; restore it from a backup, or move "
        "it aside and start a new store (`muscle-mem export` may still read its trees)"
    )


def upgrade(
    cur: Cursor,
    dialect: str,
    key: str,
    latest: int,
    first: Sequence[str],
    migrations: dict[int, list[str]],
    what: str,
) -> int:
    """Bring a schema whose version ``mm_meta`` keeps under ``key`` up to ``latest``.

    Run it inside a write transaction. A new schema is made at version 1 by the
    statements ``first``, then every schema runs the migrations past its version, so an
    old store's path is the one every new store has taken too. A newer schema is
    refused, with ``what`` named. Returns the version found (0: new).
    """
    if dialect == "postgresql":
        # Two processes creating one table at once make PostgreSQL fail one of them
        # (IF NOT EXISTS or not). SQLite's write transaction is lock enough.
        cur.execute("SELECT pg_advisory_xact_lock(4834110571)")  # any constant of ours
    cur.execute("CREATE TABLE IF NOT EXISTS mm_meta (key TEXT PRIMARY KEY, value TEXT)")
    found = version(cur, key, what) or 0
    if found > latest:
        raise StoreError(
            f"{what} has schema version {found}, written by a newer muscle-mem; this "
            f"version reads up to {latest}. Upgrade muscle-mem to use it."
        )
    if found == latest:
        return found
    if found == 0:
        for statement in first:
            cur.execute(statement)
    for step in range(max(found, 1) + 1, latest + 1):
        for statement in migrations[step]:
            cur.execute(statement)
    cur.execute(
        "INSERT INTO mm_meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, str(latest)),
    )
    return found
