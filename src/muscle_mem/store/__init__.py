"""Where the cache lives: one small protocol, and a store per backend.

A store of your own implements :class:`Store`: it hands out a :class:`Tree` per task
key and applies, per run, one :class:`Changes` and one :class:`RunRecord`. Everything
such a store needs is importable from here.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigurationError, StoreError
from ..models import Changes, RunRecord, TaskInfo
from ..trie import Tree
from .base import Cursor, SQLDatabase, Store
from .memory import MemoryStore

__all__ = [
    "Changes",
    "Cursor",
    "MemoryStore",
    "RunRecord",
    "SQLDatabase",
    "Store",
    "TaskInfo",
    "Tree",
    "open_store",
]

ENV_VAR = "MUSCLE_MEM_STORE"
DEFAULT_PATH = ".muscle_mem/cache.db"  # the command line's store when none is named
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def open_store(
    store: Store | str | Path | None,
    *,
    secret: str | bytes | None = None,
    read_only: bool = False,
) -> Store:
    """A store from an instance, a URL or path, or None.

    None means ``$MUSCLE_MEM_STORE`` if it is set, else memory. URLs: ``memory://``,
    ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` (a bare path
    ending in .db, .sqlite or .sqlite3 also means SQLite; ``~`` is the home folder),
    ``postgresql://...``. Any of them may end in ``?snapshot_cap=N`` (how many
    environments a step remembers). ``read_only`` opens an existing SQLite file for
    reading only, needing no write access to it (the other stores need none to read).
    """
    if store is None:
        named = os.environ.get(ENV_VAR)
        if named:
            try:
                return open_store(named, secret=secret, read_only=read_only)
            except ConfigurationError as error:
                raise ConfigurationError(f"${ENV_VAR}={named!r} is not a store: {error}") from None
            except StoreError as error:
                raise StoreError(f"{error} (the store ${ENV_VAR} names)") from None
        store = "memory://"
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
    store, options = _our_options(store)
    if store in ("memory://", "memory:"):
        return MemoryStore(**options)
    if store.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(store, secret=secret, **options)
    path = sqlite_path(store)
    if path == "":
        raise ConfigurationError(f"{store!r} names no file: use sqlite:///path/to/cache.db")
    if path is not None:
        from .sqlite import SQLiteStore

        return SQLiteStore(path, secret=secret, read_only=read_only, **options)
    raise ConfigurationError(
        f"unknown store {store!r}: use 'memory://', 'sqlite:///path/to/cache.db' (or a path "
        "ending in .db), 'postgresql://user@host/db', or a Store instance"
    )


def sqlite_path(url: str) -> str | None:
    """The file a SQLite URL or path names, ``~`` expanded ("" if it names none); None if
    it is not one."""
    url = url.partition("?")[0]
    if url.startswith("sqlite://"):
        return os.path.expanduser(url.removeprefix("sqlite://").removeprefix("/"))
    if "://" not in url and url.endswith(_SQLITE_SUFFIXES):
        return os.path.expanduser(url)
    return None


def _our_options(url: str) -> tuple[str, dict[str, int]]:
    """Split muscle-mem's own options off a URL's query; the rest stays (libpq's)."""
    base, _, query = url.partition("?")
    options: dict[str, int] = {}
    kept = []
    for pair in query.split("&") if query else []:
        name, _, value = pair.partition("=")
        if name != "snapshot_cap":
            kept.append(pair)
            continue
        try:
            options[name] = int(value)
        except ValueError:
            raise ConfigurationError(
                f"snapshot_cap in {url!r} must be a whole number, e.g. ?snapshot_cap=50000"
            ) from None
        if options[name] < 1:
            raise ConfigurationError(f"snapshot_cap in {url!r} must be at least 1")
    return (f"{base}?{'&'.join(kept)}" if kept else base), options
