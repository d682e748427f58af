"""The PostgreSQL store: one cache shared by a fleet of workers (psycopg 3 with a pool).

Install with ``pip install 'muscle-mem[postgres]'``. Each worker keeps the trees it has
read and re-reads a task key's tree only when another worker changed it (see
:mod:`.sql`), so a path recorded by one worker is replayed by the others on their next
run. A connection dropped under a worker (a server restart, a proxy timeout) is
replaced and the operation retried once. A write retried so may have been committed
the first time, its acknowledgement lost with the connection; it changes nothing
twice. A run's log line carries a uid its writer chose (``mm_runs.uid``), written first
in the run's transaction: a retry that finds it there writes nothing (see
``SQLStore._log``), and a batch written behind counts its hits only with the log lines it
inserts. Everything else is an upsert or a delete by key, or moves a time forward to
the latest. Only what :meth:`remove` and :meth:`merge` report may come out short after
such a retry (what the first attempt did is not counted again).

While the server is down, an operation fails with a :class:`StoreError` after
``timeout`` seconds (``?connect_timeout=N`` in the URL sets it too), with nothing
written: a run either commits whole or not at all. The pool's background reconnection
gives up after the same time, so once the server is back the next operation connects
at once, instead of waiting out a reconnection delay that doubles through the outage.
A server that stops answering without closing its connections (stopped with SIGSTOP,
or cut off by the network) is bounded by the same ``timeout``, each statement's wait
ended by the client (see :mod:`.deadline`): a :class:`StoreError` saying there was no
answer, after which a write may or may not have been committed, and is either whole or
absent. The bookkeeping written behind then stays pending, and is written, once, when
the server answers again.

A hit waits for one round trip: the read of its task's generation, which says the tree
is current. Its bookkeeping (hit and failure counts, last-use times, the snapshots'
LRU order, the run log line) is written behind (see :mod:`.behind`): a thread writes
what the worker's runs left pending in one statement, within half a second. A run
that records a path (a miss, a handoff) is committed before it returns, after what
was pending, so the run log keeps each worker's order. What a crash can lose: see
:class:`PostgresStore`.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

from ..errors import ConfigurationError, StoreError
from ..models import Changes, RunRecord, TaskInfo
from ..trie import DEFAULT_SNAPSHOT_CAP, Tree
from .base import Cursor
from .behind import Behind
from .deadline import Deadlines, Watch
from .sql import _RUN_COLUMNS, SQLStore, _moved, _run_row, new_uid

T = TypeVar("T")

TIMEOUT_S = 10.0  # how long an operation waits for an unreachable server, by default


@dataclass(frozen=True)
class _Use:
    """One run's bookkeeping, kept until it is written: the nodes it ran and those that
    failed, the snapshots that move up their LRU order, its log line, and when. Not its
    change set, whose captures may be large."""

    executed: tuple[str, ...]
    failed: tuple[str, ...]
    moved: list[tuple[str, str, bytes]]
    run: RunRecord
    uid: bytes  # its log line's (see SQLStore._log)
    at: float


# The bookkeeping of any number of runs as one statement: one round trip and, outside a
# transaction block, one transaction. The task rows are all locked first, in key order
# (the count reads the whole CTE before any other part scans a row), as every other
# writer takes its task's row first (see :mod:`.sql`): writers never deadlock. One
# shape whatever the batch (arrays and a JSON array, not lists of marks), so psycopg
# prepares it once per connection. Times only move forward: a batch from a slower
# worker may come late. Written again after its acknowledgement was lost, a batch
# (retried whole: see behind.py) logs and counts nothing twice: its log lines are there
# under their uids, so none is inserted, and without one the counts are left alone;
# the rest sets times to the latest, which is the same done twice.
_WRITE_USES = f"""
WITH task AS (
    INSERT INTO mm_tasks (task_key, tags, generation, created_at, last_used)
    SELECT key, tags, 0, at, at FROM unnest(?::text[], ?::text[], ?::float8[]) AS t (key, tags, at)
    ON CONFLICT (task_key) DO UPDATE
    SET last_used = GREATEST(mm_tasks.last_used, excluded.last_used)
    RETURNING 1
), used AS (
    UPDATE mm_snapshots s SET used = GREATEST(s.used, m.at)
    FROM unnest(?::text[], ?::text[], ?::bytea[], ?::float8[]) AS m (node, which, digest, at)
    WHERE s.node = ANY(?::text[]) AND s.node = m.node AND s.which = m.which
    AND s.digest = m.digest AND (SELECT count(*) FROM task) > 0
), logged AS (
    INSERT INTO mm_runs ({_RUN_COLUMNS}, uid)
    SELECT r->>0, r->>1, r->>2, r->>3, (r->>4)::int4, (r->>5)::int4, (r->>6)::int4, r->>7,
        (r->>8)::float8, (r->>9)::float8, (r->>10)::int8, (r->>11)::float8, r->>12, r->>13,
        decode(r->>14, 'hex')
    FROM json_array_elements(?::json) WITH ORDINALITY AS runs (r, n) ORDER BY n
    ON CONFLICT (uid) DO NOTHING
    RETURNING 1
), counted AS (
    UPDATE mm_nodes n SET hits = n.hits + c.hits, failures = n.failures + c.failures,
    last_used = GREATEST(n.last_used, c.at)
    FROM unnest(?::text[], ?::int8[], ?::int8[], ?::float8[]) AS c (id, hits, failures, at)
    WHERE n.id = ANY(?::text[]) AND n.id = c.id AND (SELECT count(*) FROM task) > 0
    AND EXISTS (SELECT FROM logged)
)
SELECT count(*) FROM task
"""


def _batch(uses: Sequence[_Use]) -> tuple[Any, ...]:
    """The parameters of :data:`_WRITE_USES` for ``uses``, oldest first: one row per
    task, snapshot and node, so no statement updates a row twice, and the log lines as
    one JSON array (a tenth of the client's work of fourteen arrays, for the writer
    thread shares the interpreter with the runs)."""
    # Each keeps the latest use's time: uses come in the order their runs committed.
    tasks: dict[str, tuple[tuple[str, ...], float]] = {}  # key: (tags, last used)
    snapshots: dict[tuple[str, str, bytes], float] = {}
    hits: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    used: dict[str, float] = {}
    for use in uses:
        key = use.run.task_key
        known = tasks.get(key)
        tasks[key] = (use.run.tags if known is None else known[0], use.at)
        if use.moved:
            snapshots.update(dict.fromkeys(use.moved, use.at))
        if use.executed:
            hits.update(use.executed)
            used.update(dict.fromkeys(use.executed, use.at))
        if use.failed:
            failures.update(use.failed)
    keys = sorted(tasks)
    snapshot_keys = list(snapshots)
    node_ids = list(hits.keys() | failures.keys())
    names: dict[tuple[str, ...], str] = {}  # tags and params repeat: each encoded once

    def encode(values: tuple[str, ...]) -> str:
        text = names.get(values)
        if text is None:
            text = names[values] = json.dumps(list(values))
        return text

    log = [(*_run_row(use.run, encode), use.uid.hex()) for use in uses]
    if not all(math.isfinite(row[_COST]) for row in log):
        # JSON has no NaN or infinity; as strings they are float8's own spellings.
        log = [(*row[:_COST], _float8(row[_COST]), *row[_COST + 1 :]) for row in log]
    return (
        keys,
        [json.dumps(list(tasks[key][0])) for key in keys],
        [tasks[key][1] for key in keys],
        [node for node, _, _ in snapshot_keys],
        [which for _, which, _ in snapshot_keys],
        [digest for _, _, digest in snapshot_keys],
        list(snapshots.values()),
        [node for node, _, _ in snapshot_keys],
        json.dumps(log),
        node_ids,
        [hits[nid] for nid in node_ids],
        [failures[nid] for nid in node_ids],
        [used.get(nid, 0.0) for nid in node_ids],  # 0.0: only failed, so not used
        node_ids,
    )


_COST = 11  # the cost's place in a run's row (see _RUN_COLUMNS)


def _float8(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


class PostgresStore(SQLStore):
    """A cache in a PostgreSQL database; its tables are named ``mm_*``.

    ``timeout`` is how long an operation waits for the server (to connect, for a
    connection of the pool, for each statement's answer) before it fails with a
    :class:`StoreError`; by default the URL's ``connect_timeout``, else 10 seconds.

    What a crash can lose: the bookkeeping of the runs that recorded nothing (hits, and
    runs that stopped without recording: their counts, last-use times, LRU order and run
    log lines) that a worker made in the last half second (``behind.FLUSH_EVERY_S``,
    10,000 runs at most) before it died without exiting normally: killed (SIGKILL, the
    OOM killer), ``os._exit()``, a power cut. Never a recorded path: a miss or a handoff
    is committed before ``engine(...)`` returns, and so is what the worker had pending
    before it. :meth:`close` and a normal exit write what is pending, and so does every
    :meth:`runs` and :meth:`tasks` (of any store object of the process on this
    database) before it reads. Nothing the server has acknowledged is lost when the
    server crashes. Other workers see a worker's hits counted within that half second.
    """

    dialect = "postgresql"
    no_limit = "LIMIT ALL"

    def __init__(
        self,
        url: str,
        *,
        snapshot_cap: int = DEFAULT_SNAPSHOT_CAP,
        secret: str | bytes | None = None,
        max_connections: int = 4,
        timeout: float | None = None,
    ) -> None:
        try:
            import psycopg
            import psycopg_pool
        except ImportError:
            raise ConfigurationError(
                "PostgreSQL stores need psycopg: pip install 'muscle-mem[postgres]'"
            ) from None
        super().__init__(redact(url), snapshot_cap, secret)
        self._psycopg = psycopg
        self.timeout = _timeout(url) if timeout is None else float(timeout)
        if not self.timeout > 0:
            raise ConfigurationError(f"timeout must be a number of seconds above 0, got {timeout}")
        # libpq counts whole seconds, and reads 0 as "wait forever".
        connect_timeout = max(1, round(self.timeout))
        # One direct attempt first: its error says why (refused, no such database,
        # bad password), where a pool would only say that it timed out.
        try:
            psycopg.connect(url, connect_timeout=connect_timeout).close()
        except psycopg.Error as error:
            raise StoreError(f"cannot connect to {self.url}: {_message(error, url)}") from None
        self._deadlines = Deadlines(self.timeout)
        self._pool = _pool_class(psycopg_pool, self._deadlines)(
            url,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True, "connect_timeout": connect_timeout},
            open=True,
            # A caller waits this long for a connection, then fails (see _retrying).
            timeout=self.timeout,
            # The pool retries a lost connection in the background with a delay that
            # doubles each time: after an outage of a minute, the server would be back
            # half a minute before the pool tried again. Giving up after `timeout`
            # leaves reconnecting to the next caller, which tries at once.
            reconnect_timeout=self.timeout,
        )
        self._raw_url = url
        self._pool_timeout = psycopg_pool.PoolTimeout
        try:
            self._open_schema()
        except BaseException:
            self._pool.close()
            raise
        self._behind: Behind[_Use] = Behind(self._write_uses, self.url)

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    def _read(self, work: Callable[[Cursor], T]) -> T:
        return self._retrying(work, write=False)

    def _write(self, work: Callable[[Cursor], T]) -> T:
        return self._retrying(work, write=True)

    def _retrying(self, work: Callable[[Cursor], T], *, write: bool) -> T:
        psycopg = self._psycopg
        deadlines = self._deadlines
        for attempt in (1, 2):
            watch = None
            try:
                with self._pool.connection() as connection:
                    watch = deadlines.watch(connection)
                    try:
                        with connection.cursor() as raw:
                            cursor: Any = _Cursor(raw, watch, deadlines)
                            if not write:
                                return work(cursor)
                            with connection.transaction():
                                result = work(cursor)
                                deadlines.renew(watch)  # and as long for the COMMIT
                            return result
                    finally:
                        if deadlines.done(watch):
                            connection.close()  # its socket is shut: the pool replaces it
            except self._pool_timeout:
                # No connection in `timeout` seconds: the server is down or unreachable.
                # Another wait would only double the time a run takes to fail.
                raise StoreError(
                    f"cannot reach {self.url} (no connection in {self.timeout:g} s): the "
                    "server is down or unreachable; nothing was written"
                ) from None
            except psycopg.OperationalError as error:
                if watch is not None and watch.expired:
                    # Trying again would wait as long again, on a server that is not
                    # answering: the caller hears of it now.
                    raise StoreError(
                        f"no answer from {self.url} in {self.timeout:g} s: the server, or "
                        "the network to it, stopped answering"
                        + ("; what this wrote may or may not be committed" if write else "")
                    ) from None
                # What broke one connection (a server restart) broke the idle ones too:
                # have the pool test them all, then try once more (a write too: see the
                # module docstring). A second failure: the server is unreachable.
                self._pool.check_until = time.monotonic() + self.timeout
                self._pool.check()
                if attempt == 2:
                    raise StoreError(
                        f"lost the connection to {self.url}: {_message(error, self._raw_url)}"
                    ) from None
            except psycopg.Error as error:
                raise StoreError(f"{self.url}: {_message(error, self._raw_url)}") from None
        raise AssertionError("unreachable")

    # -- the bookkeeping of hits, written behind -----------------------------------------

    def _commit_uses(self, changes: Changes, run: RunRecord, tree: Tree, now: float) -> None:
        # Only what must be read now (the LRU order before this run) is worked out here;
        # the rest waits for the writer.
        self._behind.add(
            _Use(changes.executed, changes.failed, _moved(changes, tree), run, new_uid(), now)
        )

    def _write_uses(self, uses: Sequence[_Use]) -> None:
        # Outside a transaction block the one statement is its own transaction, with no
        # BEGIN and COMMIT to wait for.
        params = _batch(uses)
        self._retrying(lambda cur: cur.execute(_WRITE_USES, params), write=False)

    # What this process wrote behind to this database comes first, whichever store
    # object holds it: a recorded path after the hits before it (the run log keeps the
    # process's order; see _settle), and a read sees the process's own runs.

    def _settle(self) -> None:
        self._behind.settle()

    def runs(self, *, since: float | None = None, about: str | None = None) -> list[RunRecord]:
        self._behind.settle()
        return super().runs(since=since, about=about)

    def tasks(self) -> list[TaskInfo]:
        self._behind.settle()
        return super().tasks()

    def remove(self, task_key: str, nodes: Collection[str] | None = None) -> int:
        self._behind.settle()
        return super().remove(task_key, nodes)

    def merge(self, tree: Tree, tags: tuple[str, ...], text: str | None = None) -> tuple[int, int]:
        self._behind.settle()
        return super().merge(tree, tags, text)

    def close(self) -> None:
        self._behind.close()
        self._pool.close()


def _pool_class(psycopg_pool: Any, deadlines: Deadlines) -> Any:
    """A pool whose :meth:`check` waits no longer than until its ``check_until`` for
    the connections it tests (the pool's own check waits as long as TCP does)."""

    class Pool(psycopg_pool.ConnectionPool):  # type: ignore[misc,unused-ignore]
        check_until = 0.0

        def check_connection(self, connection: Any) -> None:
            watch = deadlines.watch(connection, self.check_until)
            try:
                psycopg_pool.ConnectionPool.check_connection(connection)
            finally:
                deadlines.done(watch)

    return Pool


class _Cursor:
    """A psycopg cursor that takes the ``?`` placeholders the shared SQL is written in,
    and gives its connection the store's timeout for each statement's answer."""

    # Shared: the statements are ours, one per shape (a hit's updates have one per
    # path length), so this stays small.
    _converted: ClassVar[dict[str, str]] = {}

    def __init__(self, cursor: Any, watch: Watch, deadlines: Deadlines) -> None:
        self._cursor = cursor
        self._watch = watch
        self._deadlines = deadlines

    def _sql(self, sql: str) -> str:
        converted = self._converted.get(sql)
        if converted is None:
            converted = self._converted[sql] = sql.replace("?", "%s")
        return converted

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self._deadlines.renew(self._watch)
        return self._cursor.execute(self._sql(sql), params)

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any:
        self._deadlines.renew(self._watch)
        return self._cursor.executemany(self._sql(sql), params)

    def fetchall(self) -> list[Any]:
        return [tuple(row) for row in self._cursor.fetchall()]

    def fetchone(self) -> Any:
        return self._cursor.fetchone()


def _timeout(url: str) -> float:
    """The URL's ``connect_timeout`` (libpq's own option, in seconds), else the default."""
    given = parse_qs(urlsplit(url).query).get("connect_timeout")
    try:
        seconds = float(given[-1]) if given else TIMEOUT_S
    except ValueError:
        return TIMEOUT_S  # libpq says what is wrong with it when it connects
    return seconds if seconds > 0 else TIMEOUT_S


def redact(url: str) -> str:
    """``url`` without its password, fit for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def _message(error: Exception, url: str) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text
