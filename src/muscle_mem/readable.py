"""Stored values as people read them, and back, exactly: for files reviewed in git.

The codec's tagged trees (:mod:`muscle_mem.codec`) are exact but hard to read:
``{"x": ["Hello ", {"p": "name"}, "!"]}``. Here the same value reads as it would in
code, and turns back into the very same tree:

- JSON's own values stand for themselves: strings, numbers, true/false/null, lists,
  and objects for dicts with string keys;
- a param is ``"{name}"`` and a string holding params ``"Hello {name}!"`` (a literal
  brace is doubled, ``"{{"``, as in Python's format strings);
- a value taken from an earlier step's result is ``"⟨step 1: orders[*].id⟩"`` (several
  sources joined by `` = ``; ``, one of several`` where the agent chose it among
  several), with the agent's choice beside it where one was kept:
  ``{"$chosen": "A-17", "from": "⟨step 1: orders[*].id, one of several⟩"}``;
- every other type is an object with one ``$`` key naming it: ``{"$tuple": [...]}``,
  ``{"$bytes": base64}`` (binary only where the value is bytes), ``{"$datetime": iso}``,
  ``{"$dataclass": "module:Class", "fields": {...}}``, ``{"$sensitive": "password"}``...;
  a dict with a key starting with ``$`` is ``{"$dict": {...}}``, and a string that would
  read as something else is ``{"$str": "..."}``.

:func:`readable` falls back to ``{"$tree": tree}`` (the codec's own tree, still JSON)
for the rare value whose readable form would not turn back into the same tree, so
what a file holds is always exact.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from .errors import ExportFormatError

# The codec's leaf tags whose body is kept as is, by the name a file gives them.
_LEAVES = {
    "by": "$bytes",
    "fl": "$float",
    "dt": "$datetime",
    "date": "$date",
    "time": "$time",
    "td": "$timedelta",
    "dec": "$decimal",
    "uuid": "$uuid",
    "r": "$sensitive",
}
_LISTS = {"t": "$tuple", "s": "$set", "fs": "$frozenset"}
_FIELDS = {"dc": "$dataclass", "pd": "$model"}
_TAGS = {name: tag for tag, name in (*_LEAVES.items(), *_LISTS.items(), *_FIELDS.items())}

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]+)\}|[{}]")
_TRACED = re.compile(r"⟨(.*)⟩", re.DOTALL)
_SEVERAL = ", one of several"
_PART = re.compile(r"\[\*\]|\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\]|\.?([^\W\d]\w*)")


def readable(tree: Any) -> Any:
    """The tagged tree ``tree`` as a file shows it (see the module); exact: what
    :func:`tagged` turns it back into is ``tree``."""
    try:
        shown = _readable(tree)
        if tagged(shown) == tree:
            return shown
    except (ExportFormatError, ValueError, TypeError, KeyError):
        pass
    return {"$tree": tree}


def tagged(value: Any, where: str = "value") -> Any:
    """The codec's tree of a value as a file shows it; raises :class:`ExportFormatError`
    naming ``where`` for what no such file holds."""
    kind = type(value)
    if kind is str:
        return _from_string(value, where)
    if kind in (int, float, bool) or value is None:
        return value
    if kind is list:
        return [tagged(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is not dict:
        raise ExportFormatError(f"{where}: not a value: {value!r:.60}")
    tags = [key for key in value if key.startswith("$")]
    if not tags:
        return {"d": {k: tagged(v, f"{where}.{k}") for k, v in value.items()}}
    return _from_tag(value, tags[0], where)


def _readable(tree: Any) -> Any:
    kind = type(tree)
    if kind is str:
        return _literal(tree)
    if kind is list:
        return [_readable(v) for v in tree]
    if kind is not dict:
        return tree  # numbers, booleans, null
    tag = next(iter(tree))
    body = tree[tag]
    if tag == "d":
        shown = {k: _readable(v) for k, v in body.items()}
        return {"$dict": shown} if any(k.startswith("$") for k in body) else shown
    if tag in _LEAVES:
        return {_LEAVES[tag]: body}
    if tag in _LISTS:
        return {_LISTS[tag]: [_readable(v) for v in body]}
    if tag in _FIELDS:
        return {_FIELDS[tag]: body, "fields": {k: _readable(v) for k, v in tree["f"].items()}}
    if tag == "m":
        return {"$map": [[_readable(k), _readable(v)] for k, v in body]}
    if tag == "e":
        return {"$enum": body, "value": _readable(tree["v"])}
    if tag == "np":
        return {"$numpy": body, **{k: v for k, v in tree.items() if k != "np"}}
    if tag == "p":
        return "{" + body + "}"
    if tag == "x":
        return "".join(
            p.replace("{", "{{").replace("}", "}}") if type(p) is str else _param(p) for p in body
        )
    if tag == "src":
        sources = " = ".join(_source(s) for s in body)
        if "val" not in tree:
            return f"⟨{sources}⟩"
        return {"$chosen": _readable(tree["val"]), "from": f"⟨{sources}⟩"}
    raise ValueError(tag)


def _param(part: dict[str, str]) -> str:
    return "{" + part["p"] + "}"


def _literal(text: str) -> Any:
    if _TRACED.fullmatch(text):
        return {"$str": text}
    return text.replace("{", "{{").replace("}", "}}")


def _source(tree: dict[str, Any]) -> str:
    if "p" in tree:
        return "{" + str(tree["p"]) + "}"
    step, path, keys, alone = tree["at"]
    where = "".join(
        "[*]" if part is None else f".{part}" if part.isidentifier() else f"[{part!r}]"
        for part in path
    ).lstrip(".")
    if keys:
        where = f"{where}.keys()" if where else "keys()"
    shown = f"step {step}: {where}" if where else f"step {step}"
    return shown if alone else shown + _SEVERAL


def _from_string(text: str, where: str) -> Any:
    traced = _TRACED.fullmatch(text)
    if traced:
        return {"src": _sources(traced[1], where)}
    if "{" not in text and "}" not in text:
        return text
    parts: list[Any] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        literal = text[position : match.start()]
        position = match.end()
        token = match[0]
        if token in ("{{", "}}"):
            literal += token[0]
        elif match[1] is None:
            raise ExportFormatError(
                f"{where}: a lone {token!r} in {text!r:.60}: a param is written {{name}}, "
                "a literal brace doubled ({{ or }})"
            )
        if literal:
            if parts and type(parts[-1]) is str:
                parts[-1] += literal
            else:
                parts.append(literal)
        if match[1] is not None:
            parts.append({"p": match[1]})
    rest = text[position:]
    if rest:
        if parts and type(parts[-1]) is str:
            parts[-1] += rest
        else:
            parts.append(rest)
    if all(type(p) is str for p in parts):
        return "".join(parts)
    if len(parts) == 1:
        return parts[0]
    return {"x": parts}


def _sources(text: str, where: str) -> list[Any]:
    found: list[Any] = []
    for source in text.split(" = "):
        if source.startswith("{") and source.endswith("}") and len(source) > 2:
            found.append({"p": source[1:-1]})
            continue
        alone = not source.endswith(_SEVERAL)
        source = source.removesuffix(_SEVERAL)
        head, _, path = source.partition(": ")
        step = head.removeprefix("step ")
        if not head.startswith("step ") or not step.isdigit():
            raise ExportFormatError(
                f"{where}: {source!r} is not where a value came from: write {{name}} for a "
                "param, or 'step N: field[*].field' for an earlier step's result"
            )
        found.append({"at": [int(step), *_location(path, where), alone]})
    return found


def _location(text: str, where: str) -> list[Any]:
    keys = text == "keys()" or text.endswith(".keys()")
    if keys:
        text = text.removesuffix("keys()").removesuffix(".")
    path: list[str | None] = []
    position = 0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        position = match.end()
        if match[0] == "[*]":
            path.append(None)
        elif match[1] is not None:
            path.append(ast.literal_eval(match[1]))
        else:
            path.append(match[2])
    if position != len(text):
        raise ExportFormatError(f"{where}: cannot read the result location {text!r}")
    return [path, keys]


def _from_tag(value: dict[str, Any], tag: str, where: str) -> Any:
    body = value[tag]
    if tag == "$str" and type(body) is str:
        return body
    if tag == "$tree":
        return body  # the codec's own tree: checked as every stored value is
    if tag == "$dict" and type(body) is dict:
        return {"d": {k: tagged(v, f"{where}.{k}") for k, v in body.items()}}
    if tag == "$map" and type(body) is list:
        return {"m": [tagged(pair, f"{where}[{i}]") for i, pair in enumerate(body)]}
    if tag == "$enum":
        return {"e": body, "v": tagged(value.get("value"), f"{where}.value")}
    if tag == "$numpy":
        return {"np": body, **{k: v for k, v in value.items() if k != "$numpy"}}
    if tag == "$chosen":
        source = value.get("from")
        traced = _TRACED.fullmatch(source) if type(source) is str else None
        if traced is None:
            raise ExportFormatError(f"{where}.from: expected '⟨step N: ...⟩' beside $chosen")
        return {"src": _sources(traced[1], f"{where}.from"), "val": tagged(body, where)}
    name = _TAGS.get(tag)
    if name in _LEAVES:
        return {name: body}
    if name in _LISTS and type(body) is list:
        return {name: [tagged(v, f"{where}[{i}]") for i, v in enumerate(body)]}
    if name in _FIELDS and type(value.get("fields")) is dict:
        fields = {k: tagged(v, f"{where}.{k}") for k, v in value["fields"].items()}
        return {name: body, "f": fields}
    raise ExportFormatError(f"{where}: {tag!r} is not a type this file format knows")
