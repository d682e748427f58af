"""Shared fixtures: a world the tools act on, engines, and stores of each kind.

Tiers. A test runs on every store kind (memory, SQLite, PostgreSQL) only if it asks for
one: for ``store_kind``, or for a fixture built on it (``stores``, ``store_url``,
``engine``, ``engines``). ``store_url`` also points ``$MUSCLE_MEM_STORE`` at the test's
store, so a plain ``Engine()`` made through ``engines`` uses it. A test about some kinds
only says which with ``@kinds("sqlite", "postgres")``, rather than skipping the others.
Every other test (codec, task keys, the API, validation, the demo's world...) runs
once, and with ``$MUSCLE_MEM_STORE`` unset, so an ``Engine()`` there is in memory;
``memory_engine`` is such an engine, for what is settled before any store is read.

``tests/unit/`` holds tests named after the module they cover; they need no store.

PostgreSQL tests need a server: set ``MUSCLE_MEM_TEST_POSTGRES`` to a URL (each test
gets a schema of its own there). Without it they skip; with
``MUSCLE_MEM_REQUIRE_POSTGRES=1`` (CI) a missing or unreachable server fails them instead.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import pytest

from muscle_mem import Engine, MemoryStore
from muscle_mem.store import ENV_VAR, Store, open_store
from muscle_mem.store.postgres import PostgresStore
from muscle_mem.store.sqlite import SQLiteStore

STORE_KINDS = ("memory", "sqlite", "postgres")
POSTGRES_URL = os.environ.get("MUSCLE_MEM_TEST_POSTGRES")
_schemas = itertools.count()


def kinds(*names: str) -> pytest.MarkDecorator:
    """Run a test that asks for a store kind on these kinds only."""
    assert set(names) <= set(STORE_KINDS), names
    return pytest.mark.parametrize("store_kind", names, indirect=True)


class World:
    """A tiny environment: named values the tools read and change, and a call log."""

    def __init__(self, **state: object) -> None:
        self.state = dict(state)
        self.calls: list[tuple] = []


@pytest.fixture(autouse=True)
def _no_store_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    # A test that asks for no store kind must not pick one up from the developer's shell.
    monkeypatch.delenv(ENV_VAR, raising=False)
    # Nor a width: the command fits its tables to $COLUMNS, which pytest-xdist's workers
    # set (to 80) and a plain run does not; a test that wants a width sets it.
    monkeypatch.delenv("COLUMNS", raising=False)


class _Admin:
    """The test server's admin connection. It reconnects once if the server dropped it:
    another run of this suite on the same server may terminate every other backend."""

    def __init__(self, psycopg: Any) -> None:
        self._psycopg = psycopg
        self._connection = self._connect()

    def _connect(self) -> Any:
        return self._psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)

    def execute(self, sql: str) -> Any:
        try:
            return self._connection.execute(sql)
        except self._psycopg.OperationalError:
            self._connection.close()
            self._connection = self._connect()
            return self._connection.execute(sql)

    def close(self) -> None:
        self._connection.close()


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[_Admin]:
    """A connection to the test server, or a skip that says how to get one."""
    if not POSTGRES_URL:
        if os.environ.get("MUSCLE_MEM_REQUIRE_POSTGRES"):
            pytest.fail("MUSCLE_MEM_REQUIRE_POSTGRES is set but MUSCLE_MEM_TEST_POSTGRES is not")
        pytest.skip("PostgreSQL tests need MUSCLE_MEM_TEST_POSTGRES=postgresql://... (a server)")
    psycopg = pytest.importorskip("psycopg", reason="pip install 'muscle-mem[postgres]'")
    try:
        connection = _Admin(psycopg)
    except psycopg.Error as error:
        if os.environ.get("MUSCLE_MEM_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"no PostgreSQL server at MUSCLE_MEM_TEST_POSTGRES: {error}")
    yield connection
    connection.close()


class Stores:
    """Makes fresh, empty stores of one kind and closes them all at the end."""

    def __init__(self, kind: str, tmp_path: object, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self._tmp_path = tmp_path
        self._request = request
        self._count = itertools.count()
        self._opened: list[Store] = []
        self._schemas: list[str] = []

    def url(self) -> str:
        """The URL of a new, empty store."""
        if self.kind == "memory":
            return "memory://"
        if self.kind == "sqlite":
            return f"sqlite:///{self._tmp_path}/cache{next(self._count)}.db"
        admin = self._request.getfixturevalue("postgres_admin")
        schema = f"mm_test_{os.getpid()}_{next(_schemas)}"
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.execute(f"CREATE SCHEMA {schema}")
        self._schemas.append(schema)
        separator = "&" if "?" in POSTGRES_URL else "?"
        return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"

    def open(self, url: str, **options: object) -> Store:
        """A store on ``url`` (``options``: a store class's own, like snapshot_cap)."""
        if not options:
            return self.track(url)
        if self.kind == "memory":
            store = MemoryStore(**options)  # type: ignore[arg-type]
        elif self.kind == "sqlite":
            store = SQLiteStore(url.removeprefix("sqlite:///"), **options)  # type: ignore[arg-type]
        else:
            store = PostgresStore(url, **options)  # type: ignore[arg-type]
        self._opened.append(store)
        return store

    def track(self, url: str, **options: object) -> Store:
        """``open_store(url, **options)`` (``secret``...), closed at the end."""
        store = open_store(url, **options)  # type: ignore[arg-type]
        self._opened.append(store)
        return store

    def fresh(self, **options: object) -> Store:
        return self.open(self.url(), **options)

    def close(self) -> None:
        for store in self._opened:
            store.close()
        if self._schemas:
            admin = self._request.getfixturevalue("postgres_admin")
            for schema in self._schemas:
                admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


class Engines:
    """Makes engines (``Engine(**options)``) and closes them all at the end: an engine
    closes the store it opened itself, from a URL, a path or ``$MUSCLE_MEM_STORE``."""

    def __init__(self) -> None:
        self._made: list[Engine] = []

    def __call__(self, **options: object) -> Engine:
        engine = Engine(**options)  # type: ignore[arg-type]
        self._made.append(engine)
        return engine

    def close(self) -> None:
        for engine in self._made:
            engine.close()


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        request.getfixturevalue("postgres_admin")  # no server: skip (or fail) here, first
    return request.param


@pytest.fixture
def stores(store_kind: str, tmp_path: object, request: pytest.FixtureRequest) -> Iterator[Stores]:
    made = Stores(store_kind, tmp_path, request)
    yield made
    made.close()


@pytest.fixture
def store_url(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL of this test's store, also in ``$MUSCLE_MEM_STORE`` for ``Engine()``."""
    url = stores.url()
    monkeypatch.setenv(ENV_VAR, url)
    return url


@pytest.fixture
def engines(store_url: str) -> Iterator[Engines]:
    """``engines(**options)``: an engine on this test's store unless ``options`` name
    another; closed at the end of the test."""
    made = Engines()
    yield made
    made.close()


@pytest.fixture
def world() -> World:
    return World(page="v1")


@pytest.fixture
def engine(store_url: str, stores: Stores) -> Engine:
    """An engine on this test's store (of each kind)."""
    return Engine(store=stores.open(store_url))


@pytest.fixture
def memory_engine() -> Engine:
    """An engine in memory, for what is settled before any store is read (task keys, the
    arguments a run is refused for): a test using it runs once."""
    return Engine(store=MemoryStore())
