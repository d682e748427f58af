"""Engine factories: which store stands behind the ``Engine()`` a workload makes.

Workloads call a bare ``Engine()``. This project reads its store from
``$MUSCLE_MEM_STORE`` when none is named, and the original ignores that variable (it
only has memory), so the factory sets the variable before each engine is made. Every
engine gets a store of its own: a new SQLite file, or a freshly created PostgreSQL
schema, so no measurement sees what an earlier one left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

STORE_VAR = "MUSCLE_MEM_STORE"  # read by this project's Engine()
POSTGRES_VAR = "MUSCLE_MEM_BENCH_POSTGRES"
POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
POSTGRES_SCHEMA = "mm_bench"


def postgres_base() -> str:
    return os.environ.get(POSTGRES_VAR, POSTGRES_DEFAULT)


def postgres_unreachable() -> str | None:
    """Why the benchmark's PostgreSQL server can't be used, or None if it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    try:
        psycopg.connect(postgres_base(), connect_timeout=3).close()
    except psycopg.Error as error:
        host = urlsplit(postgres_base()).hostname
        return f"no PostgreSQL server at {host} ({str(error).strip().splitlines()[0]})"
    return None


def fresh_postgres_schema() -> str:
    """Drop and recreate the benchmark's schema; the URL of a store inside it."""
    import psycopg

    base = postgres_base()
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {POSTGRES_SCHEMA} CASCADE")
        admin.execute(f"CREATE SCHEMA {POSTGRES_SCHEMA}")
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{POSTGRES_SCHEMA}"


@contextlib.contextmanager
def engine_factory(store: str) -> Iterator[Callable[[], Any]]:
    """A ``make_engine`` for ``store``: "memory", "sqlite" (a new file per engine),
    "postgres" (the schema recreated per engine) or a ``sqlite:///path`` used as is."""
    from muscle_mem import Engine

    folder = tempfile.mkdtemp(prefix="mm-bench-")
    made = {"count": 0, "last": None}

    def url() -> str:
        if store == "memory":
            return "memory://"
        if store == "sqlite":
            return f"sqlite:///{folder}/store-{made['count']}.db"
        if store == "postgres":
            return fresh_postgres_schema()
        return store

    def close_previous() -> None:
        # The previous engine's connections would otherwise hold the schema we drop.
        close = getattr(getattr(made["last"], "store", None), "close", None)
        if close is not None:
            close()

    def make_engine() -> Any:
        close_previous()
        os.environ[STORE_VAR] = url()
        made["count"] += 1
        made["last"] = Engine()
        return made["last"]

    try:
        yield make_engine
    finally:
        close_previous()
        shutil.rmtree(folder, ignore_errors=True)
