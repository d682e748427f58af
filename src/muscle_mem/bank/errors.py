"""The errors the memory bank raises, under muscle-mem's one root.

    MuscleMemError
    └── BankError (also ValueError)                  bad input: nothing was stored
        ├── UnknownRecordError (also LookupError)    no action or learning with that id
        │   └── UnknownEntityError                   no entity with that ref
        └── BankImportError                          a JSON document that cannot be imported

A store the bank cannot use (a newer bank schema, say) raises the cache's
:class:`~muscle_mem.errors.StoreError`. Every message says what was wrong and what to do.
"""

from __future__ import annotations

from ..errors import MuscleMemError


class BankError(MuscleMemError, ValueError):
    """Bad input to the memory bank; nothing was stored."""


class UnknownRecordError(BankError, LookupError):
    """An action or learning id the bank has no record of."""


class UnknownEntityError(UnknownRecordError):
    """An entity ref (``"kind:id"``) the bank has no record of."""


class BankImportError(BankError):
    """A JSON document that cannot be imported; ``path`` says where in it, e.g.
    ``campaigns.sim_1.performance_snapshots[0].performance.ctr``."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


__all__ = ["BankError", "BankImportError", "UnknownEntityError", "UnknownRecordError"]
