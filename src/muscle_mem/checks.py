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
    returns a bool, or a number as a score: with ``threshold`` a score passes at or above
    it, without one ``True`` or a nonzero score passes; candidates are ranked by score.
    Anything else (a string, None, a list) is a :class:`ConfigurationError` naming the
    check, not a guess at what it meant; a compare that raises fails the check. Without
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
        if self.threshold is not None and not _is_number(self.threshold):
            raise ConfigurationError(
                f"Check(threshold=...) must be a number, got {self.threshold!r} "
                f"({type(self.threshold).__qualname__}): a score passes at or above it"
            )

    def judge(self, current: Any, candidate: Any) -> tuple[float, bool] | None:
        """``(score, final)`` if ``candidate`` passes against ``current``, else None.

        ``final`` means no other candidate can rank higher (a yes/no answer, ``True`` or
        numpy's ``True``), so a search may stop there; a number is a score to rank.
        Raises :class:`CompareRaised` if the compare raised (the check fails), and
        :class:`ConfigurationError` if it returned neither a bool nor a number.
        """
        assert self.compare is not None, "equality checks are hash lookups, not judged"
        try:
            result = self.compare(current, candidate)
        except Exception as error:
            raise CompareRaised(error) from error
        kind = type(result)  # plain bools and numbers first: a miss judges every snapshot
        if (
            kind is not bool
            and kind is not float
            and kind is not int
            and not (_is_number(result) or _is_bool(result))
        ):
            # "no" is truthy: taking it as a yes would replay on a check that said no.
            raise ConfigurationError(
                f"the compare of {self.describe()} returned {_short(result)} "
                f"({type(result).__qualname__}): a compare must return a bool, or a number "
                "as a score"
            )
        if self.threshold is not None:
            return (float(result), False) if result >= self.threshold else None
        if result is True:  # the common case first: an ABC isinstance costs a microsecond
            return 1.0, True
        if not result:
            return None
        if _is_number(result):
            return float(result), False
        return 1.0, True

    def describe(self) -> str:
        """The check by its functions' names, as an error names it."""
        return f"Check({_name(self.capture)}, {_name(self.compare)})"


class CompareRaised(Exception):
    """A check's compare raised ``error``: the check fails, and its reason says why.

    Its own type, so the replay that catches it cannot mistake an error of its own for
    the user's compare failing."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def _is_number(value: Any) -> bool:
    """A real number that is not a bool: ``0.7``, ``3``, numpy's ``float64(0.7)``."""
    if type(value) in (float, int):  # the common case first: an ABC check costs more
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_bool(value: Any) -> bool:
    """A bool, or numpy's (a compare of arrays returns ``np.True_``, not ``True``)."""
    kind = type(value)
    return kind is bool or (kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_"))


def _name(func: Any) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
