"""Every error and warning muscle-mem raises or emits on purpose, all exported.

    MuscleMemError
    ├── ConfigurationError (also ValueError)   the library is used wrongly: fix the call
    ├── EncodeError (also TypeError)           a value cannot be stored as data
    ├── DecodeError (also ValueError)          stored bytes cannot be read in this process
    ├── DivergenceError                        replay stopped and on_divergence="raise"
    ├── ReplayMissError                        mode="replay" and replay did not finish the task
    ├── StoreError                             a store can't be opened, read or written
    ├── ExportFormatError (also ValueError)    an import file that is not a muscle-mem export
    └── BankError (also ValueError)            bad input to the memory bank: nothing stored
        ├── UnknownRecordError (also LookupError)  no action or learning with that id
        │   └── UnknownEntityError                 no entity with that ref
        └── BankImportError                        a bank JSON document that can't be imported

    MuscleMemWarning (a UserWarning)
    ├── IntegrityWarning                       a stored row failed its signature: ignored
    │   └── DamagedRowWarning                  a stored row is malformed, or not what its id
    │                                          hashes: ignored
    └── UnrecordedCallWarning                  a tool call no run can claim: not recorded

Errors are also the built-in ``TypeError``/``ValueError``/``LookupError`` they resemble,
so code that already catches those keeps working. Every message says what happened and
how to fix it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Handoff


class MuscleMemError(Exception):
    """Root of every error raised by muscle-mem."""


class ConfigurationError(MuscleMemError, ValueError):
    """The engine, a tool, a check or a store is configured or called wrongly."""


class EncodeError(MuscleMemError, TypeError):
    """A value cannot be encoded as data (arguments, snapshots and results must be)."""


class DecodeError(MuscleMemError, ValueError):
    """Stored bytes that cannot be turned back into a value in this process.

    ``missing`` is true when the bytes are well formed but need what this process lacks
    (a class it has not imported, numpy): another process may read them.
    """

    missing: bool = False


class DivergenceError(MuscleMemError):
    """Replay could not go on and the engine was built with ``on_divergence="raise"``.

    ``handoff`` holds the steps already executed, where replay stopped and why.
    """

    def __init__(self, handoff: Handoff) -> None:
        self.handoff = handoff
        super().__init__(
            f"replay diverged at step {handoff.at} after {len(handoff.steps)} executed "
            f"step(s): {handoff.reason}"
        )


class ReplayMissError(MuscleMemError):
    """A run in ``mode="replay"`` could not finish the task from the cache, and that mode
    never calls the agent.

    ``reason`` says why replay stopped; ``handoff`` holds the steps it executed first
    when it stopped part-way (None when it executed none: a plain miss).
    """

    def __init__(self, reason: str, handoff: Handoff | None) -> None:
        self.reason = reason
        self.handoff = handoff
        done = f" after {len(handoff.steps)} executed step(s)" if handoff is not None else ""
        super().__init__(
            f"mode='replay' never calls the agent, and replay stopped{done}: {reason}; "
            "record the task first (mode='auto' or 'record'), or let this run call the agent"
        )


class StoreError(MuscleMemError):
    """A store cannot be opened or used: unreachable, unreadable, or of a newer schema.

    Messages name the store's URL without its password.
    """


class ExportFormatError(MuscleMemError, ValueError):
    """An import file that is not a muscle-mem export, or a line of it that is broken."""


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


class MuscleMemWarning(UserWarning):
    """Root of every warning muscle-mem emits."""


class IntegrityWarning(MuscleMemWarning):
    """A stored row failed its signature check and was ignored."""


class DamagedRowWarning(IntegrityWarning):
    """Stored rows that are malformed (a call that is not a call, a count that is not a
    number, a blob that is text) or whose content does not hash to their id were ignored,
    as if they had never been written. The warning names the table and the rows."""


class UnrecordedCallWarning(MuscleMemWarning):
    """A tool was called from a thread with no run in its context (contextvars do not
    reach the threads an agent starts) while several runs of its engine were in
    progress: which run the call belongs to cannot be known, so it was not recorded.
    Emitted once per tool."""


__all__ = [
    "BankError",
    "BankImportError",
    "ConfigurationError",
    "DamagedRowWarning",
    "DecodeError",
    "DivergenceError",
    "EncodeError",
    "ExportFormatError",
    "IntegrityWarning",
    "MuscleMemError",
    "MuscleMemWarning",
    "ReplayMissError",
    "StoreError",
    "UnknownEntityError",
    "UnknownRecordError",
    "UnrecordedCallWarning",
]
