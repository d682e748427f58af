"""Checks on what callers hand the bank: each returns the value as it will be stored,
or raises a :class:`BankError` saying what was wrong and what to pass instead."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from .errors import BankError
from .model import Impact


def name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BankError(f"{what} must be a non-empty string, got {value!r}")
    return value


def kind(value: object, what: str = "kind") -> str:
    text = name(value, what)
    if ":" in text:
        raise BankError(f"{what} {text!r} contains ':', which separates kind from id in refs")
    return text


def ref(value: object, what: str = "entity") -> str:
    """An Entity (anything with a ``.ref``) or a ``"kind:id"`` string, as its ref."""
    text = getattr(value, "ref", value)
    if not isinstance(text, str):
        raise BankError(
            f"{what} must be an Entity or a 'kind:id' string such as 'campaign:summer', "
            f"got {type(value).__qualname__}"
        )
    head, colon, tail = text.partition(":")
    if not colon or not head.strip() or not tail.strip():
        raise BankError(
            f"{what} {text!r} is not a 'kind:id' ref: write it like 'campaign:summer' or "
            "'brand:voyage'"
        )
    return text


def number(value: object, what: str) -> float:
    # bool is an int to Python, but True is no metric value.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = " (pass numbers, not strings: 15000, not '15000')" if isinstance(value, str) else ""
        raise BankError(f"{what} must be a number, got {value!r}{hint}")
    if not math.isfinite(value):
        raise BankError(f"{what} must be a finite number, got {value!r}")
    return value


def metrics(value: object) -> dict[str, float]:
    if not isinstance(value, Mapping) or not value:
        raise BankError(f"metrics must be a non-empty dict of metric name -> number, got {value!r}")
    return {name(key, "a metric name"): number(v, f"metric {key!r}") for key, v in value.items()}


def impact(value: object, what: str) -> Impact:
    """A dict of metric -> relative change (-0.15 = down 15%), free text, or None."""
    if value is None:
        return None
    if isinstance(value, str):
        return name(value, what)
    if isinstance(value, Mapping) and value:
        return {
            name(key, f"a metric name in {what}"): number(v, f"{what}[{key!r}]")
            for key, v in value.items()
        }
    raise BankError(
        f"{what} must be a dict of metric -> relative change such as {{'cpl': -0.15}} "
        f"(CPL down 15%), or free text; got {value!r}"
    )


def jsonable(value: object, what: str) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), or an error."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise BankError(
            f"{what} must be JSON data (dicts, lists, strings, finite numbers): {error}"
        ) from None


def moment(value: object, what: str = "at") -> float:
    """Epoch seconds from a datetime (naive ones are UTC), a number, or None for now.

    Kept to the microsecond, which is what an ISO 8601 export can carry.
    """
    if value is None:
        return round(time.time(), 6)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return round(value.timestamp(), 6)
    return round(number(value, f"{what} (a datetime or epoch seconds)"), 6)
