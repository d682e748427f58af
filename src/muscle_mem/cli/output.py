"""How the command prints: aligned tables, JSON, progress on a terminal, short figures."""

from __future__ import annotations

import json
import re
import sys
import time
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


def table(headers: list[str], rows: list[list[str]], *, total: bool = False) -> None:
    """Columns aligned, numbers to the right; with ``total`` the last row is set apart."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    numeric = [all(_numeric(r[i]) for r in rows) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    print(line(headers))
    for i, row in enumerate(rows):
        if total and i == len(rows) - 1:
            print("  ".join("-" * w for w in widths))
        print(line(row))


def _numeric(cell: str) -> bool:
    return bool(re.fullmatch(r"[-$]*[\d,.]+(%|s|ms|µs|min|h)?( \(step \d+\))?|-", cell))


def short(task_key: str) -> str:
    """The first 12 hex digits of a task key, without its algorithm tag."""
    if not task_key.startswith(TASK_KEY_PREFIX):
        return task_key
    return task_key[len(TASK_KEY_PREFIX) : len(TASK_KEY_PREFIX) + 12]


def clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def seconds(value: float) -> str:
    sign, value = ("-" if value < 0 else ""), abs(value)
    if value < 1e-3:
        return f"{sign}{value * 1e6:.0f}µs"
    if value < 1:
        return f"{sign}{value * 1e3:.0f}ms"
    if value < 120:
        return f"{sign}{value:.1f}s"
    if value < 7200:
        return f"{sign}{value / 60:.1f}min"
    return f"{sign}{value / 3600:.1f}h"


def ago(timestamp: float) -> str:
    age = time.time() - timestamp
    if age < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if age >= size:
            return f"{age / size:.0f}{unit} ago"
    return "just now"


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat()
