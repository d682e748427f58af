"""Templates: a run's param values turned into references to them, and filled back in.

At record time a tool's arguments become a template (a value equal to a param becomes
:class:`~muscle_mem.models.Param`, a string holding one becomes
:class:`~muscle_mem.models.Text`, and provenance.py traces values read from earlier
results to :class:`~muscle_mem.models.Traced`); at replay the template is resolved with
the new run's params and the live results of the steps replayed before it. The task key
is templated the same way, so runs that differ only in their params share one cache
entry.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .codec import encode
from .errors import EncodeError
from .models import FromResult, Param, Redacted, Text, Traced
from .provenance import key, values_at

_HASHABLE = (str, int, float, bool, bytes, type(None))


class Templater:
    """Replaces a run's param values by references to them, and fills them back in.

    A value equal in type and value to a param becomes :class:`Param` (``True`` is not
    ``1``); a string containing string params becomes :class:`Text`, longest value first.
    A param's text counts only where it is not glued into a longer word: with
    ``name="Jo"``, ``"Hello Jo!"`` is templated but the button label ``"Join"`` is not.
    With ``words=True`` (the task key) a number param also stands for its text where
    that text is a whole word, so ``"add 2"`` with ``n=2`` reads ``"add {n}"``.
    When two params share a value, the first one in the dict wins.
    """

    def __init__(self, params: Mapping[str, Any], *, words: bool = False) -> None:
        self.params = dict(params)
        self._exact: dict[tuple[type, Any], str] = {}
        self._by_encoding: dict[bytes, str] = {}
        by_text: dict[str, str] = {}
        patterns: list[tuple[int, str]] = []
        for name, value in self.params.items():
            if type(value) in _HASHABLE:
                self._exact.setdefault((type(value), value), name)
            else:
                self._by_encoding.setdefault(encode(value, f"param {name!r}"), name)
            if type(value) is str and value and value not in by_text:
                by_text[value] = name
                patterns.append((len(value), _unglued(value)))
            elif words and type(value) in (int, float) and str(value) not in by_text:
                text = str(value)
                by_text[text] = name
                patterns.append((len(text), rf"(?<![\w.]){re.escape(text)}(?![\w]|\.\d)"))
        self._by_text = by_text
        patterns.sort(key=lambda p: -p[0])  # stable: equal lengths keep dict order
        self._pattern = re.compile("|".join(p for _, p in patterns)) if patterns else None

    def template(self, value: Any) -> Any:
        kind = type(value)
        if kind in _HASHABLE:
            name = self._exact.get((kind, value))
            if name is not None:
                return Param(name)
            if kind is str and self._pattern is not None:
                return self._text(value)
            return value
        if self._by_encoding:
            try:
                name = self._by_encoding.get(encode(value))
            except EncodeError:
                name = None  # not a param; the caller reports it with a better name
            if name is not None:
                return Param(name)
        if kind is list:
            return [self.template(v) for v in value]
        if kind is tuple:
            return tuple(self.template(v) for v in value)
        if kind is dict:
            return {k: self.template(v) for k, v in value.items()}
        return value

    def _text(self, value: str) -> str | Text:
        assert self._pattern is not None
        parts: list[str | Param] = []
        position = 0
        for match in self._pattern.finditer(value):
            if match.start() > position:
                parts.append(value[position : match.start()])
            parts.append(Param(self._by_text[match.group()]))
            position = match.end()
        if not parts:
            return value
        if position < len(value):
            parts.append(value[position:])
        return Text(tuple(parts))


def _unglued(text: str) -> str:
    """A pattern for ``text`` that doesn't match inside a longer word."""
    pattern = re.escape(text)
    if re.match(r"\w", text):
        pattern = rf"(?<!\w){pattern}"
    if re.search(r"\w$", text):
        pattern = rf"{pattern}(?!\w)"
    return pattern


# Two signals from resolve() that replay turns into the reason a step can't be replayed;
# neither ever reaches the user as an exception.


class MissingParam(LookupError):
    """A recorded step needs a param this run was not given."""


class NotStored(LookupError):
    """A recorded step's sensitive argument was not a param, so it was never stored."""


def resolve(
    template: Any, params: Mapping[str, Any], results: Sequence[Any] = (), ahead: bool = False
) -> Any:
    """The value a template stands for under ``params``, where the steps before it
    returned ``results``: always a fresh copy of containers.

    ``ahead`` resolves a step further down than the next one, to forecast its check:
    results not known yet are left out, and :class:`Pending` raised only where that
    leaves nothing to go on.
    """
    kind = type(template)
    if kind in _HASHABLE:
        return template
    if kind is Param:
        try:
            return params[template.name]
        except KeyError:
            raise MissingParam(template.name) from None
    if kind is Traced:
        return _resolve_traced(template, params, results, ahead)
    if kind is Text:
        return "".join(p if type(p) is str else str(resolve(p, params)) for p in template.parts)
    if kind is Redacted:
        raise NotStored(template.argument)
    if kind is list:
        return [resolve(v, params, results, ahead) for v in template]
    if kind is tuple:
        return tuple(resolve(v, params, results, ahead) for v in template)
    if kind is dict:
        return {k: resolve(v, params, results, ahead) for k, v in template.items()}
    if kind is set:
        return set(template)
    # Anything else (a dataclass, an array) is a copy too: a tool that mutates its
    # argument must not change what later replays receive.
    return copy.deepcopy(template)


class Unresolved(LookupError):
    """A traced value that can't be rebuilt from this run, and why (see :func:`unresolved`
    for where it lies)."""


class Pending(LookupError):
    """A traced value from the result of a step that has not run yet (a look ahead)."""


def _resolve_traced(
    traced: Traced, params: Mapping[str, Any], results: Sequence[Any], ahead: bool = False
) -> Any:
    """The value ``traced`` stands for in a run with ``params`` whose steps so far
    returned ``results``; raises :class:`Unresolved` (or MissingParam) if its sources
    no longer give one value (see provenance.py)."""
    # Sources that pin the value down, each with what it says now; the literal kept is
    # one (the agent's choice), a param another, a location that held it alone a third.
    pinned: list[tuple[Any, str]] = []
    if traced.value is not None:
        pinned.append((traced.value, "the agent's own choice"))
    chosen: list[tuple[FromResult, list[Any]]] = []
    for source in traced.sources:
        if type(source) is Param:
            if source.name not in params:
                raise MissingParam(source.name)
            pinned.append((params[source.name], _name(source)))
            continue
        assert type(source) is FromResult
        if source.step >= len(results):
            if ahead:
                continue
            raise Pending(source.step)
        live = values_at(results[source.step], source)
        if not source.alone:
            chosen.append((source, live))
        elif len(live) == 1:
            pinned.append((live[0], _name(source)))
        elif traced.value is None:
            raise Unresolved(
                f"came from {_name(source)}, which held it alone when recorded and now "
                f"holds {_describe(live)}"
            )
        else:
            chosen.append((source, live))  # a word: still there is all it takes
    if not pinned:
        raise Pending("no source known yet")  # only ahead: else some source pins it
    value, first = pinned[0]
    for other, said_by in pinned[1:]:
        if key(other) != key(value) or key(value) is None:
            raise Unresolved(
                f"matched {first} and {said_by} when recorded, which now disagree "
                f"({_short(value)} and {_short(other)}): it can't be known which one the "
                "agent used"
            )
    for source, live in chosen:
        if all(key(v) != key(value) for v in live):
            raise Unresolved(
                f"is {_short(value)}, found among the values of {_name(source)} when "
                f"recorded, which now holds {_describe(live)}"
            )
    return value


def _name(source: Param | FromResult) -> str:
    if isinstance(source, Param):
        return f"param {source.name!r}"
    return f"{source}" if source.path or source.keys else f"step {source.step}'s result"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(values: list[Any]) -> str:
    if not values:
        return "nothing"
    if len(values) == 1:
        return _short(values[0])
    shown = ", ".join(_short(v) for v in values[:3])
    return f"{len(values)} values ({shown}{', ...' if len(values) > 3 else ''})"


def unresolved(
    template: Any, params: Mapping[str, Any], results: Sequence[Any]
) -> tuple[list[Any], str] | None:
    """Where in ``template`` the first value that can't be resolved lies (the keys and
    positions leading to it) and why; None if there is none. Looked for only once
    :func:`resolve` has failed, so resolving stays a plain walk."""
    kind = type(template)
    if kind is Traced:
        try:
            _resolve_traced(template, params, results)
        except Unresolved as error:
            return [], str(error)
        return None
    if kind is list or kind is tuple:
        items: Any = enumerate(template)
    elif kind is dict:
        items = template.items()
    else:
        return None
    for at, value in items:
        found = unresolved(value, params, results)
        if found is not None:
            found[0].insert(0, at)
            return found
    return None


def has_params(template: Any) -> bool:
    """Whether resolving ``template`` depends on the params or results (or reports a
    redaction)."""
    kind = type(template)
    if kind is Param or kind is Text or kind is Redacted or kind is Traced:
        return True  # (Redacted: resolving it is what reports it)
    if kind is list or kind is tuple:
        return any(has_params(v) for v in template)
    if kind is dict:
        return any(has_params(v) for v in template.values())
    return False
