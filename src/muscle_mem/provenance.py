"""Provenance: where each recorded value came from, and what it stands for on replay.

An agent's later calls mostly pass values it read from earlier results (the customer id
``find_customer`` returned), not values it was given. Replayed as literals, those
values would act on the recorded customer's records for every other customer, and no
check could tell: each check looks at the records its own arguments name. The engine
sees every call and every result, so it records where such values came from.

At record time (:class:`Tracer`), a value in a call's arguments (at any depth) or in the
agent's result that equals a value in the result of an earlier step of the path becomes
a :class:`~muscle_mem.models.Traced` with every location it was found at
(:class:`~muscle_mem.models.FromResult`), and with every param of that value. At replay
(:func:`muscle_mem.templates.resolve`) the sources are read from this run's params and live results:

- a location that held the value alone when recorded (the data forced it) gives the
  value it holds now, if it holds exactly one: a new customer's id is derived;
- a location that held several values (the agent chose one) must still hold the
  recorded value, which is replayed;
- every source that pins the value down must agree with the others: a value that
  matched two params, or a param and a result, is ambiguous the moment they differ.

Anything else stops replay with a reason that names the argument and the location.

Which values are traced: strings of three characters or more, numbers of four digits or
more (or with a fraction), decimals, UUIDs, dates and times. Booleans, None, short
strings and small numbers are everywhere (a quantity of 1, a flag, "ok"), so matching
them to a result would mostly find coincidences; they stay the agent's own choices.
A word (lowercase letters, spaces, ``_`` and ``-``: ``"pending"``, ``"paid_social"``,
``"summer-sale"``) is as likely the agent's own vocabulary as something it read: found
in a result, it keeps the agent's choice as a source too, so it replays only while the
result still holds it, and is never derived. (Derived, a standard setting the recorded
customer happened to have already would copy another customer's broken one.)
Values inside a longer string are not traced, nor values inside objects other than
lists, tuples, sets, dicts, dataclasses and pydantic models.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .codec import decode, encode, encode_call
from .errors import DecodeError, EncodeError
from .models import FromResult, Param, RecordedCall, Redacted, Step, Text, Traced

# Results are walked this deep at most: what lies deeper is left untraced (a literal).
MAX_DEPTH = 64

_TRACED_ALWAYS = (decimal.Decimal, uuid.UUID, dt.datetime, dt.date, dt.time)
_WORD = re.compile(r"[a-z][a-z _-]*")

Key = tuple[type, Any]  # a value by type and value: True is not 1, 1.0 is not 1
Location = tuple[tuple[str | None, ...], bool]  # (path, keys) as in FromResult


def traceable(value: Any) -> bool:
    """Whether a value is specific enough that finding it in a result means something."""
    kind = type(value)
    if kind is str:
        return len(value) >= 3 and not value.isspace()
    if kind is int:
        return bool(abs(value) >= 1000)
    if kind is float:
        return bool(abs(value) >= 1000 or (value == value and not value.is_integer()))
    return kind in _TRACED_ALWAYS


def key(value: Any) -> Key | None:
    """``value`` as a dict key that tells types apart; None if it is not hashable."""
    try:
        hash(value)
    except TypeError:
        return None
    return (type(value), value)


def _fields(value: Any) -> Mapping[str, Any] | None:
    """The fields of a record object (a dataclass or a pydantic model), by name."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    model_fields = getattr(type(value), "model_fields", None)
    if isinstance(model_fields, Mapping) and hasattr(value, "model_dump"):
        return {name: getattr(value, name, None) for name in model_fields}
    return None


def _record(value: Any) -> Mapping[str, Any] | None:
    return value if type(value) is dict else _fields(value)


_SCALARS = (str, int, float, bool, type(None))
_COLLECTIONS = (list, tuple, set, frozenset)


def _keyed_by_id(value: dict[Any, Any]) -> bool:
    """Whether a dict holds records keyed by their ids (``{"card_31": {...}}``) rather
    than named fields: every value is a record, and every key is found inside its record
    or every key has a digit in it. Field names seldom do; ids mostly do."""
    if not value:
        return False
    records = []
    for v in value.values():
        kind = type(v)
        record = v if kind is dict else None
        if record is None and kind not in _SCALARS and kind not in _COLLECTIONS:
            record = _fields(v)
        if record is None:
            return False
        records.append(record)
    if all(type(k) is str and any(c.isdigit() for c in k) for k in value):
        return True
    return all(
        any(key(v) == key(k) for v in record.values())
        for k, record in zip(value, records, strict=True)
    )


class ResultIndex:
    """Every value of one result, by where it lies: made once, on first need."""

    __slots__ = ("locations", "values")

    def __init__(self, result: Any) -> None:
        # A traceable value -> the locations holding it, in the order found.
        self.locations: dict[Key, list[Location]] = {}
        # A location -> how many distinct values it holds (2 means "several").
        self.values: dict[Location, set[Key | int]] = {}
        self._walk(result, (), 0)

    def _add(self, value: Any, location: Location) -> None:
        found = (type(value), value) if type(value) in _SCALARS else key(value)
        held = self.values.get(location)
        if held is None:
            held = self.values[location] = set()
        held.add(id(value) if found is None else found)
        if found is not None and traceable(value):
            places = self.locations.get(found)
            if places is None:
                self.locations[found] = [location]
            elif location not in places:
                places.append(location)

    def _walk(self, value: Any, path: tuple[str | None, ...], depth: int) -> None:
        kind = type(value)
        if kind in _SCALARS:
            self._add(value, (path, False))
        elif depth > MAX_DEPTH:
            return
        elif kind is dict:
            if _keyed_by_id(value):
                for k, v in value.items():
                    self._add(k, (path, True))
                    self._walk(v, (*path, None), depth + 1)
            else:
                for k, v in value.items():
                    self._walk(v, (*path, k if type(k) is str else None), depth + 1)
        elif kind in _COLLECTIONS:
            for v in value:
                self._walk(v, (*path, None), depth + 1)
        elif (fields := _fields(value)) is not None:
            for name, v in fields.items():
                self._walk(v, (*path, name), depth + 1)
        else:
            self._add(value, (path, False))

    def sources(self, value: Any, step: int) -> list[FromResult]:
        found = key(value)
        if found is None:
            return []
        return [
            FromResult(step, path, keys, len(self.values[(path, keys)]) == 1)
            for path, keys in self.locations.get(found, ())
        ]


def values_at(result: Any, source: FromResult) -> list[Any]:
    """The distinct values ``source``'s location holds in ``result`` now."""
    level = [result]
    for part in source.path:
        below: list[Any] = []
        for value in level:
            if part is None:
                if type(value) is dict:
                    below.extend(value.values())
                elif type(value) in (list, tuple, set, frozenset):
                    below.extend(value)
            else:
                record = _record(value)
                if record is not None and part in record:
                    below.append(record[part])
        level = below
    if source.keys:
        level = [k for value in level if type(value) is dict for k in value]
    distinct: dict[Any, Any] = {}
    for value in level:
        found = key(value)
        distinct.setdefault(id(value) if found is None else found, value)
    return list(distinct.values())


class Tracer:
    """Finds the sources of the values a run recorded, among its params and results.

    ``results`` are the path's step results in order, and ``params`` the run's. A result
    is indexed the first time a value is looked for in it.
    """

    def __init__(self, params: Mapping[str, Any], results: Sequence[Any]) -> None:
        self.params = params
        self.results = results
        self.traced = 0  # how many values it has traced so far
        self._indexes: dict[int, ResultIndex] = {}
        self._by_value: dict[Key, list[str]] | None = None

    def _params_of(self, value: Any) -> list[str]:
        by_value = self._by_value
        if by_value is None:
            by_value = self._by_value = {}
            for name, param in self.params.items():
                found = key(param)
                if found is not None:
                    by_value.setdefault(found, []).append(name)
        found = key(value)
        return by_value.get(found, []) if found is not None else []

    def sources(self, value: Any, steps: Sequence[int]) -> list[FromResult]:
        """Where ``value`` lies in the results of ``steps``."""
        found: list[FromResult] = []
        for step in steps:
            index = self._indexes.get(step)
            if index is None:
                index = self._indexes[step] = ResultIndex(self.results[step])
            found.extend(index.sources(value, step))
        return found

    def trace(self, template: Any, steps: Sequence[int]) -> Any:
        """``template`` (a call's or a result's, params already in it) with the values
        found in the results of ``steps`` traced to them."""
        kind = type(template)
        if kind is Param:
            # Every param of this value is a source, traceable or not: the agent may
            # have meant either, so replay needs them to agree.
            value = self.params.get(template.name)
            sources: list[Param | FromResult] = [template]
            sources += (Param(n) for n in self._params_of(value) if n != template.name)
            if traceable(value):
                sources += self.sources(value, steps)
            if len(sources) == 1:
                return template
            self.traced += 1
            return Traced(_canonical(sources))
        if kind is list:
            return [self.trace(v, steps) for v in template]
        if kind is tuple:
            return tuple(self.trace(v, steps) for v in template)
        if kind is dict:
            return {k: self.trace(v, steps) for k, v in template.items()}
        if kind in (Text, Redacted) or not traceable(template):
            return template
        found = self.sources(template, steps)
        if not found:
            return template  # the agent's own choice
        self.traced += 1
        # The literal is kept where nothing else pins the value down, and for a word,
        # which may be the agent's own choice as much as something it read.
        pinned = any(source.alone for source in found) and not _WORD.fullmatch(template)
        return Traced(_canonical(found), None if pinned else template)

    def trace_calls(
        self, calls: Sequence[RecordedCall], offset: int, readable: Sequence[Sequence[int]]
    ) -> tuple[list[RecordedCall], set[str]]:
        """The calls a run recorded after ``offset`` replayed steps (whose results come
        first in :attr:`results`), each with its values traced to the results it could
        have read: the replayed steps' and, for call ``i``, those of the calls at the
        positions ``readable[i]``. Also the names of the params the calls use."""
        used: set[str] = set()
        traced = []
        for call, mine in zip(calls, readable, strict=True):
            try:
                template = decode(call.step.call)
            except DecodeError:  # not this process's to read: stays as recorded
                traced.append(call)
                continue
            before = self.traced
            template = self.trace(template, [*range(offset), *(offset + i for i in mine)])
            uses(template, used)
            if self.traced != before:
                step = Step(call.step.tool, call.step.code, encode_call(template))
                call = RecordedCall(step, call.pre, call.post)
            traced.append(call)
        return traced, used


def _canonical(sources: list[Any]) -> tuple[Param | FromResult, ...]:
    """Sources in one order, whatever order they were found in: it is part of the step."""

    def order(source: Param | FromResult) -> tuple[Any, ...]:
        if isinstance(source, Param):
            return (0, source.name)
        path = tuple((part is None, part or "") for part in source.path)
        return (1, source.step, path, source.keys, source.alone)

    return tuple(sorted(set(sources), key=order))


def uses(template: Any, into: set[str]) -> set[str]:
    """Add the names of the params ``template`` refers to, anywhere, to ``into``."""
    kind = type(template)
    if kind is Param:
        into.add(template.name)
    elif kind is Text:
        into.update(p.name for p in template.parts if type(p) is Param)
    elif kind is Traced:
        into.update(s.name for s in template.sources if type(s) is Param)
    elif kind is list or kind is tuple:
        for v in template:
            uses(v, into)
    elif kind is dict:
        for v in template.values():
            uses(v, into)
    return into


def unused_params(params: Mapping[str, Any], names: Sequence[str]) -> bytes | None:
    """The entry a path's end keeps for the params ``names`` it has no place for: each
    one's name with a digest of its value (never the value: it may be a secret). None
    when there are none, or when one's value can't be encoded (so can't be compared)."""
    if not names:
        return None
    try:
        return encode({name: param_digest(params[name]) for name in names})
    except EncodeError:
        return None


def param_digest(value: Any) -> str:
    """A digest of a param's value, to compare it with the one a path was recorded with.

    Raises EncodeError for a value that is not data."""
    return hashlib.blake2b(encode(value, "a param"), digest_size=16).hexdigest()
