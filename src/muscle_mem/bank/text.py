"""What recall searches: one document per record, reduced to lower-case words.

Every backend indexes and queries the words this module finds, never raw text, so
SQLite's FTS5, PostgreSQL's full-text search and the memory store agree on what matches,
and no user text reaches a query parser (quotes, AND, ``*`` are not words).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Letters and digits: an underscore or a hyphen splits words, as FTS5 does.
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def flatten(value: Any) -> str:
    """Keys and values of JSON data as text: ``{"age_group": "25-35"}`` finds "age"."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return " ".join(f"{key} {flatten(item)}" for key, item in value.items())
    if isinstance(value, list):
        return " ".join(flatten(item) for item in value)
    return str(value)


@dataclass(frozen=True)
class Doc:
    """What recall finds a record by; ``text`` is shown, ``words`` are matched."""

    type: str
    id: str
    scope: str | None
    kind: str | None
    at: float
    text: str

    @property
    def words(self) -> str:
        return " ".join(words(f"{self.kind or ''} {self.text}"))
