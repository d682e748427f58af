"""The bank's storage contract: reads and idempotent inserts inside a transaction.

Everything the bank stores is an insert keyed by an id: a new entity version, a
snapshot, an action, its closing, a learning (which names the learning it supersedes),
a decision. Nothing is updated in place but a record's recall document, so importing a
record twice, or two writers racing on one, leaves one copy. Lists are oldest first;
records of one time keep the order they were stored in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from .model import Action, Closing, Decision, Entity, Learning, Record, Snapshot
from .text import Doc

T = TypeVar("T")

Row = Entity | Snapshot | Action | Closing | Learning | Decision


@dataclass(frozen=True)
class Query:
    """A recall: ``scopes`` None means any; ``words`` None means no text filter."""

    scopes: tuple[str, ...] | None
    kind: str | None
    type: str | None
    since: float | None
    words: tuple[str, ...] | None
    include_superseded: bool
    limit: int
    offset: int


class Tx(ABC):
    """One transaction's view of the bank."""

    def lock(self, ref: str) -> None:  # noqa: B027 - most backends write one at a time
        """Keep other writers off the entity ``ref`` until this transaction ends."""

    @abstractmethod
    def versions(self, ref: str) -> list[Entity]:
        """Every version of the entity, oldest first; empty if there is none."""

    @abstractmethod
    def entities(self) -> list[Entity]:
        """The latest version of every entity, in no particular order."""

    @abstractmethod
    def snapshots(self, refs: Sequence[str] | None) -> list[Snapshot]:
        """Snapshots of these entities (None: all), oldest first."""

    @abstractmethod
    def actions(self, refs: Sequence[str] | None) -> list[Action]:
        """Actions on these entities (None: all) with their outcomes, oldest first."""

    @abstractmethod
    def learnings(self, scopes: Sequence[str] | None) -> list[Learning]:
        """Learnings in these scopes (None: all), superseded ones marked, oldest first."""

    @abstractmethod
    def decisions(self, scopes: Sequence[str] | None) -> list[Decision]:
        """Decisions in these scopes (None: all, the unscoped included), oldest first."""

    @abstractmethod
    def record(self, type: str, id: str) -> Record | None:
        """The snapshot, action, learning or decision with that id, or None."""

    @abstractmethod
    def search(self, query: Query) -> list[Doc]:
        """Recall documents matching ``query``, newest first, one page of them."""

    @abstractmethod
    def add(self, row: Row) -> bool:
        """Store ``row`` unless a row with its key is stored already (then a no-op).

        Keys: an entity's ref and version; an action's id for its closing; a learning's
        ``supersedes`` as well as its id (a learning is superseded at most once); else
        the id. Returns whether the row was new.
        """

    @abstractmethod
    def index(self, doc: Doc) -> None:
        """Make ``doc`` the recall document of its record, replacing any earlier one."""


class Backend(ABC):
    """Runs work against the bank's data in one store."""

    @abstractmethod
    def read(self, work: Callable[[Tx], T]) -> T:
        """Run ``work`` outside any write transaction."""

    @abstractmethod
    def write(self, work: Callable[[Tx], T]) -> T:
        """Run ``work`` in one transaction: if it raises, nothing it added is kept."""
