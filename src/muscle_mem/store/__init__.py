"""Where the cache lives: one small protocol, and a store per backend."""

from .base import Store
from .memory import MemoryStore

__all__ = ["MemoryStore", "Store", "open_store"]


def open_store(store: Store | str | None) -> Store:
    """A store from an instance, a URL, or None (in memory)."""
    if store is None:
        return MemoryStore()
    if isinstance(store, Store):
        return store
    if isinstance(store, str):
        if store in ("memory://", "memory:"):
            return MemoryStore()
        from ..errors import ConfigurationError

        raise ConfigurationError(
            f"unknown store URL {store!r}: this version knows only 'memory://' "
            "(or pass a Store instance)"
        )
    raise TypeError(f"store must be a Store, a URL string or None, got {type(store).__qualname__}")
