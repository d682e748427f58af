"""What the memory bank remembers: small frozen records, free of any storage.

Times are epoch seconds (floats). A ref names an entity as ``"kind:id"``; a scope is a
ref that need not name a stored entity (``"brand:voyage"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

#: What an action expected, or what came of it: metric -> relative change (-0.15 means
#: down 15%), or free text, which no comparison can judge.
Impact = Mapping[str, float] | str | None

RecordType = Literal["learning", "decision", "action", "snapshot"]


@dataclass(frozen=True)
class Entity:
    """One version of something the agent works on: a campaign, a property, a brand."""

    kind: str
    id: str
    attributes: Mapping[str, Any]
    version: int
    updated_at: float

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class Snapshot:
    """An entity's metrics at one time, with what the agent made of them."""

    type: ClassVar[RecordType] = "snapshot"

    id: str
    entity: str
    at: float
    metrics: Mapping[str, float]
    analysis: Any = None


@dataclass(frozen=True)
class Trend:
    """One metric of an entity over time, oldest first; ``change`` is last minus first,
    ``percent`` that change relative to the first (None when the first is zero)."""

    entity: str
    metric: str
    points: tuple[tuple[float, float], ...]

    @property
    def change(self) -> float | None:
        if len(self.points) < 2:
            return None
        return self.points[-1][1] - self.points[0][1]

    @property
    def percent(self) -> float | None:
        change = self.change
        if change is None or self.points[0][1] == 0:
            return None
        return 100.0 * change / abs(self.points[0][1])


@dataclass(frozen=True)
class Action:
    """Something done to an entity, why, what it was expected to change, and (once
    closed) what it did change."""

    type: ClassVar[RecordType] = "action"

    id: str
    entity: str
    kind: str
    reasoning: str
    expected: Impact
    at: float
    actual: Impact = None
    closed_at: float | None = None

    @property
    def open(self) -> bool:
        return self.closed_at is None

    @property
    def shortfall(self) -> tuple[str, ...]:
        """The expected metrics the outcome fell short on (a metric it does not report
        fell short); empty while open, or when the expectation or the outcome is free
        text, which no comparison judges."""
        if not isinstance(self.expected, Mapping) or not isinstance(self.actual, Mapping):
            return ()
        actual = self.actual
        return tuple(
            metric
            for metric, hoped in self.expected.items()
            if metric not in actual or _short(hoped, actual[metric])
        )


def _short(expected: float, actual: float) -> bool:
    # A rise was hoped for and fell below it, or a fall was and did not go as low.
    return actual < expected if expected >= 0 else actual > expected


@dataclass(frozen=True)
class Closing:
    """An action's outcome, as stored: final once written."""

    action: str
    actual: Impact
    at: float


@dataclass(frozen=True)
class Learning:
    """An insight worth reusing, with the data behind it. A newer learning can
    supersede it; the older one is kept, marked with the newer one's id."""

    type: ClassVar[RecordType] = "learning"

    id: str
    scope: str
    kind: str
    insight: str
    data: Any
    at: float
    supersedes: str | None = None
    superseded_by: str | None = None

    @property
    def superseded(self) -> bool:
        return self.superseded_by is not None


@dataclass(frozen=True)
class Decision:
    """A choice made, in what context and why; scoped to an entity, a brand, or nothing."""

    type: ClassVar[RecordType] = "decision"

    id: str
    scope: str | None
    kind: str
    context: Any
    reasoning: str
    at: float


Record = Snapshot | Action | Learning | Decision


@dataclass(frozen=True)
class Recalled:
    """One recall result: its ``type``, the text it was found by, and the record."""

    type: RecordType
    id: str
    scope: str | None
    kind: str | None
    at: float
    text: str
    record: Record


def describe_impact(impact: Impact) -> str:
    """``{"cpl": -0.15}`` as ``"cpl -15%"``; free text as it is."""
    if impact is None:
        return "nothing stated"
    if isinstance(impact, str):
        return impact
    return ", ".join(f"{metric} {value * 100:+.4g}%" for metric, value in impact.items())


__all__ = [
    "Action",
    "Closing",
    "Decision",
    "Entity",
    "Impact",
    "Learning",
    "Recalled",
    "Record",
    "RecordType",
    "Snapshot",
    "Trend",
    "describe_impact",
]
