"""Where the cache lives: one small protocol, and a store per backend."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigurationError
from .base import Store
from .memory import MemoryStore

__all__ = ["MemoryStore", "Store", "open_store"]

ENV_VAR = "MUSCLE_MEM_STORE"
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def open_store(store: Store | str | Path | None, *, secret: str | bytes | None = None) -> Store:
    """A store from an instance, a URL or path, or None.

    None means ``$MUSCLE_MEM_STORE`` if it is set, else memory. URLs: ``memory://``,
    ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (a bare path
    ending in .db, .sqlite or .sqlite3 also means SQLite), ``postgresql://...``.
    """
    if store is None:
        store = os.environ.get(ENV_VAR) or "memory://"
    if isinstance(store, Store):
        if secret is not None:
            store.use_secret(secret)
        return store
    if isinstance(store, Path):
        store = str(store)
    if not isinstance(store, str):
        raise ConfigurationError(
            f"store must be a Store, a URL or a path, got {type(store).__qualname__}"
        )
    if store in ("memory://", "memory:"):
        return MemoryStore()
    if store.startswith("sqlite://"):
        from .sqlite import SQLiteStore

        path = store.removeprefix("sqlite://").removeprefix("/")
        if not path:
            raise ConfigurationError(f"{store!r} names no file: use sqlite:///path/to/cache.db")
        return SQLiteStore(path, secret=secret)
    if store.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(store, secret=secret)
    if "://" not in store and store.endswith(_SQLITE_SUFFIXES):
        from .sqlite import SQLiteStore

        return SQLiteStore(store, secret=secret)
    raise ConfigurationError(
        f"unknown store {store!r}: use 'memory://', 'sqlite:///path/to/cache.db' (or a path "
        "ending in .db), 'postgresql://user@host/db', or a Store instance"
    )
