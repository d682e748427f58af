"""How the command prints: tables that fit the terminal, JSON, progress on a terminal,
short figures."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TextIO

from ..models import TASK_KEY_PREFIX


class Progress:
    """A progress bar on stderr when it is a terminal; nothing when piped.

    ``update`` is the ``progress(done, total)`` callback the library's long calls take,
    so a bar can start before its total is known.
    """

    def __init__(self, label: str, total: int = 0, stream: TextIO | None = None) -> None:
        self.label, self.total, self.count = label, total, 0
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()

    @property
    def shown(self) -> bool:
        return self.terminal and self.total > 1

    def step(self) -> None:
        self.update(self.count + 1, self.total)

    def update(self, done: int, total: int) -> None:
        self.count, self.total = done, total
        if self.shown:
            width = 30
            filled = width * self.count // max(self.total, 1)
            bar = "█" * filled + "·" * (width - filled)
            self.stream.write(f"\r{self.label} {bar} {self.count}/{self.total}")
            self.stream.flush()

    def done(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def dump(data: Any) -> int:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


def terminal_width() -> int | None:
    """How wide the output may be: ``$COLUMNS`` when set, else the terminal's width;
    None (no limit) when stdout is not a terminal, so a file or ``grep`` gets every word."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


@dataclass(frozen=True)
class Column:
    """A table's column. When the table is wider than the terminal, the columns with the
    lowest ``keep`` go first (None: never); a ``flex`` column (a task's text, a reason)
    gives up width before any goes, down to ``least`` characters, its cells cut with "…",
    or with ``wrap`` continued on the lines below."""

    header: str
    keep: int | None = None
    flex: bool = False
    least: int = 20
    wrap: bool = False


def table(
    columns: Sequence[Column | str],
    rows: list[list[str]],
    *,
    total: bool = False,
    width: int | None = None,
) -> None:
    """Columns aligned, numbers to the right, fit into ``width`` (None: as wide as the
    cells are); with ``total`` the last row is set apart."""
    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    rows = [[" ".join(cell.split()) for cell in row] for row in rows]  # one line per row
    natural = [max(len(c.header), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    shown, widths = _fit(cols, natural, width)
    numeric = [all(_numeric(r[i]) for r in rows) for i in shown]

    def lines(cells: list[str]) -> list[str]:
        """A row's lines: one, or more where a wrapped cell goes on."""
        parts = [
            (textwrap.wrap(cells[i], w) or [""]) if cols[i].wrap else [clip(cells[i], w)]
            for i, w in zip(shown, widths, strict=True)
        ]
        out = []
        for k in range(max(map(len, parts))):
            line = []
            for part, w, n in zip(parts, widths, numeric, strict=True):
                cell = part[k] if k < len(part) else ""
                line.append(cell.rjust(w) if n else cell.ljust(w))
            out.append("  ".join(line).rstrip())
        return out

    print(*lines([c.header for c in cols]), sep="\n")
    for i, row in enumerate(rows):
        if total and i == len(rows) - 1:
            print("  ".join("-" * w for w in widths))
        print(*lines(row), sep="\n")


def _fit(cols: list[Column], natural: list[int], width: int | None) -> tuple[list[int], list[int]]:
    """Which columns to show and how wide each is, to fit ``width``."""
    shown = list(range(len(cols)))
    if width is None or _span(natural) <= width:
        return shown, natural

    def least(i: int) -> int:
        return (
            min(natural[i], max(cols[i].least, len(cols[i].header))) if cols[i].flex else natural[i]
        )

    # Drop the least kept column (the rightmost of equals) while even flex columns at
    # their least do not fit.
    while _span([least(i) for i in shown]) > width:
        droppable = [i for i in shown if cols[i].keep is not None]
        if not droppable:
            break
        shown.remove(min(reversed(droppable), key=lambda i: _rank(cols[i])))
    widths = {i: least(i) for i in shown}
    # The room left widens the flex columns, the most kept first: a task's text before
    # a reason that wraps.
    room = max(width - _span(list(widths.values())), 0)
    for i in sorted((i for i in shown if cols[i].flex), key=lambda i: -_rank(cols[i])):
        grow = min(room, natural[i] - widths[i])
        widths[i] += grow
        room -= grow
    return shown, [widths[i] for i in shown]


def _rank(col: Column) -> float:
    return float("inf") if col.keep is None else col.keep


def _span(widths: list[int]) -> int:
    return sum(widths) + 2 * max(len(widths) - 1, 0)


def _numeric(cell: str) -> bool:
    return bool(re.fullmatch(r"[-$]*[\d,.]+(%|s|ms|µs|min|h)?( \(step \d+\))?|-", cell))


def short(task_key: str) -> str:
    """The first 12 hex digits of a task key, without its algorithm tag."""
    if not task_key.startswith(TASK_KEY_PREFIX):
        return task_key
    return task_key[len(TASK_KEY_PREFIX) : len(TASK_KEY_PREFIX) + 12]


def clip(text: str, width: int | None) -> str:
    """``text`` on one line, cut to ``width`` (None: whole) with "…" where it was cut."""
    return cut(" ".join(text.split()), width)


def cut(line: str, width: int | None) -> str:
    """``line`` cut to ``width`` (None: whole) with "…" where it was cut."""
    return line if width is None or len(line) <= width else line[: max(width - 1, 0)] + "…"


def wrap(text: str, width: int | None, first: str, then: str) -> str:
    """``text`` wrapped to ``width`` (None: on one line), its first line after ``first``
    and the others after ``then``."""
    if width is None:
        return first + " ".join(text.split())
    room = max(width, len(then) + 20)
    return "\n".join(textwrap.wrap(text, room, initial_indent=first, subsequent_indent=then))


def ago(timestamp: float) -> str:
    age = time.time() - timestamp
    if age < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if age >= size:
            return f"{age / size:.0f}{unit} ago"
    return "just now"


def iso(timestamp: float) -> str:
    """The one way JSON output spells a time: ISO 8601 in UTC with its zone, always to
    the microsecond ("2026-11-30T17:08:04.120000+00:00"), so nothing a store kept is lost
    and the strings sort as the times do."""
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="microseconds")
