"""Check: how the engine tells whether a recorded call is safe to repeat now."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError


@dataclass(frozen=True)
class Check:
    """A capture of the environment, and how to compare two captures.

    ``capture`` is called with the tool's own arguments (and ``self`` for methods) and
    returns a snapshot of what makes the call safe. ``compare(current, candidate)``
    returns a bool, or a float score: with ``threshold`` a score passes at or above it,
    without one any truthy result passes; candidates are ranked by score. Without
    ``compare`` snapshots must be equal, and are found by hash, however many are stored.

    A cache hit refreshes the snapshot it matched with the current capture (so a
    "recorded less than a second ago" check keeps passing on a steady stream of hits);
    ``learn=False`` keeps the recorded snapshots as they were, for scored checks where
    drift would matter.
    """

    capture: Callable[..., Any]
    compare: Callable[[Any, Any], bool | float] | None = None
    threshold: float | None = None
    learn: bool = True

    def __post_init__(self) -> None:
        if not callable(self.capture):
            raise ConfigurationError(
                f"Check(capture=...) must be callable, got {type(self.capture).__qualname__}"
            )
        if self.compare is not None and not callable(self.compare):
            raise ConfigurationError(
                f"Check(compare=...) must be callable or None, got "
                f"{type(self.compare).__qualname__}"
            )
        if self.threshold is not None and self.compare is None:
            raise ConfigurationError(
                "Check(threshold=...) needs a compare that returns a score; without compare "
                "snapshots are compared for equality"
            )

    def judge(self, current: Any, candidate: Any) -> tuple[float, bool] | None:
        """``(score, final)`` if ``candidate`` passes against ``current``, else None.

        ``final`` means no other candidate can rank higher (a yes/no answer, ``True`` or
        numpy's ``True``), so a search may stop there; a number is a score to rank.
        """
        assert self.compare is not None, "equality checks are hash lookups, not judged"
        result = self.compare(current, candidate)
        if self.threshold is not None:
            return (float(result), False) if result >= self.threshold else None
        if result is True:  # the common case first: an ABC isinstance costs a microsecond
            return 1.0, True
        if not result:
            return None
        if isinstance(result, numbers.Real) and not isinstance(result, bool):
            return float(result), False
        return 1.0, True
