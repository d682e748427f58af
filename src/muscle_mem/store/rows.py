"""What a store reads back, checked before anything uses it.

A SQL store's rows come back from a file or a server that other processes, other
versions of muscle-mem, disks and people with a SQL prompt have written to. A row is
used only if it is one muscle-mem could have written: every column of the type it
writes, a node's content hashing to its id (:func:`~muscle_mem.models.node_id`), its
call a tool call's arguments, every encoded value well formed
(:func:`muscle_mem.codec.check`). A row that is not is left out, as if it had never been
written, and said so once per read in a :class:`~muscle_mem.errors.DamagedRowWarning`
naming the table and the rows. Export files are checked with the same functions.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from typing import Any

from ..codec import check, check_call
from ..errors import DamagedRowWarning, DecodeError
from ..models import Step, node_id

#: The snapshot slots a row may name ("end": the environment a recorded path ended in).
SLOTS = frozenset(("pre", "post", "end"))

_SHOWN = 5  # damaged rows a warning names; the rest are counted


class Damaged(Exception):
    """A row muscle-mem could not have written; the message says what is wrong."""


class Damage:
    """The damaged rows met in one read of a store, said in one warning."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.rows: list[str] = []

    def add(self, table: str, row: str, problem: Damaged) -> None:
        self.rows.append(f"{table} row {row}: {problem}")

    def warn(self, stacklevel: int = 3) -> None:
        if not self.rows:
            return
        shown = "; ".join(self.rows[:_SHOWN])
        more = len(self.rows) - _SHOWN
        warnings.warn(
            f"muscle-mem: {len(self.rows)} damaged row(s) in {self.where} were ignored "
            f"({shown}{f'; and {more} more' if more > 0 else ''}); nothing is replayed "
            "from them: runs record what they held again, and `muscle-mem rm` removes a "
            "task key's rows",
            DamagedRowWarning,
            stacklevel=stacklevel,
        )


def name(value: Any) -> str:
    """A row's key as a warning shows it: short, whatever its type."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def text(value: Any, column: str) -> str:
    if type(value) is not str:
        raise Damaged(f"{column} is {_kind(value)}, not text")
    return value


def blob(value: Any, column: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise Damaged(f"{column} is {_kind(value)}, not a blob")


def optional_blob(value: Any, column: str) -> bytes | None:
    return None if value is None else blob(value, column)


def optional_text(value: Any, column: str) -> str | None:
    return None if value is None else text(value, column)


def count(value: Any, column: str) -> int:
    if type(value) is not int or not 0 <= value < 2**63:
        raise Damaged(f"{column} is {_kind(value)}, not a count")
    return value


def whole(value: Any, column: str) -> int:
    if type(value) is not int:
        raise Damaged(f"{column} is {_kind(value)}, not a whole number")
    return value


def number(value: Any, column: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise Damaged(f"{column} is {_kind(value)}, not a number")
    return float(value)


def strings(value: Any, column: str) -> tuple[str, ...]:
    """A JSON list of strings (tags, param names), as the stores write them."""
    try:
        parsed = json.loads(text(value, column))
    except (ValueError, RecursionError):
        raise Damaged(f"{column} is not JSON: {name(value)}") from None
    if type(parsed) is not list or not all(type(item) is str for item in parsed):
        raise Damaged(f"{column} is not a JSON list of strings: {name(value)}")
    return tuple(parsed)


def step(tool: Any, code: Any, call: Any) -> Step:
    return Step(text(tool, "tool"), text(code, "code"), blob(call, "call"))


def identified(nid: str, parent: str, step: Step) -> None:
    """Content that does not hash to its node's id (a flipped byte, a row moved under
    another parent) is damaged: replaying it would replay what nobody recorded."""
    if node_id(parent, step) != nid:
        raise Damaged("its content does not match its id")


def end_digest(nid: str, result: bytes | None) -> bytes:
    """What a recorded end's row keeps beside its result: a digest of the two, so a
    result changed into another one that still decodes, or a step's row turned into an
    end, is caught with no secret (a node's id hashes its step, not its result). Kept
    by every writer, checked by every reader; with a secret the result's HMAC is
    checked too."""
    name = nid.encode()
    digest = hashlib.blake2b(len(name).to_bytes(8, "little") + name, digest_size=16)
    digest.update(b"\0" if result is None else b"\1" + result)
    return digest.digest()


def checked_end(nid: str, result: bytes | None, digest: Any) -> None:
    if digest is None or optional_blob(digest, "end_digest") != end_digest(nid, result):
        raise Damaged("it is an end whose result or terminal flag does not match its digest")


def checked_call(step: Step) -> None:
    try:
        check_call(step.call)
    except DecodeError as error:
        raise Damaged(f"call: {error}") from None


def checked_value(data: bytes, column: str, *, ordered: bool = False) -> None:
    try:
        check(data, ordered=ordered)
    except DecodeError as error:
        raise Damaged(f"{column}: {error}") from None


def slot(value: Any) -> str:
    if value not in SLOTS:
        raise Damaged(f"which is {name(value)!r}, not one of {', '.join(sorted(SLOTS))}")
    return str(value)


def _kind(value: Any) -> str:
    return "NULL" if value is None else f"{type(value).__name__} {name(repr(value))}"
