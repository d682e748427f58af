"""Values as data: the canonical encoding of arguments, snapshots and results.

A value becomes a tagged JSON tree and then bytes. The encoding is *canonical*: equal
values of the same types give the same bytes, whatever the insertion order of their
dicts or sets, so bytes serve as hash keys (equality checks, node ids) and a stored
value is never a pickle. Types survive the round trip: a tuple stays a tuple, ``True``
is not ``1``, ``1.0`` is not ``1``.

Plain JSON values stand for themselves except dicts; every JSON object in the tree is a
tag named by one of these keys (beside it only the keys shown with it)::

    {"t": [...]}               tuple           {"d": {str: value}}     dict, str keys
    {"m": [[k, v], ...]}       other dict      {"s": [...]}, {"fs": [...]}  set, frozenset
    {"by": base64}             bytes           {"fl": "nan" | "inf" | "-inf"}  float
    {"dt"|"date"|"time": iso}  datetimes       {"td": [days, seconds, microseconds]}
    {"dec": str}               Decimal         {"uuid": str}           UUID
    {"e": "mod:Qual", "v": x}  Enum            {"dc": "mod:Qual", "f": {...}}  dataclass
    {"pd": "mod:Qual", "f": {...}}  pydantic model
    {"np": dtype, "shape": [...], "data": base64}  numpy array or scalar (shape null)
    {"p": name}                a param         {"x": [str | {"p": name}, ...]}  text
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import importlib
import json
import math
import uuid
from typing import Any

from .errors import EncodeError
from .models import Param, Text

_PLAIN = (str, int, bool, type(None))


def encode(value: Any, where: str = "value") -> bytes:
    """Canonical bytes for ``value``; ``where`` names it in the error if it can't be."""
    if type(value) is str:  # the common case on the hot path: skip the tree walk
        return json.dumps(value, ensure_ascii=False).encode()
    tree = to_tree(value, where)
    return json.dumps(tree, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def decode(data: bytes) -> Any:
    return from_tree(json.loads(data))


def to_tree(value: Any, where: str = "value") -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is float:
        return value if math.isfinite(value) else {"fl": repr(value)}
    if kind is list:
        return [to_tree(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if kind is tuple:
        return {"t": [to_tree(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if kind is dict:
        if all(type(k) is str for k in value):
            return {"d": {k: to_tree(v, f"{where}[{k!r}]") for k, v in value.items()}}
        pairs = [
            [to_tree(k, f"{where} key"), to_tree(v, f"{where}[{k!r}]")] for k, v in value.items()
        ]
        return {"m": sorted(pairs, key=_sort_key)}
    if kind is Param:
        return {"p": value.name}
    if kind is Text:
        return {"x": [p if type(p) is str else {"p": p.name} for p in value.parts]}
    return _to_tree_other(value, where)


def _to_tree_other(value: Any, where: str) -> Any:
    if isinstance(value, enum.Enum):  # before int/str: IntEnum and StrEnum are both
        return {"e": _type_name(type(value)), "v": to_tree(value.value, where)}
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
            f.name: to_tree(getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(value)
        }
        return {"dc": _type_name(type(value)), "f": fields}
    if hasattr(value, "model_dump") and hasattr(type(value), "model_fields"):
        fields = {
            name: to_tree(getattr(value, name), f"{where}.{name}")
            for name in type(value).model_fields
        }
        return {"pd": _type_name(type(value)), "f": fields}
    if type(value).__module__ == "numpy" or type(value).__module__.startswith("numpy."):
        return _numpy_to_tree(value, where)
    # Subclasses of the plain types (a str subclass, an int subclass) lose their class
    # rather than fail: their value is what matters to an equality check.
    for base in (str, int, float, list, tuple, dict):
        if isinstance(value, base):
            return to_tree(base(value), where)  # type: ignore[arg-type]
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


def _sort_key(tree: Any) -> str:
    return json.dumps(tree, sort_keys=True, separators=(",", ":"))


def _type_name(kind: type) -> str:
    return f"{kind.__module__}:{kind.__qualname__}"


def _import_type(name: str) -> Any:
    module, _, qualname = name.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def from_tree(tree: Any) -> Any:
    kind = type(tree)
    if kind is list:
        return [from_tree(v) for v in tree]
    if kind is not dict:
        return tree
    for tag, body in tree.items():
        decoder = _DECODERS.get(tag)  # the other keys ("v", "f", ...) belong to the tag
        if decoder is not None:
            return decoder(tree, body)
    raise ValueError(f"not a muscle-mem encoding: {tree!r}")


def _decode_numpy(tree: dict[str, Any], dtype: str) -> Any:
    import numpy as np

    array = np.frombuffer(base64.b64decode(tree["data"]), dtype=np.dtype(dtype))
    if tree["shape"] is None:
        return array[0]
    return array.reshape(tree["shape"]).copy()


def _decode_fields(tree: dict[str, Any], name: str) -> Any:
    cls = _import_type(name)
    return cls(**{k: from_tree(v) for k, v in tree["f"].items()})


_DECODERS: dict[str, Any] = {
    "t": lambda tree, body: tuple(from_tree(v) for v in body),
    "d": lambda tree, body: {k: from_tree(v) for k, v in body.items()},
    "m": lambda tree, body: {from_tree(k): from_tree(v) for k, v in body},
    "s": lambda tree, body: {from_tree(v) for v in body},
    "fs": lambda tree, body: frozenset(from_tree(v) for v in body),
    "by": lambda tree, body: base64.b64decode(body),
    "fl": lambda tree, body: float(body),
    "dt": lambda tree, body: dt.datetime.fromisoformat(body),
    "date": lambda tree, body: dt.date.fromisoformat(body),
    "time": lambda tree, body: dt.time.fromisoformat(body),
    "td": lambda tree, body: dt.timedelta(*body),
    "dec": lambda tree, body: decimal.Decimal(body),
    "uuid": lambda tree, body: uuid.UUID(body),
    "e": lambda tree, body: _import_type(body)(from_tree(tree["v"])),
    "dc": _decode_fields,
    "pd": _decode_fields,
    "np": _decode_numpy,
    "p": lambda tree, body: Param(body),
    "x": lambda tree, body: Text(tuple(p if type(p) is str else Param(p["p"]) for p in body)),
}
