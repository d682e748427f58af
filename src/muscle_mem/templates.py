"""Templates: a run's param values turned into references to them, and filled back in.

At record time a tool's arguments become a template (a value equal to a param becomes
:class:`~muscle_mem.models.Param`, a string holding one becomes
:class:`~muscle_mem.models.Text`); at replay the template is resolved with the new run's
params. The task key is templated the same way, so runs that differ only in their
params share one cache entry.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from .codec import MAX_DEPTH, encode
from .errors import EncodeError
from .models import Param, Redacted, Text

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

    def template(self, value: Any, depth: int = 0) -> Any:
        """``value`` with param values replaced; ``depth`` counts the containers around
        it. Past the codec's :data:`~muscle_mem.codec.MAX_DEPTH` (or in a value that
        contains itself) the rest is left as it is, for the codec to refuse by name."""
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
        if depth >= MAX_DEPTH:
            return value
        if kind is list:
            return [self.template(v, depth + 1) for v in value]
        if kind is tuple:
            return tuple(self.template(v, depth + 1) for v in value)
        if kind is dict:
            return {k: self.template(v, depth + 1) for k, v in value.items()}
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


def resolve(template: Any, params: Mapping[str, Any]) -> Any:
    """The value a template stands for under ``params``: always a fresh copy of containers."""
    kind = type(template)
    if kind in _HASHABLE:
        return template
    if kind is Param:
        try:
            return params[template.name]
        except KeyError:
            raise MissingParam(template.name) from None
    if kind is Text:
        return "".join(p if type(p) is str else str(resolve(p, params)) for p in template.parts)
    if kind is Redacted:
        raise NotStored(template.argument)
    if kind is list:
        return [resolve(v, params) for v in template]
    if kind is tuple:
        return tuple(resolve(v, params) for v in template)
    if kind is dict:
        return {k: resolve(v, params) for k, v in template.items()}
    if kind is set:
        return set(template)
    # Anything else (a dataclass, an array) is a copy too: a tool that mutates its
    # argument must not change what later replays receive.
    return copy.deepcopy(template)


def has_params(template: Any) -> bool:
    """Whether resolving ``template`` depends on the params (or reports a redaction)."""
    kind = type(template)
    if kind is Param or kind is Text or kind is Redacted:
        return True  # (Redacted: resolving it is what reports it)
    if kind is list or kind is tuple:
        return any(has_params(v) for v in template)
    if kind is dict:
        return any(has_params(v) for v in template.values())
    return False
