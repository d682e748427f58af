"""The PostgreSQL store: one cache shared by a fleet of workers (psycopg 3 with a pool).

Install with ``pip install 'muscle-mem[postgres]'``. Each worker keeps the trees it has
read and re-reads a task key's tree only when another worker changed it (see
:mod:`.sql`), so a path recorded by one worker is replayed by the others on their next
run. A connection dropped under a worker (a server restart, a proxy timeout) is
replaced and the operation retried once; every write is idempotent, so that is safe.

While the server is down, an operation fails with a :class:`StoreError` after
``timeout`` seconds (``?connect_timeout=N`` in the URL sets it too), with nothing
written: a run either commits whole or not at all. The pool's background reconnection
gives up after the same time, so once the server is back the next operation connects
at once, instead of waiting out a reconnection delay that doubles through the outage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

from ..errors import ConfigurationError, StoreError
from ..trie import DEFAULT_SNAPSHOT_CAP
from .base import Cursor
from .sql import SQLStore

T = TypeVar("T")

TIMEOUT_S = 10.0  # how long an operation waits for an unreachable server, by default


class PostgresStore(SQLStore):
    """A cache in a PostgreSQL database; its tables are named ``mm_*``.

    ``timeout`` is how long an operation waits for the server (to connect, or for a
    connection of the pool) before it fails with a :class:`StoreError`; by default the
    URL's ``connect_timeout``, else 10 seconds.
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
        self._pool = psycopg_pool.ConnectionPool(
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

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    def _read(self, work: Callable[[Cursor], T]) -> T:
        return self._retrying(work, write=False)

    def _write(self, work: Callable[[Cursor], T]) -> T:
        return self._retrying(work, write=True)

    def _retrying(self, work: Callable[[Cursor], T], *, write: bool) -> T:
        psycopg = self._psycopg
        for attempt in (1, 2):
            try:
                with self._pool.connection() as connection, connection.cursor() as raw:
                    cursor: Any = _Cursor(raw)
                    if not write:
                        return work(cursor)
                    with connection.transaction():
                        return work(cursor)
            except self._pool_timeout:
                # No connection in `timeout` seconds: the server is down or unreachable.
                # Another wait would only double the time a run takes to fail.
                raise StoreError(
                    f"cannot reach {self.url} (no connection in {self.timeout:g} s): the "
                    "server is down or unreachable; nothing was written"
                ) from None
            except psycopg.OperationalError as error:
                # What broke one connection (a server restart) broke the idle ones too:
                # have the pool test them all, then try once more. A second failure
                # means the server is really unreachable.
                self._pool.check()
                if attempt == 2:
                    raise StoreError(
                        f"lost the connection to {self.url}: {_message(error, self._raw_url)}"
                    ) from None
            except psycopg.Error as error:
                raise StoreError(f"{self.url}: {_message(error, self._raw_url)}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._pool.close()


class _Cursor:
    """A psycopg cursor that takes the ``?`` placeholders the shared SQL is written in."""

    # Shared: the statements are ours, one per shape (a hit's updates have one per
    # path length), so this stays small.
    _converted: ClassVar[dict[str, str]] = {}

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def _sql(self, sql: str) -> str:
        converted = self._converted.get(sql)
        if converted is None:
            converted = self._converted[sql] = sql.replace("?", "%s")
        return converted

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(self._sql(sql), params)

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any:
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
