"""The SQLite store: the embedded, persistent default (stdlib ``sqlite3``).

Several processes can share one file. WAL lets readers go on while one process writes;
each run is one ``BEGIN IMMEDIATE`` transaction, which takes the write lock up front
(a deferred transaction that later upgrades can fail with "database is locked" however
long the busy timeout), and a busy timeout makes writers wait their turn instead of
failing. ``synchronous=NORMAL`` keeps WAL commits free of fsync: a power cut can lose
the last runs, never corrupt the file, which is the right trade for a cache.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StoreError
from ..trie import DEFAULT_SNAPSHOT_CAP
from .base import Cursor
from .sql import SQLStore

T = TypeVar("T")

BUSY_TIMEOUT_S = 30.0


class SQLiteStore(SQLStore):
    """A cache in one SQLite file, created (with its folder) if it doesn't exist."""

    dialect = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        snapshot_cap: int = DEFAULT_SNAPSHOT_CAP,
        secret: str | bytes | None = None,
    ) -> None:
        self.path = Path(path)
        super().__init__(f"sqlite:///{self.path}", snapshot_cap, secret)
        self._local = threading.local()
        self._connections: list[tuple[int, sqlite3.Connection]] = []  # pid that opened it
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(f"cannot create the folder for {self.url}: {error}") from None
        self._open_schema()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def _cursor(self) -> Any:
        # One connection per thread, as sqlite3 requires, and per process: a child of
        # fork() that used its parent's could corrupt the file (sqlite.org/howtocorrupt
        # §2.6), so a thread whose connection another process opened gets its own. One
        # cursor per connection, reused: a cursor a call leaves as garbage is a reference
        # cycle, freed only when the collector gets to it, so memory would creep up.
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.cursor = self._connect().cursor()
            local.pid = os.getpid()
        return local.cursor

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as error:
            raise StoreError(f"cannot open {self.url}: {error}") from None
        with self._lock:
            self._connections.append((os.getpid(), connection))
        return connection

    def _read(self, work: Callable[[Cursor], T]) -> T:
        try:
            return work(self._cursor())
        except sqlite3.DatabaseError as error:
            raise StoreError(f"cannot read {self.url}: {error}") from None

    def _write(self, work: Callable[[Cursor], T]) -> T:
        cursor = self._cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as error:
            raise StoreError(f"cannot write to {self.url}: {error}") from None
        try:
            result = work(cursor)
        except BaseException as error:
            cursor.execute("ROLLBACK")
            if isinstance(error, sqlite3.DatabaseError):
                raise StoreError(f"cannot write to {self.url}: {error}") from None
            raise
        cursor.execute("COMMIT")
        return result

    def close(self) -> None:
        # Only this process's connections: those a child of fork() inherited are still
        # its parent's, in use there, and the child leaves them alone.
        pid = os.getpid()
        with self._lock:
            mine = [connection for opened_by, connection in self._connections if opened_by == pid]
            self._connections = [entry for entry in self._connections if entry[0] != pid]
        for connection in mine:
            connection.close()
        self._local = threading.local()
