"""Every error muscle-mem raises on purpose.

    MuscleMemError
    ├── ConfigurationError (also ValueError)   the engine or a tool is set up wrongly
    ├── EncodeError (also TypeError)           a value cannot be stored as data
    ├── DivergenceError                        replay stopped and on_divergence="raise"
    └── StoreError                             a store can't be opened, read or written

Misuse errors are also built-in ``TypeError``/``ValueError`` subclasses, so code that
already catches those keeps working. Every message says what happened and how to fix it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Handoff


class MuscleMemError(Exception):
    """Root of every error raised by muscle-mem."""


class ConfigurationError(MuscleMemError, ValueError):
    """The engine, a tool or a check is configured wrongly."""


class EncodeError(MuscleMemError, TypeError):
    """A value cannot be encoded as data (arguments, snapshots and results must be)."""


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


class StoreError(MuscleMemError):
    """A store cannot be opened or used: unreachable, unreadable, or of a newer schema.

    Messages name the store's URL without its password.
    """
