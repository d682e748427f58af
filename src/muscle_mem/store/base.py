"""The storage protocol every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from ..errors import ConfigurationError
from ..models import Changes, RunRecord, TaskInfo
from ..trie import DEFAULT_SNAPSHOT_CAP, Tree

T = TypeVar("T")


class Cursor(Protocol):
    """The little a store needs from a DB-API cursor, with ``?`` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchone(self) -> Any: ...


@runtime_checkable
class SQLDatabase(Protocol):
    """A store in an SQL database, as code that keeps its own tables there sees it.

    The SQLite and PostgreSQL stores are ones (see :class:`~.sql.SQLStore`). The memory
    bank keeps its ``mm_bank_*`` tables beside the cache's through these four names, so
    one file or database holds both, and a store of another making that offers them
    can hold a bank too.
    """

    #: Where the data is, without a password (see :attr:`Store.url`).
    url: str
    #: The SQL the database speaks: "sqlite" or "postgresql".
    dialect: str

    def read(self, work: Callable[[Cursor], T]) -> T:
        """Run ``work`` with a cursor outside any write transaction; return its result."""
        ...

    def write(self, work: Callable[[Cursor], T]) -> T:
        """Run ``work`` in one write transaction: all of it is committed or none."""
        ...


class Store(ABC):
    """Keeps task keys' trees and the run log.

    A store hands the engine a :class:`Tree` per task key and takes back, per run, one
    :class:`~muscle_mem.models.Changes` and one :class:`RunRecord`. Node ids are content hashes, so
    recording a path that exists already is a no-op and two writers of the same path
    never conflict.

    Other data can live beside the cache's, as the memory bank does: in this process
    when :attr:`in_memory` is true, or in the store's database when the store is an
    :class:`SQLDatabase` (public ``read``, ``write`` and ``dialect``).
    """

    snapshot_cap: int = DEFAULT_SNAPSHOT_CAP
    #: Where the store keeps its data, fit for messages and logs (never a password):
    #: "memory://", "sqlite:///path/to/cache.db", "postgresql://user@host/db".
    url: str
    #: True when everything the store holds lives in this process and goes with the
    #: store object (MemoryStore): data kept beside it may live in memory too.
    in_memory: bool = False

    @abstractmethod
    def tree(self, task_key: str) -> Tree:
        """The task key's tree as last committed; an empty tree if nothing is recorded.

        Reads only that task key. The engine reads the tree while it replays and
        must not change it but through :meth:`commit`.
        """

    @abstractmethod
    def commit(self, changes: Changes, run: RunRecord) -> None:
        """Apply one run's changes to its tree and append ``run`` to the log, atomically.

        :class:`~muscle_mem.models.Changes` says what each part means. Refreshing a
        snapshot that has since been evicted, or counting a hit on a node another
        writer removed, is silently a no-op.

        A store may write what a run that records nothing changes (a hit's counts, LRU
        times and log line) behind, after this returns, if it says what a crash can
        lose and its reads see what it has pending (:class:`~.postgres.PostgresStore`
        does). A recorded path is stored before this returns.
        """

    @abstractmethod
    def runs(self, *, since: float | None = None, about: str | None = None) -> list[RunRecord]:
        """The run log, oldest first: the runs started at ``since`` (epoch seconds) or
        later, and those about the entity ``about`` ("kind:id"), when given."""

    @abstractmethod
    def tasks(self) -> list[TaskInfo]:
        """The task keys that have something cached, most recently used first."""

    def snapshot_times(self, task_key: str) -> dict[tuple[str, str, bytes], float]:
        """When each of the task key's snapshots was last matched (epoch seconds), by
        (node id, slot, encoding), for people looking at the cache (``muscle-mem show``).

        A tree keeps its snapshots in the order they were matched, not the times; a
        store that keeps no times (the memory store: its trees live no longer than the
        process that matched them) returns an empty dict, the default.
        """
        return {}

    @abstractmethod
    def remove(self, task_key: str, nodes: Collection[str] | None = None) -> int:
        """Forget ``nodes`` of the task key's tree (all of them when None), with their
        snapshots; returns how many nodes were removed.

        The caller removes whole subtrees: a node left behind whose parent is gone is
        unreachable. The run log is history and stays.
        """

    def clear(self) -> int:
        """Forget every task key's tree, with its snapshots; returns how many nodes were
        removed. The run log is history and stays.

        The default removes the trees :meth:`tasks` lists, one by one; a store that can
        do it in one statement may override it.
        """
        return sum(self.remove(task.task_key) for task in self.tasks())

    @abstractmethod
    def merge(self, tree: Tree, tags: tuple[str, ...], text: str | None = None) -> tuple[int, int]:
        """Add what ``tree`` holds that this store's tree of that task key lacks, in one
        transaction; returns how many nodes and snapshots were new. ``text`` is the
        task's words (:attr:`TaskInfo.text`), kept if the store has none for the key.

        Idempotent: merging the same tree again adds nothing. Counts take the larger of
        the two, a node that ends a trajectory in either stays an end, and an end
        approved in either stays approved. Nodes already here keep their signatures.
        New snapshots rank below those already here (in their own order), so a full
        node's cap drops them first.
        """

    @abstractmethod
    def approve(
        self, task_key: str, ends: Collection[str] | None = None, approved: bool = True
    ) -> int:
        """Mark the recorded ends ``ends`` (node ids; every end of the task key when None)
        of the task key's tree approved, or not; returns how many changed.

        Replay with ``approved_only`` ends only at approved ends. Approval changes no
        node's id, and a store with a secret signs it apart from the node (so a writer
        without the secret can revoke an approval but never make one). Raises
        :class:`~muscle_mem.errors.ConfigurationError` naming an id that is not a
        recorded end of the task key.
        """

    def use_secret(self, secret: str | bytes | None) -> None:  # noqa: B027 - see below
        """Sign rows written from now on with ``secret`` and ignore rows that fail it.

        Stores whose rows only this process writes (memory) have nothing to verify.
        """

    def close(self) -> None:  # noqa: B027 - a store without resources needs no override
        """Release connections and files; the default has none."""


def to_approve(
    task_key: str, ends: Mapping[str, bool], chosen: Collection[str] | None, approved: bool
) -> list[str]:
    """The ends among ``chosen`` (all when None) whose approval changes to ``approved``,
    given the task key's recorded ``ends`` (id -> approved now); for :meth:`Store.approve`."""
    if chosen is None:
        chosen = list(ends)
    elif isinstance(chosen, str):
        raise ConfigurationError(f"ends= takes a collection of node ids, e.g. [{chosen!r}]")
    for nid in chosen:
        if nid not in ends:
            raise ConfigurationError(
                f"{nid!r} is not a recorded end of task {task_key}; `muscle-mem show` "
                "lists its paths and where each ends"
            )
    return sorted({nid for nid in chosen if ends[nid] != approved})
