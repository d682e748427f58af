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

_PLAIN = (str, int, bool, type(None))


def encode(value: Any, where: str = "value") -> bytes:
    """Canonical bytes for ``value``; ``where`` names it in the error if it can't be."""
    tree = value if type(value) is str else to_tree(value, where)  # str: the hot path
    try:  # _bytes inlined: a capture is encoded at every step of every hit
        return _encoder.encode(tree)
    except (ValueError, TypeError, OverflowError) as error:  # lone surrogates, huge ints
        raise EncodeError(f"{where} cannot be stored as data: {error}") from None


def encode_call(value: Any, where: str = "value") -> bytes:
    """``value``'s canonical bytes, followed by :data:`ORDER_MARK` and its encoding in
    insertion order if some dict in it is out of canonical order (see the module)."""
    unordered: list[bool] = []
    tree = to_tree(value, where, unordered)
    if not unordered:  # every dict is in canonical order: the tree is the canonical one
        return _bytes(_encoder, tree, where)
    return encode(value, where) + ORDER_MARK + _bytes(_ordered_encoder, tree, where)


def _bytes(encoder: msgspec.json.Encoder, tree: Any, where: str) -> bytes:
    try:
        return encoder.encode(tree)
    except (ValueError, TypeError, OverflowError) as error:  # lone surrogates, huge ints
        raise EncodeError(f"{where} cannot be stored as data: {error}") from None


def decode(data: bytes, like: Any = None) -> Any:
    """The value ``data`` encodes. Dataclasses, pydantic models and enums are rebuilt as
    the class of ``like`` (a live value of the same shape) when it has one, else as the
    class named in the data, provided its module is already imported: stored bytes never
    make this process import anything."""
    if ORDER_MARK in data:  # a call's arguments, in the order they were passed
        data = data[data.index(ORDER_MARK) + 1 :]
    try:
        tree = _decoder.decode(data)
    except msgspec.DecodeError as error:
        raise DecodeError(f"not a muscle-mem encoding: {error}") from None
    return from_tree(tree, like)


def to_tree(value: Any, where: str = "value", unordered: list[bool] | None = None) -> Any:
    """``value`` as a tagged tree. With ``unordered`` (a list), dicts keep their insertion
    order, and a True is appended to it for each one out of canonical order."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is float:
        return value if math.isfinite(value) else {"fl": repr(value)}
    if kind is list:
        return [to_tree(v, f"{where}[{i}]", unordered) for i, v in enumerate(value)]
    if kind is tuple:
        return {"t": [to_tree(v, f"{where}[{i}]", unordered) for i, v in enumerate(value)]}
    if kind is dict:
        if all(type(k) is str for k in value):
            body = {k: to_tree(v, f"{where}[{k!r}]", unordered) for k, v in value.items()}
            if unordered is not None and list(body) != sorted(body):
                unordered.append(True)  # code point order: how msgspec sorts keys too
            return {"d": body}
        pairs = [
            [to_tree(k, f"{where} key"), to_tree(v, f"{where}[{k!r}]", unordered)]
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
        tree = {"src": [to_tree(source) for source in value.sources]}
        if value.value is not None:
            tree["val"] = to_tree(value.value, where, unordered)
        return tree
    if kind is FromResult:
        return {"at": [value.step, list(value.path), value.keys, value.alone]}
    return _to_tree_other(value, where, unordered)


def _to_tree_other(value: Any, where: str, unordered: list[bool] | None) -> Any:
    if isinstance(value, enum.Enum):  # before int/str: IntEnum and StrEnum are both
        return {"e": _type_name(type(value)), "v": to_tree(value.value, where, unordered)}
    if isinstance(value, (set, frozenset)):
        items = sorted((to_tree(v, f"{where} item") for v in value), key=_sort_key)
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
            f.name: to_tree(getattr(value, f.name), f"{where}.{f.name}", unordered)
            for f in dataclasses.fields(value)
        }
        return {"dc": _type_name(type(value)), "f": fields}
    if hasattr(value, "model_dump") and hasattr(type(value), "model_fields"):
        fields = {
            name: to_tree(getattr(value, name), f"{where}.{name}", unordered)
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
            return to_tree(base(value), where, unordered)  # type: ignore[arg-type]
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


def _find_type(name: str, like: Any, accept: Any) -> Any:
    """The class to rebuild a stored object as: ``like``'s class, or the named one."""
    if like is not None and accept(type(like)):
        return type(like)
    module, _, qualname = name.partition(":")
    obj: Any = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and accept(obj)):
        raise DecodeError(
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
        raise DecodeError("the stored value is a numpy array: install numpy") from None
    array = np.frombuffer(base64.b64decode(tree["data"]), dtype=np.dtype(dtype))
    value = array[0] if tree["shape"] is None else array.reshape(tree["shape"]).copy()
    if tree.get("torch"):
        torch = sys.modules.get("torch")
        if torch is None:
            raise DecodeError("the stored value is a torch tensor: import torch first")
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
