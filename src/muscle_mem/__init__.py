"""muscle-mem: a behavior cache for AI agents.

Record the tool calls an agent makes while it solves a task; replay them the next time
the same task comes in an environment the tools' checks judge to be the same. Beside
the cache, a MemoryBank keeps what the agent did, what came of it and what it learned.

The public modules are this one, ``muscle_mem.errors`` (every error and warning),
``muscle_mem.store`` (the Store protocol and what a store author needs) and
``muscle_mem.bank``. Everything else is internal and may change.
"""

import logging
import typing as _typing

from .checks import Check
from .engine import Engine
from .errors import (
    BankError,
    BankImportError,
    ConfigurationError,
    DamagedRowWarning,
    DecodeError,
    DivergenceError,
    EncodeError,
    ExportFormatError,
    IntegrityWarning,
    MuscleMemError,
    MuscleMemWarning,
    ReplayMissError,
    StoreError,
    UnknownEntityError,
    UnknownRecordError,
    UnrecordedCallWarning,
)
from .models import ExecutedStep, Handoff, Mode, OnDivergence, Outcome, Status
from .recording import handoff, report_usage
from .session import Session
from .store import MemoryStore, Store
from .tools import register_context_type

__version__ = "0.2.0"

__all__ = [
    "BankError",
    "BankImportError",
    "Check",
    "ConfigurationError",
    "DamagedRowWarning",
    "DecodeError",
    "DivergenceError",
    "EncodeError",
    "Engine",
    "Entity",
    "ExecutedStep",
    "ExportFormatError",
    "Handoff",
    "IntegrityWarning",
    "MemoryBank",
    "MemoryStore",
    "Mode",
    "MuscleMemError",
    "MuscleMemWarning",
    "OnDivergence",
    "Outcome",
    "ReplayMissError",
    "Session",
    "Status",
    "Store",
    "StoreError",
    "UnknownEntityError",
    "UnknownRecordError",
    "UnrecordedCallWarning",
    "__version__",
    "handoff",
    "register_context_type",
    "report_usage",
]

if _typing.TYPE_CHECKING:
    from .bank import Entity, MemoryBank

# The memory bank is imported on first use: an agent that only replays its cache does
# not pay for loading it.
_BANK_NAMES = ("Entity", "MemoryBank")


def __getattr__(name: str) -> _typing.Any:
    if name in _BANK_NAMES:
        from . import bank

        return getattr(bank, name)
    raise AttributeError(f"module 'muscle_mem' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_BANK_NAMES])


# A library logs; the application decides where it goes.
logging.getLogger("muscle_mem").addHandler(logging.NullHandler())
