"""The SQLite store: the embedded, persistent default (stdlib ``sqlite3``).

Several processes can share one file. WAL lets readers go on while one process writes;
each run is one ``BEGIN IMMEDIATE`` transaction, which takes the write lock up front
(a deferred transaction that later upgrades can fail with "database is locked" however
long the busy timeout), and a busy timeout makes writers wait their turn instead of
failing. ``synchronous=NORMAL`` keeps WAL commits free of fsync: a power cut can lose
the last runs, never corrupt the file, which is the right trade for a cache.

What goes wrong is a :class:`StoreError` naming the store, the ``COMMIT`` included: a
full disk or an I/O error shows there, when the log is written. SQLite takes a file of
0 or 1 bytes for a new database and writes a new one over it; a store that was
truncated so is reported instead, and left as it is.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StoreError
from ..models import RunRecord
from ..trie import DEFAULT_SNAPSHOT_CAP
from . import schema
from .base import Cursor
from .sql import _RUN_COLUMNS, _RUN_MARKS, SQLStore, _run_row

T = TypeVar("T")

BUSY_TIMEOUT_S = 30.0
# How long an opener waits for a file of 0 bytes to become a database: another process
# may have just created it, and writes its header a moment later.
CREATION_GRACE_S = 0.25


# What SQLite raises about the file: its own errors, and its messages when they quote
# a damaged name (sqlite3 decodes them as UTF-8).
_ERRORS = (sqlite3.DatabaseError, UnicodeDecodeError)


def _text(data: bytes) -> str | bytes:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


def _undecodable(error: Exception) -> bool:
    """Whether ``error`` is sqlite3's for a text value that is not UTF-8."""
    return isinstance(error, sqlite3.OperationalError) and "decode to UTF-8" in str(error)


@contextlib.contextmanager
def _raw_text(connection: sqlite3.Connection) -> Iterator[None]:
    """Read text that is not UTF-8 (a flipped byte) as its bytes, for the row checks to
    leave out, where sqlite3 fails the whole read. Only to read again a read that
    failed so: decoding every value in Python would slow every read down."""
    connection.text_factory = _text
    try:
        yield
    finally:
        connection.text_factory = str


# What to do about an error, by SQLite's name for it (Python 3.11+ gives it).
_HINTS = (
    ("SQLITE_FULL", "; free space on its disk: what was committed before is intact"),
    (
        "SQLITE_IOERR",
        "; its disk or file system failed a read or write: what was committed "
        "before is intact unless the disk lost it",
    ),
    (
        "SQLITE_CORRUPT",
        "; the file is damaged: restore it from a backup, or move it aside "
        "and `muscle-mem export` what can still be read",
    ),
    ("SQLITE_NOTADB", "; it is not a SQLite file"),
)


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
        self._opened = False  # a connection has seen the file as a database
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
        self._check_size()
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
        except (sqlite3.Error, UnicodeDecodeError) as error:
            raise self._failed("open", error) from None
        with self._lock:
            self._connections.append((os.getpid(), connection))
        self._opened = True
        return connection

    def _check_size(self) -> None:
        """Refuse a file SQLite would silently make a new database of: one of 0 or 1
        bytes, which no store ever is once created (setting WAL mode writes the header
        at once), or a file removed since this store opened it."""
        deadline = time.monotonic() + (0 if self._opened else CREATION_GRACE_S)
        while True:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                if self._opened:
                    raise StoreError(
                        f"{self.url} was removed while it was open; reopen the store to "
                        "start a new one there"
                    ) from None
                return  # a new store
            except OSError:
                return  # the connection says why
            if size > 1 or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        if size <= 1:
            raise StoreError(
                f"{self.url} is {size} byte{'s' * (size != 1)} long: a store truncated, whose "
                "data is gone (or a file that never was a store). It was left as it is; move "
                "it aside, or delete it, to start a new store there"
            )

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

    def _failed(self, doing: str, error: Exception) -> StoreError:
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
        code = getattr(error, "sqlite_errorname", "")
        hint = next((text for prefix, text in _HINTS if code.startswith(prefix)), "")
        return StoreError(f"cannot {doing} {self.url}: {error}{hint}")

    def _read(self, work: Callable[[Cursor], T]) -> T:
        try:
            cursor = self._cursor()
            try:
                return work(cursor)
            except sqlite3.OperationalError as error:
                if not _undecodable(error):
                    raise
            with _raw_text(cursor.connection):
                return work(cursor)
        except _ERRORS as error:
            raise self._failed("read", error) from None

    def _write(self, work: Callable[[Cursor], T]) -> T:
        if self.read_only:
            raise StoreError(
                f"cannot write to {self.url}: it was opened read-only; open it without "
                "read_only to change it"
            )
        try:
            cursor = self._cursor()
            try:
                return self._transaction(cursor, work)
            except sqlite3.OperationalError as error:
                if not _undecodable(error):
                    raise
            with _raw_text(cursor.connection):
                return self._transaction(cursor, work)
        except _ERRORS as error:
            raise self._failed("write to", error) from None

    def _transaction(self, cursor: Any, work: Callable[[Cursor], T]) -> T:
        cursor.execute("BEGIN IMMEDIATE")
        try:
            result = work(cursor)
            # Inside: COMMIT writes the log, so a full disk or an I/O error shows here.
            cursor.execute("COMMIT")
        except BaseException:
            self._roll_back(cursor)
            raise
        return result

    def _log(self, cur: Cursor, run: RunRecord, uid: bytes) -> bool:
        # A write here commits or fails in this process, and is never retried not
        # knowing which: no line can be there already, and a hit's write is spared
        # the upsert's cost.
        cur.execute(
            f"INSERT INTO mm_runs ({_RUN_COLUMNS}, uid) VALUES ({_RUN_MARKS}, ?)",
            (*_run_row(run), uid),
        )
        return True

    def _roll_back(self, cursor: Any) -> None:
        connection = cursor.connection
        if not connection.in_transaction:
            return  # SQLite rolled back already, as it may on a full disk or I/O error
        try:
            cursor.execute("ROLLBACK")
        except sqlite3.Error:
            # A connection that can't roll back is not used again: this thread opens a
            # fresh one next time, which reads the file as its last commit left it.
            self._local.pid = None
            with self._lock:
                self._connections = [e for e in self._connections if e[1] is not connection]
            connection.close()

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
