"""Checks on what callers hand the bank: each returns the value as it will be stored,
or raises a :class:`BankError` saying what was wrong and what to pass instead.

Every store must keep what passes the same way, so these refuse what one store would
take and another refuse or corrupt: NUL and lone surrogates in text, numbers no float
can hold, times no datetime can show, data nested too deep to walk.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from ..errors import BankError
from .model import Impact

# The furthest recall pages; beyond it SQLite's integers and PostgreSQL's bigint end.
MAX_OFFSET = 1_000_000_000


def text(value: str, what: str) -> str:
    """``value`` if every store can keep it: PostgreSQL refuses NUL in text, and UTF-8
    (SQLite, PostgreSQL) cannot encode a lone surrogate."""
    if "\x00" in value:
        raise BankError(f"{what} contains a NUL character ('\\x00'), which no store keeps")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BankError(
            f"{what} contains a lone surrogate ({value!r}), which UTF-8 cannot encode"
        ) from None
    return value


def name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BankError(f"{what} must be a non-empty string, got {value!r}")
    return text(value, what)


def kind(value: object, what: str = "kind") -> str:
    found = name(value, what)
    if ":" in found:
        raise BankError(f"{what} {found!r} contains ':', which separates kind from id in refs")
    return found


def ref(value: object, what: str = "entity") -> str:
    """An Entity (anything with a ``.ref``) or a ``"kind:id"`` string, as its ref."""
    found = getattr(value, "ref", value)
    if not isinstance(found, str):
        raise BankError(
            f"{what} must be an Entity or a 'kind:id' string such as 'campaign:summer', "
            f"got {type(value).__qualname__}"
        )
    head, colon, tail = found.partition(":")
    if not colon or not head.strip() or not tail.strip():
        raise BankError(
            f"{what} {found!r} is not a 'kind:id' ref: write it like 'campaign:summer' or "
            "'brand:voyage'"
        )
    return text(found, what)


def number(value: object, what: str) -> float:
    """A finite number a float can hold: every store, the brief and trends compute
    with floats, and an int past 1.8e308 makes them overflow."""
    # bool is an int to Python, but True is no metric value.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = " (pass numbers, not strings: 15000, not '15000')" if isinstance(value, str) else ""
        raise BankError(f"{what} must be a number, got {value!r}{hint}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        raise BankError(
            f"{what} must be a number a float can hold (up to about 1.8e308), got an "
            "integer larger than that"
        ) from None
    if not finite:
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
        data = json.loads(json.dumps(value, allow_nan=False))
    except RecursionError:
        raise BankError(f"{what} is nested too deeply to store") from None
    except (TypeError, ValueError) as error:
        raise BankError(
            f"{what} must be JSON data (dicts, lists, strings, finite numbers): {error}"
        ) from None
    for found in _strings(data):
        text(found, f"a string in {what}")
    return data


def _strings(data: Any) -> Iterator[str]:
    """Every key and string in JSON data; a loop, not recursion, for deep data."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack += item.keys()
            stack += item.values()
        elif isinstance(item, list):
            stack += item


def moment(value: object, what: str = "at") -> float:
    """Epoch seconds from a datetime (naive ones are UTC), a number, or None for now.

    Kept to the microsecond, which is what an ISO 8601 export can carry, and within
    the years 1 to 9999, which is what a datetime can show in an export or a brief.
    """
    if value is None:
        at: float = time.time()
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        at = value.timestamp()
    else:
        at = number(value, f"{what} (a datetime or epoch seconds)")
    at = round(at, 6)
    try:
        datetime.fromtimestamp(at, timezone.utc)
    except (OverflowError, ValueError, OSError):
        raise BankError(
            f"{what} {value!r} is not a time a datetime can hold (years 1 to 9999 UTC)"
        ) from None
    return at
