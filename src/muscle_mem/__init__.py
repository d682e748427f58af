"""muscle-mem: a behavior cache for AI agents.

Record the tool calls an agent makes while it solves a task; replay them the next time
the same task comes in an environment the tools' checks judge to be the same.
"""

import logging

from .checks import Check
from .engine import Engine, OnDivergence
from .errors import ConfigurationError, DivergenceError, EncodeError, MuscleMemError
from .models import ExecutedStep, Handoff, Outcome
from .recording import handoff, report_usage
from .store import MemoryStore, Store

__version__ = "0.2.0"

__all__ = [
    "Check",
    "ConfigurationError",
    "DivergenceError",
    "EncodeError",
    "Engine",
    "ExecutedStep",
    "Handoff",
    "MemoryStore",
    "MuscleMemError",
    "OnDivergence",
    "Outcome",
    "Store",
    "__version__",
    "handoff",
    "report_usage",
]

# A library logs; the application decides where it goes.
logging.getLogger("muscle_mem").addHandler(logging.NullHandler())
