"""Shared fixtures: a world the tools act on, an engine around an agent, and the store.

Every test runs once per store kind (memory, SQLite, PostgreSQL): the ``store_url``
fixture points ``$MUSCLE_MEM_STORE`` at a fresh, empty store, so even a plain
``Engine()`` in a test uses it. A module that has nothing to do with stores sets
``ONE_STORE = True`` and runs once, in memory.

PostgreSQL tests need a server: set ``MUSCLE_MEM_TEST_POSTGRES`` to a URL (each test
gets a schema of its own there). Without it they skip; with
``MUSCLE_MEM_REQUIRE_POSTGRES=1`` (CI) an unreachable server fails them instead.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from muscle_mem import Engine, MemoryStore
from muscle_mem import engine as engine_module
from muscle_mem.store import ENV_VAR, Store, open_store
from muscle_mem.store.postgres import PostgresStore
from muscle_mem.store.sqlite import SQLiteStore

STORE_KINDS = ("memory", "sqlite", "postgres")
POSTGRES_URL = os.environ.get("MUSCLE_MEM_TEST_POSTGRES")
_schemas = itertools.count()


class World:
    """A tiny environment: named values the tools read and change, and a call log."""

    def __init__(self, **state: object) -> None:
        self.state = dict(state)
        self.calls: list[tuple] = []


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_kind" in metafunc.fixturenames and not getattr(metafunc.module, "ONE_STORE", False):
        metafunc.parametrize("store_kind", STORE_KINDS, indirect=True)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[object]:
    """A connection to the test server, or a skip that says how to get one."""
    if not POSTGRES_URL:
        if os.environ.get("MUSCLE_MEM_REQUIRE_POSTGRES"):
            pytest.fail("MUSCLE_MEM_REQUIRE_POSTGRES is set but MUSCLE_MEM_TEST_POSTGRES is not")
        pytest.skip("PostgreSQL tests need MUSCLE_MEM_TEST_POSTGRES=postgresql://... (a server)")
    psycopg = pytest.importorskip("psycopg", reason="pip install 'muscle-mem[postgres]'")
    try:
        connection = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
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
            store: Store = MemoryStore(**options)  # type: ignore[arg-type]
        elif self.kind == "sqlite":
            store = SQLiteStore(url.removeprefix("sqlite:///"), **options)  # type: ignore[arg-type]
        else:
            store = PostgresStore(url, **options)  # type: ignore[arg-type]
        self._opened.append(store)
        return store

    def track(self, store: object, **options: object) -> Store:
        opened = open_store(store, **options)  # type: ignore[arg-type]
        self._opened.append(opened)
        return opened

    def fresh(self, **options: object) -> Store:
        return self.open(self.url(), **options)

    def close(self) -> None:
        for store in self._opened:
            store.close()
        if self._schemas:
            admin = self._request.getfixturevalue("postgres_admin")
            for schema in self._schemas:
                admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def store_kind(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "memory")


@pytest.fixture
def stores(store_kind: str, tmp_path: object, request: pytest.FixtureRequest) -> Iterator[Stores]:
    made = Stores(store_kind, tmp_path, request)
    yield made
    made.close()


@pytest.fixture(autouse=True)
def store_url(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL of this test's store, also in ``$MUSCLE_MEM_STORE`` for ``Engine()``."""
    url = stores.url()
    monkeypatch.setenv(ENV_VAR, url)
    # Engines the tests make themselves open stores too: close those at the end as well.
    monkeypatch.setattr(engine_module, "open_store", stores.track)
    return url


@pytest.fixture
def world() -> World:
    return World(page="v1")


@pytest.fixture
def engine(store_url: str, stores: Stores) -> Engine:
    return Engine(store=stores.open(store_url))
