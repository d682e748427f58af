"""The PostgreSQL store: one cache shared by a fleet of workers (psycopg 3 with a pool).

Install with ``pip install 'muscle-mem[postgres]'``. Each worker keeps the trees it has
read and re-reads a task key's tree only when another worker changed it (see
:mod:`.sql`), so a path recorded by one worker is replayed by the others on their next
run. A connection dropped under a worker (a server restart, a proxy timeout) is
replaced and the operation retried once; every write is idempotent, so that is safe.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigurationError, StoreError
from ..trie import DEFAULT_SNAPSHOT_CAP
from .base import Cursor
from .sql import SQLStore

T = TypeVar("T")

CONNECT_TIMEOUT_S = 10


class PostgresStore(SQLStore):
    """A cache in a PostgreSQL database; its tables are named ``mm_*``."""

    dialect = "postgresql"
    no_limit = "LIMIT ALL"

    def __init__(
        self,
        url: str,
        *,
        snapshot_cap: int = DEFAULT_SNAPSHOT_CAP,
        secret: str | bytes | None = None,
        max_connections: int = 4,
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
        # One direct attempt first: its error says why (refused, no such database,
        # bad password), where a pool would only say that it timed out.
        try:
            psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S).close()
        except psycopg.Error as error:
            raise StoreError(f"cannot connect to {self.url}: {_message(error, url)}") from None
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
            open=True,
        )
        self._raw_url = url
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
