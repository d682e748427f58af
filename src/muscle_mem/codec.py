"""Values as data: the canonical encoding of arguments, snapshots and results.

A value becomes a tagged JSON tree and then bytes (msgspec's JSON: see below why).
The encoding is *canonical*: equal values of the same types give the same bytes,
whatever the insertion order of their dicts or sets, so bytes serve as hash keys
(equality checks, node ids), and a stored value is never a pickle. Types survive the
round trip: a tuple stays a tuple, ``True`` is not ``1``, ``1.0`` is not ``1``.

Plain JSON values stand for themselves except dicts; every JSON object in the tree is a
tag named by one of these keys (beside it only the keys shown with it)::

    {"t": [...]}               tuple           {"d": {str: value}}     dict, str keys
    {"m": [[k, v], ...]}       other dict      {"s": [...]}, {"fs": [...]}  set, frozenset
    {"by": base64}             bytes           {"fl": "nan" | "inf" | "-inf"}  float
    {"dt"|"date"|"time": iso}  datetimes       {"td": [days, seconds, microseconds]}
    {"dec": str}               Decimal         {"uuid": str}           UUID
    {"e": "mod:Qual", "v": x}  Enum            {"dc": "mod:Qual", "f": {...}}  dataclass
    {"pd": "mod:Qual", "f": {...}}  pydantic model
    {"np": dtype, "shape": [...], "data": base64}  numpy array or scalar (shape null),
                               with "torch": true for a torch tensor
    {"p": name}                a param         {"x": [str | {"p": name}, ...]}  text
    {"r": argument}            a sensitive argument that was not a param (not stored)
    {"src": [source, ...], "val": x}  a value and where it came from ("val" only where
                               no source pins it down); a source is a param or
    {"at": [step, [field | null, ...], keys, alone]}  a location in an earlier result

A tool call's arguments are also handed back on replay, and a tool may iterate a dict
it was given, so :func:`encode_call` keeps the order they were passed in beside the
canonical bytes: when some dict in the call is not in canonical order, the canonical
encoding is followed by a NUL byte and the call encoded again with every dict in
insertion order (JSON never holds a raw NUL, and bytes written before this had none).
:func:`decode` reads the ordered part when there is one. Identity stays canonical:
a node id hashes only the part before the NUL (models.node_id), so two calls that
differ in key order alone are one step, which replays the order it was recorded with
(the last one written, in a SQL store). Why a second encoding and not a list of key
orders: it costs bytes only for calls whose dicts are out of order, usually small, and
it is decoded by the same code as everything else. Snapshots and task keys stay
canonical only: they are identities, compared and hashed, never handed to a tool.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import math
import sys
import uuid
from typing import Any

import msgspec

from .errors import DecodeError, EncodeError
from .models import FromResult, Param, Redacted, Text, Traced

# Why msgspec: the tagged tree above is what makes the encoding canonical and
# type-faithful (tuples, sets, True vs 1), and that walk has to be ours. What msgspec
# adds is the bytes: its C encoder and decoder are 10-15x faster than the stdlib json
# module on our trees (measured on small captures and 100-row tables), and encoding
# sits on the replay hot path, once per step capture. It is small, has no dependencies
# of its own, and sorts dict keys for us (``order="deterministic"``). Its typed
# conversion is not used: a stored value is rebuilt from our tags, and into the class
# of the live value it is compared with (``decode(data, like=...)``).
_encoder = msgspec.json.Encoder(order="deterministic")
_ordered_encoder = msgspec.json.Encoder()  # dicts as they are: in insertion order
_decoder = msgspec.json.Decoder()  # keeps a JSON object's order in the dict it makes
ORDER_MARK = b"\0"  # between a call's canonical and ordered encodings

# How deeply containers may nest in a value. Data is rarely ten levels deep; the bound is
# there so that a value which contains itself, or a pathological one, is an EncodeError
# naming it rather than a RecursionError from somewhere inside, and so that whatever is
# stored can be decoded again: decoding takes about three stack frames a level, and at
# this depth it fits Python's default limit of 1,000 with room for the caller's frames.
MAX_DEPTH = 100

_PLAIN = (str, int, bool, type(None))


def encode(value: Any, where: str = "value") -> bytes:
    """Canonical bytes for ``value``; ``where`` names it in the error if it can't be."""
    tree = value if type(value) is str else _checked_tree(value, where)  # str: the hot path
    try:  # _bytes inlined: a capture is encoded at every step of every hit
        return _encoder.encode(tree)
    except (ValueError, TypeError, OverflowError) as error:  # lone surrogates, huge ints
        raise EncodeError(f"{where} cannot be stored as data: {error}") from None


def encode_call(value: Any, where: str = "value") -> bytes:
    """``value``'s canonical bytes, followed by :data:`ORDER_MARK` and its encoding in
    insertion order if some dict in it is out of canonical order (see the module)."""
    unordered: list[bool] = []
    tree = _checked_tree(value, where, unordered)
    if not unordered:  # every dict is in canonical order: the tree is the canonical one
        return _bytes(_encoder, tree, where)
    return encode(value, where) + ORDER_MARK + _bytes(_ordered_encoder, tree, where)


def _bytes(encoder: msgspec.json.Encoder, tree: Any, where: str) -> bytes:
    try:
        return encoder.encode(tree)
    except (ValueError, TypeError, OverflowError) as error:  # lone surrogates, huge ints
        raise EncodeError(f"{where} cannot be stored as data: {error}") from None


class _TooDeep(Exception):
    """Raised inside :func:`to_tree` past :data:`MAX_DEPTH`; the caller, which knows the
    value's name, says which value it was."""


def _checked_tree(value: Any, where: str, unordered: list[bool] | None = None) -> Any:
    try:
        return to_tree(value, where, unordered)
    except (_TooDeep, RecursionError):
        # RecursionError too: a caller already deep in its own stack may run out before
        # MAX_DEPTH, and a type added to to_tree might not count its levels.
        raise EncodeError(
            f"{where} is nested more than {MAX_DEPTH} levels deep, or contains itself, so "
            "muscle-mem cannot store it as data; pass a flatter value (or an id it can "
            "look up)"
        ) from None


def decode(data: bytes, like: Any = None) -> Any:
    """The value ``data`` encodes. Dataclasses, pydantic models and enums are rebuilt as
    the class of ``like`` (a live value of the same shape) when it has one, else as the
    class named in the data, provided its module is already imported: stored bytes never
    make this process import anything."""
    tree = _parse(data)
    try:
        return from_tree(tree, like)
    except DecodeError:
        raise
    except RecursionError:
        raise DecodeError("not a muscle-mem encoding: nested too deeply to decode") from None
    except Exception as error:
        # Stored bytes are read back from disks, servers and files people edit: whatever
        # they hold, a caller catches one error (a malformed tag's body, or a class whose
        # constructor refuses the stored fields).
        raise DecodeError(f"not a muscle-mem encoding: {type(error).__name__}: {error}") from None


def _parse(data: Any) -> Any:
    """The JSON tree of stored bytes (a call's ordered part, when it has one)."""
    if not isinstance(data, bytes):
        raise DecodeError(f"not a muscle-mem encoding: {type(data).__name__}, not bytes")
    if ORDER_MARK in data:  # a call's arguments, in the order they were passed
        data = data[data.index(ORDER_MARK) + 1 :]
    return _json(data)


def _json(data: bytes) -> Any:
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as error:
        raise DecodeError(f"not a muscle-mem encoding: {error}") from None
    except RecursionError:
        raise DecodeError("not a muscle-mem encoding: nested too deeply to decode") from None


def to_tree(
    value: Any, where: str = "value", unordered: list[bool] | None = None, depth: int = 0
) -> Any:
    """``value`` as a tagged tree. With ``unordered`` (a list), dicts keep their insertion
    order, and a True is appended to it for each one out of canonical order. ``depth``
    counts the containers around ``value``, up to :data:`MAX_DEPTH`."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is float:
        return value if math.isfinite(value) else {"fl": repr(value)}
    if depth >= MAX_DEPTH:
        raise _TooDeep
    depth += 1
    if kind is list:
        return [to_tree(v, f"{where}[{i}]", unordered, depth) for i, v in enumerate(value)]
    if kind is tuple:
        return {"t": [to_tree(v, f"{where}[{i}]", unordered, depth) for i, v in enumerate(value)]}
    if kind is dict:
        if all(type(k) is str for k in value):
            body = {k: to_tree(v, f"{where}[{k!r}]", unordered, depth) for k, v in value.items()}
            if unordered is not None and list(body) != sorted(body):
                unordered.append(True)  # code point order: how msgspec sorts keys too
            return {"d": body}
        pairs = [
            [
                to_tree(k, f"{where} key", None, depth),
                to_tree(v, f"{where}[{k!r}]", unordered, depth),
            ]
            for k, v in value.items()
        ]
        canonical = sorted(pairs, key=_sort_key)
        if unordered is None:
            return {"m": canonical}
        if canonical != pairs:
            unordered.append(True)
        return {"m": pairs}
    if kind is Param:
        return {"p": value.name}
    if kind is Redacted:
        return {"r": value.argument}
    if kind is Text:
        return {"x": [p if type(p) is str else {"p": p.name} for p in value.parts]}
    if kind is Traced:
        tree = {"src": [to_tree(source, where, None, depth) for source in value.sources]}
        if value.value is not None:
            tree["val"] = to_tree(value.value, where, unordered, depth)
        return tree
    if kind is FromResult:
        return {"at": [value.step, list(value.path), value.keys, value.alone]}
    return _to_tree_other(value, where, unordered, depth)


def _to_tree_other(value: Any, where: str, unordered: list[bool] | None, depth: int) -> Any:
    if isinstance(value, enum.Enum):  # before int/str: IntEnum and StrEnum are both
        return {"e": _type_name(type(value)), "v": to_tree(value.value, where, unordered, depth)}
    if isinstance(value, (set, frozenset)):
        items = sorted((to_tree(v, f"{where} item", None, depth) for v in value), key=_sort_key)
        return {"fs" if isinstance(value, frozenset) else "s": items}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"by": _b64(bytes(value))}
    if isinstance(value, dt.datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"time": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"td": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, decimal.Decimal):
        return {"dec": str(value)}
    if isinstance(value, uuid.UUID):
        return {"uuid": str(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            f.name: to_tree(getattr(value, f.name), f"{where}.{f.name}", unordered, depth)
            for f in dataclasses.fields(value)
        }
        return {"dc": _type_name(type(value)), "f": fields}
    if hasattr(value, "model_dump") and hasattr(type(value), "model_fields"):
        fields = {
            name: to_tree(getattr(value, name), f"{where}.{name}", unordered, depth)
            for name in type(value).model_fields
        }
        return {"pd": _type_name(type(value)), "f": fields}
    module = type(value).__module__
    if module == "numpy" or module.startswith("numpy."):
        return _numpy_to_tree(value, where)
    if module == "torch" and hasattr(value, "numpy"):
        return {**_numpy_to_tree(value.detach().cpu().numpy(), where), "torch": True}
    # Subclasses of the plain types (a str subclass, an int subclass) lose their class
    # rather than fail: their value is what matters to an equality check.
    for base in (str, int, float, list, tuple, dict):
        if isinstance(value, base):
            return to_tree(base(value), where, unordered, depth)  # type: ignore[arg-type]
    raise EncodeError(
        f"{where} is a {type(value).__qualname__}, which muscle-mem cannot store as data. "
        "Use primitives, lists, tuples, dicts, sets, dataclasses, enums, datetimes, bytes, "
        "pydantic models or numpy arrays (or convert it before passing it)."
    )


def _numpy_to_tree(value: Any, where: str) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise EncodeError(f"{where} is a numpy array of Python objects; use a numeric dtype")
        data = np.ascontiguousarray(value)
        return {"np": data.dtype.str, "shape": list(data.shape), "data": _b64(data.tobytes())}
    if isinstance(value, np.generic):
        return {"np": value.dtype.str, "shape": None, "data": _b64(value.tobytes())}
    raise EncodeError(f"{where} is a numpy {type(value).__qualname__}, which cannot be stored")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _sort_key(tree: Any) -> bytes:
    return _encoder.encode(tree)


def _type_name(kind: type) -> str:
    return f"{kind.__module__}:{kind.__qualname__}"


def _missing(message: str) -> DecodeError:
    """The error for bytes that are well formed but need what this process lacks."""
    error = DecodeError(message)
    error.missing = True
    return error


def _find_type(name: str, like: Any, accept: Any) -> Any:
    """The class to rebuild a stored object as: ``like``'s class, or the named one."""
    if like is not None and accept(type(like)):
        return type(like)
    module, _, qualname = name.partition(":")
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and accept(obj)):
        raise _missing(
            f"the stored value is a {qualname} from {module}, which is not loaded in this "
            "process: import it before replaying"
        )
    return obj


def _is_model(cls: type) -> bool:
    return dataclasses.is_dataclass(cls) or hasattr(cls, "model_fields")


def _is_enum(cls: type) -> bool:
    return issubclass(cls, enum.Enum)


def _item(like: Any, index: int) -> Any:
    if isinstance(like, (list, tuple)) and index < len(like):
        return like[index]
    return None


def from_tree(tree: Any, like: Any = None) -> Any:
    kind = type(tree)
    if kind is list:
        return [from_tree(v, _item(like, i)) for i, v in enumerate(tree)]
    if kind is not dict:
        return tree
    for tag, body in tree.items():
        decoder = _DECODERS.get(tag)  # the other keys ("v", "f", ...) belong to the tag
        if decoder is not None:
            return decoder(tree, body, like)
    raise DecodeError(f"not a muscle-mem encoding: {tree!r}")


def _decode_numpy(tree: dict[str, Any], dtype: str, like: Any) -> Any:
    try:
        import numpy as np
    except ImportError:
        raise _missing("the stored value is a numpy array: install numpy") from None
    array = np.frombuffer(base64.b64decode(tree["data"]), dtype=np.dtype(dtype))
    value = array[0] if tree["shape"] is None else array.reshape(tree["shape"]).copy()
    if tree.get("torch"):
        torch = sys.modules.get("torch")
        if torch is None:
            raise _missing("the stored value is a torch tensor: import torch first")
        return torch.from_numpy(value)
    return value


def _decode_fields(tree: dict[str, Any], name: str, like: Any) -> Any:
    cls = _find_type(name, like, _is_model)
    fields = {k: from_tree(v, getattr(like, k, None)) for k, v in tree["f"].items()}
    return cls(**fields)


def _decode_enum(tree: dict[str, Any], name: str, like: Any) -> Any:
    return _find_type(name, like, _is_enum)(from_tree(tree["v"]))


def _decode_traced(tree: dict[str, Any], body: Any, like: Any) -> Traced:
    sources = tuple(from_tree(source) for source in body) if type(body) is list else ()
    if not sources or not all(type(s) in (Param, FromResult) for s in sources):
        raise DecodeError(f"not a muscle-mem encoding: a traced value's sources {body!r}")
    return Traced(sources, from_tree(tree["val"]) if "val" in tree else None)


def _decode_location(tree: dict[str, Any], body: Any, like: Any) -> FromResult:
    try:
        step, path, keys, alone = body
        if not (
            type(step) is int
            and step >= 0
            and type(path) is list
            and all(part is None or type(part) is str for part in path)
            and type(keys) is bool
            and type(alone) is bool
        ):
            raise ValueError
    except (TypeError, ValueError):
        raise DecodeError(f"not a muscle-mem encoding: a result location {body!r}") from None
    return FromResult(step, tuple(path), keys, alone)


def _decode_dict(body: dict[str, Any], like: Any) -> dict[str, Any]:
    hint = like if isinstance(like, dict) else {}
    return {k: from_tree(v, hint.get(k)) for k, v in body.items()}


_DECODERS: dict[str, Any] = {
    "t": lambda tree, body, like: tuple(from_tree(v, _item(like, i)) for i, v in enumerate(body)),
    "d": lambda tree, body, like: _decode_dict(body, like),
    "m": lambda tree, body, like: {from_tree(k): from_tree(v) for k, v in body},
    "s": lambda tree, body, like: {from_tree(v) for v in body},
    "fs": lambda tree, body, like: frozenset(from_tree(v) for v in body),
    "by": lambda tree, body, like: base64.b64decode(body),
    "fl": lambda tree, body, like: float(body),
    "dt": lambda tree, body, like: dt.datetime.fromisoformat(body),
    "date": lambda tree, body, like: dt.date.fromisoformat(body),
    "time": lambda tree, body, like: dt.time.fromisoformat(body),
    "td": lambda tree, body, like: dt.timedelta(*body),
    "dec": lambda tree, body, like: decimal.Decimal(body),
    "uuid": lambda tree, body, like: uuid.UUID(body),
    "e": _decode_enum,
    "dc": _decode_fields,
    "pd": _decode_fields,
    "np": _decode_numpy,
    "p": lambda tree, body, like: Param(body),
    "r": lambda tree, body, like: Redacted(body),
    "src": _decode_traced,
    "at": _decode_location,
    "x": lambda tree, body, like: Text(tuple(p if type(p) is str else Param(p["p"]) for p in body)),
}


# -- checking stored bytes ----------------------------------------------------------------
#
# What a store or an import file hands back is checked before anything replays it
# (stores call these on load, portable on import). Checking walks the tree without
# building values of the user's classes (decoding does that, lazily, when a step or a
# compare needs one): containers are walked here, leaves go through their decoders.


def _sequence(tree: dict[str, Any], body: Any) -> list[Any]:
    if type(body) is not list:
        raise DecodeError(f"not a muscle-mem encoding: a list was expected in {tree!r:.80}")
    return body


def _mapping(tree: dict[str, Any], body: Any) -> Any:
    if type(body) is not dict:
        raise DecodeError(f"not a muscle-mem encoding: an object was expected in {tree!r:.80}")
    return body.values()


def _members(tree: dict[str, Any], body: Any) -> list[Any]:
    items = _sequence(tree, body)
    if not all(_hashable(item) for item in items):
        raise DecodeError(f"not a muscle-mem encoding: an unhashable set item in {tree!r:.80}")
    return items


def _pairs(tree: dict[str, Any], body: Any) -> list[Any]:
    pairs = _sequence(tree, body)
    if not all(type(pair) is list and len(pair) == 2 and _hashable(pair[0]) for pair in pairs):
        raise DecodeError(f"not a muscle-mem encoding: [key, value] pairs expected: {tree!r:.80}")
    return [item for pair in pairs for item in pair]


def _hashable(tree: Any) -> bool:
    """Whether a set item's or a dict key's tree decodes to something hashable, as far as
    its outer tag says (what is inside a tuple is checked when it is decoded)."""
    if type(tree) is list:
        return False
    return type(tree) is not dict or not tree.keys() & {"d", "m", "s"}


def _named(tree: dict[str, Any], name: Any, inner: str) -> list[Any]:
    if type(name) is not str or ":" not in name or inner not in tree:
        raise DecodeError(f"not a muscle-mem encoding: {tree!r:.80}")
    return [tree[inner]]


# The tags whose bodies hold other values: how to reach them. Every other tag is a leaf
# (or a tag added later), checked by decoding it.
_CONTAINERS: dict[str, Any] = {
    "t": _sequence,
    "s": _members,
    "fs": _members,
    "d": _mapping,
    "m": _pairs,
    "e": lambda tree, name: _named(tree, name, "v"),
    "dc": lambda tree, name: list(_mapping(tree, _named(tree, name, "f")[0])),
    "pd": lambda tree, name: list(_mapping(tree, _named(tree, name, "f")[0])),
}
_NAMES = ("p", "r")  # leaves whose body is a name


def _check_tree(tree: Any) -> None:
    """Raise :class:`DecodeError` unless ``tree`` is one :func:`from_tree` can read."""
    if type(tree) is not list and type(tree) is not dict:
        return  # str, int, float, bool and None stand for themselves
    try:
        _walk(tree)
    except RecursionError:
        # Deeper than MAX_DEPTH ever writes: not ours, however it parsed.
        raise DecodeError("not a muscle-mem encoding: nested too deeply to decode") from None


def _walk(node: Any) -> None:
    # A list or a tag. Recursion (cheaper than a stack of our own for the shallow trees
    # of real data) over what holds more than a plain value; tuples and str-keyed dicts,
    # most of any tree, are walked inline.
    if type(node) is list:
        for item in node:
            if type(item) is list or type(item) is dict:
                _walk(item)
        return
    for tag in node:
        if tag in _DECODERS:
            break
    else:
        raise DecodeError(f"not a muscle-mem encoding: {node!r:.80}")
    body = node[tag]
    if tag == "d" and type(body) is dict:
        items: Any = body.values()
    elif tag == "t" and type(body) is list:
        items = body
    else:
        reach = _CONTAINERS.get(tag)
        if reach is None:
            _leaf(node, tag, body)
            return
        items = reach(node, body)
    for item in items:
        if type(item) is list or type(item) is dict:
            _walk(item)


def _leaf(node: dict[str, Any], tag: str, body: Any) -> None:
    if tag in _NAMES and type(body) is not str:
        raise DecodeError(f"not a muscle-mem encoding: {node!r:.80}")
    try:
        _DECODERS[tag](node, body, None)  # a leaf: decoding it is checking it
    except DecodeError as error:
        if not error.missing:
            raise
    except Exception as error:
        raise DecodeError(
            f"not a muscle-mem encoding: {node!r:.80} ({type(error).__name__}: {error})"
        ) from None


def _canonical(tree: Any) -> Any:
    """A tree as the canonical encoding has it: maps' pairs sorted (``_encoder`` sorts
    the keys of JSON objects itself). Every JSON object is a tag but the bodies of
    ``d`` and of ``f`` (dataclass and model fields), whose keys are the user's."""
    if type(tree) is list:
        return [_canonical(v) for v in tree]
    if type(tree) is not dict:
        return tree
    tag = next((key for key in tree if key in _DECODERS), None)
    canonical: dict[str, Any] = {}
    for key, value in tree.items():
        if key == "m" == tag:
            pairs = ([_canonical(k), _canonical(v)] for k, v in value)
            canonical[key] = sorted(pairs, key=_sort_key)
        elif (key == "d" == tag or (key == "f" and tag in ("dc", "pd"))) and type(value) is dict:
            canonical[key] = {name: _canonical(v) for name, v in value.items()}
        else:
            canonical[key] = _canonical(value)
    return canonical


def check(data: Any, *, ordered: bool = False) -> Any:
    """Raise :class:`DecodeError` unless ``data`` is bytes this codec could have written;
    return its JSON tree. A class this process has not loaded, or numpy missing, is no
    fault of the bytes and passes (decoding says so when it is asked to).

    With ``ordered`` (a call's arguments, an end's result), ``data`` may hold an encoding
    in insertion order after :data:`ORDER_MARK`: it must be the canonical part's value,
    reordered, since ids hash the canonical part while decoding reads the other.
    """
    if not isinstance(data, bytes):
        raise DecodeError(f"not a muscle-mem encoding: {type(data).__name__}, not bytes")
    canonical, mark, rest = data.partition(ORDER_MARK)
    if mark and not ordered:
        raise DecodeError("not a muscle-mem encoding: a NUL byte in a canonical encoding")
    tree = _json(canonical)
    _check_tree(tree)
    if not mark:
        return tree
    tree = _json(rest)
    _check_tree(tree)
    try:
        same = _encoder.encode(_canonical(tree)) == canonical
    except (RecursionError, TypeError, ValueError):
        same = False
    if not same:
        raise DecodeError(
            "not a muscle-mem encoding: its ordered part is not the value its canonical "
            "part encodes"
        )
    return tree


def encode_tree(tree: Any, *, ordered: bool = False) -> bytes:
    """The bytes of a tagged tree as :func:`check` returns it: canonical, or with
    ``ordered`` (a call's arguments, an end's result) as :func:`encode_call` writes them,
    the tree's own order after :data:`ORDER_MARK` when some dict in it is out of
    canonical order. For files that hold values as trees (``muscle-mem export --dir``).
    """
    try:
        canonical = _encoder.encode(_canonical(tree))
        if not ordered or not _out_of_order(tree):
            return canonical
        return canonical + ORDER_MARK + _ordered_encoder.encode(tree)
    except (RecursionError, TypeError, ValueError, OverflowError) as error:
        raise EncodeError(f"not a value muscle-mem can encode: {error}") from None


def _out_of_order(tree: Any) -> bool:
    """Whether a dict in ``tree`` is out of canonical order, as :func:`to_tree` tells
    (walked as :func:`_canonical` walks it: the user's keys are never tags)."""
    if type(tree) is list:
        return any(_out_of_order(v) for v in tree)
    if type(tree) is not dict:
        return False
    tag = next((key for key in tree if key in _DECODERS), None)
    for key, value in tree.items():
        if key == "d" == tag and type(value) is dict:
            if list(value) != sorted(value) or any(map(_out_of_order, value.values())):
                return True
        elif key == "f" and tag in ("dc", "pd") and type(value) is dict:
            if any(map(_out_of_order, value.values())):
                return True
        elif key == "m" == tag and type(value) is list:
            if value != sorted(value, key=_sort_key) or _out_of_order(value):
                return True
        elif _out_of_order(value):
            return True
    return False


def check_call(data: Any) -> None:
    """:func:`check` for a step's call: ``(args, kwargs)``, a tuple and a dict by name."""
    tree = check(data, ordered=True)
    body = tree.get("t") if type(tree) is dict and len(tree) == 1 else None
    if not (
        type(body) is list
        and len(body) == 2
        and type(body[0]) is dict
        and list(body[0]) == ["t"]
        and type(body[1]) is dict
        and list(body[1]) == ["d"]
    ):
        raise DecodeError(
            "not a tool call's arguments: expected a tuple of positional arguments and a "
            f"dict of keyword arguments, got {tree!r:.80}"
        )
