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
from . import schema
from .base import Cursor
from .sql import SQLStore

T = TypeVar("T")

BUSY_TIMEOUT_S = 30.0


class SQLiteStore(SQLStore):
    """A cache in one SQLite file, created (with its folder) if it doesn't exist.

    ``read_only=True`` opens an existing file for reading only (SQLite's ``mode=ro``):
    it needs no write access, creates nothing and refuses every write.
    """

    dialect = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        snapshot_cap: int = DEFAULT_SNAPSHOT_CAP,
        secret: str | bytes | None = None,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path).expanduser()
        self.read_only = read_only
        super().__init__(f"sqlite:///{self.path}", snapshot_cap, secret)
        self._local = threading.local()
        self._connections: list[tuple[int, sqlite3.Connection]] = []  # pid that opened it
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except PermissionError:
                raise StoreError(
                    f"permission denied: cannot create the folder {self.path.parent} for "
                    f"{self.url}; choose a path you can write to"
                ) from None
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
            if self.read_only:
                connection = self._connect_read_only()
            else:
                connection = sqlite3.connect(
                    self.path,
                    timeout=BUSY_TIMEOUT_S,
                    isolation_level=None,
                    check_same_thread=False,
                )
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as error:
            raise self._failed("open", error) from None
        with self._lock:
            self._connections.append((os.getpid(), connection))
        return connection

    def _connect_read_only(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise StoreError(f"no store at {self.path}: a read-only store is never created")
        uri = self.path.absolute().as_uri()  # percent-encoded: "?" or "#" in a name stay
        connection = sqlite3.connect(
            f"{uri}?mode=ro",
            uri=True,
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return connection
        except sqlite3.OperationalError:
            connection.close()
            if self.path.with_name(self.path.name + "-wal").exists():
                raise  # a writer's log we can't read consistently: say why below
        # A WAL file read without its -shm index needs to create one, which a folder we
        # may not write to forbids. With no -wal file there is no log to read either:
        # the file is all there is, and SQLite can read it as immutable.
        return sqlite3.connect(
            f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None, check_same_thread=False
        )

    def _failed(self, doing: str, error: sqlite3.Error) -> StoreError:
        """A StoreError for ``error``, saying "permission denied" (and the path) when the
        file or its folder is closed to this process: the fix is the file's, not ours."""
        path, folder = self.path, self.path.parent
        denied = path.exists() and not os.access(path, os.R_OK)
        if not denied and doing != "read" and not self.read_only:
            denied = (path.exists() and not os.access(path, os.W_OK)) or not os.access(
                folder, os.W_OK
            )
        if denied:
            return StoreError(
                f"permission denied: cannot {doing} {path} ({error}); check the permissions "
                "of the file and its folder"
            )
        return StoreError(f"cannot {doing} {self.url}: {error}")

    def _read(self, work: Callable[[Cursor], T]) -> T:
        try:
            return work(self._cursor())
        except sqlite3.DatabaseError as error:
            raise self._failed("read", error) from None

    def _write(self, work: Callable[[Cursor], T]) -> T:
        if self.read_only:
            raise StoreError(
                f"cannot write to {self.url}: it was opened read-only; open it without "
                "read_only to change it"
            )
        cursor = self._cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as error:
            raise self._failed("write to", error) from None
        try:
            result = work(cursor)
        except BaseException as error:
            cursor.execute("ROLLBACK")
            if isinstance(error, sqlite3.DatabaseError):
                raise self._failed("write to", error) from None
            raise
        cursor.execute("COMMIT")
        return result

    def _open_schema(self) -> None:
        if not self.read_only:
            super()._open_schema()
            return
        found = self._read(lambda cur: schema.version(cur, what=self.url))
        if found != schema.SCHEMA_VERSION:
            raise StoreError(
                f"{self.url} is at schema version {found}, this muscle-mem reads version "
                f"{schema.SCHEMA_VERSION}, and a store opened read-only is not upgraded: open "
                "it once with write access (Engine(store=...)) to upgrade it"
            )

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
