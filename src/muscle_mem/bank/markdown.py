"""The memory bank as folders of markdown, for people who keep their notes that way.

``muscle-mem bank export --markdown memory-bank/`` writes the layout a team keeping a
manual memory bank uses, derived from what the bank holds::

    memory-bank/
    ├── README.md                      the entities, with their latest attributes
    ├── daily-logs/2026-05-01.md       what happened that day, in order: snapshots,
    │                                  actions, outcomes, learnings, decisions, runs
    ├── conversion-data/campaign-x.md  an entity's metrics over time, one row a snapshot
    ├── optimization-wins/campaign-x.md  its actions: expected vs actual, wins first
    ├── learnings/brand-voyage.md      a scope's learnings by kind (superseded struck)
    └── decisions/brand-voyage.md      a scope's decisions, context and reasoning

One way: markdown is for reading; ``bank export`` (JSON) is what imports back. Stable
for diffs: the same bank writes the same bytes (times in UTC, records in time order,
then by id), a file is rewritten only when its content changes, and files of the
export that the bank no longer fills are removed. Only files that start with
:data:`MARK` are ever removed or replaced: notes kept beside them stay.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..models import RunRecord
from .model import Action, Decision, Entity, Learning, Snapshot, describe_impact

MARK = "<!-- written by `muscle-mem bank export --markdown`: edits here are replaced -->"


def write(directory: str | Path, files: dict[str, str]) -> tuple[int, int]:
    """Write :func:`render`'s ``files`` under ``directory``; returns how many files were
    written or changed, and how many stale ones (of an earlier export) were removed."""
    root = Path(directory)
    changed = sum(_write(root / name, text) for name, text in files.items())
    removed = 0
    for path in sorted(root.rglob("*.md")):
        if path.relative_to(root).as_posix() not in files and _ours(path):
            path.unlink()
            removed += 1
    return changed, removed


def render(
    entities: Sequence[tuple[Entity, Sequence[Entity]]],
    snapshots: Sequence[Snapshot],
    actions: Sequence[Action],
    learnings: Sequence[Learning],
    decisions: Sequence[Decision],
    runs: Sequence[RunRecord] = (),
) -> dict[str, str]:
    """Every file of the export, by its path under the folder. ``entities`` pairs each
    entity's latest version with all its versions."""
    files = {"README.md": _index(entities)}
    by_entity = _group(snapshots, lambda s: s.entity)
    for ref, found in by_entity.items():
        files[f"conversion-data/{_slug(ref)}.md"] = _conversion(ref, found)
    for ref, done in _group(actions, lambda a: a.entity).items():
        files[f"optimization-wins/{_slug(ref)}.md"] = _wins(ref, done)
    for scope, found in _group(learnings, lambda x: x.scope).items():
        files[f"learnings/{_slug(scope)}.md"] = _learnings(scope, found)
    for scope, found in _group(decisions, lambda d: d.scope or "general").items():
        files[f"decisions/{_slug(scope)}.md"] = _decisions(scope, found)
    for day, lines in _days(snapshots, actions, learnings, decisions, runs).items():
        files[f"daily-logs/{day}.md"] = _page(f"Daily log: {day}", ["\n".join(lines)])
    return files


# -- the files ---------------------------------------------------------------------------


def _index(entities: Sequence[tuple[Entity, Sequence[Entity]]]) -> str:
    rows = [["Entity", "Version", "Updated", "Attributes"]]
    for latest, versions in entities:
        rows.append(
            [latest.ref, str(len(versions)), _when(latest.updated_at), _data(latest.attributes)]
        )
    body = _table(rows) if len(rows) > 1 else "No entities yet."
    folders = (
        "- `daily-logs/`: what happened each day, in order\n"
        "- `conversion-data/`: each entity's metrics over time\n"
        "- `optimization-wins/`: each entity's actions, expected vs actual\n"
        "- `learnings/`, `decisions/`: by scope"
    )
    return _page("Memory bank", ["## Entities\n\n" + body, "## Folders\n\n" + folders])


def _conversion(ref: str, snapshots: Sequence[Snapshot]) -> str:
    metrics = sorted({name for s in snapshots for name in s.metrics})
    rows = [["When", *metrics]]
    for s in snapshots:
        rows.append([_when(s.at), *(_number(s.metrics.get(m)) for m in metrics)])
    analyses = [f"- {_when(s.at)}: {_text(s.analysis)}" for s in snapshots if s.analysis]
    parts = ["## Metrics\n\n" + _table(rows)]
    if analyses:
        parts.append("## Analysis\n\n" + "\n".join(analyses))
    return _page(f"Conversion data: {ref}", parts)


def _wins(ref: str, actions: Sequence[Action]) -> str:
    won = [a for a in actions if not a.open and not a.shortfall]
    short = [a for a in actions if not a.open and a.shortfall]
    running = [a for a in actions if a.open]
    parts = []
    for title, group in (("Wins", won), ("Fell short", short), ("Still open", running)):
        if group:
            parts.append(f"## {title}\n\n" + "\n\n".join(_action(a) for a in group))
    return _page(f"Optimizations: {ref}", parts)


def _action(a: Action) -> str:
    lines = [
        f"### {_when(a.at)} · {a.kind}",
        f"- **Why:** {_line(a.reasoning)}",
        f"- **Expected:** {_line(describe_impact(a.expected))}",
    ]
    if not a.open:
        assert a.closed_at is not None
        lines.append(f"- **Actual** ({_when(a.closed_at)}): {_line(describe_impact(a.actual))}")
        if a.shortfall:
            lines.append(f"- **Short on:** {', '.join(a.shortfall)}")
    return "\n".join(lines)


def _learnings(scope: str, learnings: Sequence[Learning]) -> str:
    parts = []
    for kind, found in _group(learnings, lambda x: x.kind).items():
        items = []
        for x in found:
            item = f"{_when(x.at)}: {_line(x.insight)}"
            if x.superseded:
                item = f"~~{item}~~ (superseded by {x.superseded_by})"
            if x.data is not None:
                item += f"  \n  data: {_data(x.data)}"
            items.append(f"- {item}")
        parts.append(f"## {kind}\n\n" + "\n".join(items))
    return _page(f"Learnings: {scope}", parts)


def _decisions(scope: str, decisions: Sequence[Decision]) -> str:
    parts = []
    for d in decisions:
        text = f"## {_when(d.at)} · {d.kind}\n\n**Why:** {_line(d.reasoning)}"
        if d.context is not None:
            text += "\n\n**Context:**\n\n" + _block(d.context)
        parts.append(text)
    return _page(f"Decisions: {scope}", parts)


def _days(
    snapshots: Iterable[Snapshot],
    actions: Iterable[Action],
    learnings: Iterable[Learning],
    decisions: Iterable[Decision],
    runs: Iterable[RunRecord],
) -> dict[str, list[str]]:
    events: list[tuple[float, str, str]] = []
    for s in snapshots:
        figures = ", ".join(f"{k} {_number(v)}" for k, v in s.metrics.items())
        note = f": {_line(_text(s.analysis))}" if s.analysis else ""
        events.append((s.at, s.id, f"**snapshot** {s.entity}: {figures}{note}"))
    for a in actions:
        expected = describe_impact(a.expected)
        events.append(
            (
                a.at,
                a.id,
                f"**action** {a.entity} · {a.kind}: {_line(a.reasoning)} "
                f"(expected: {_line(expected)})",
            )
        )
        if a.closed_at is not None:
            verdict = f"; short on {', '.join(a.shortfall)}" if a.shortfall else ""
            events.append(
                (
                    a.closed_at,
                    a.id + "/outcome",
                    f"**outcome** {a.entity} · {a.kind}: "
                    f"{_line(describe_impact(a.actual))} (expected: {_line(expected)}){verdict}",
                )
            )
    for x in learnings:
        events.append((x.at, x.id, f"**learning** {x.scope} · {x.kind}: {_line(x.insight)}"))
    for d in decisions:
        scope = f"{d.scope} · " if d.scope else ""
        events.append((d.at, d.id, f"**decision** {scope}{d.kind}: {_line(d.reasoning)}"))
    days: dict[str, list[str]] = defaultdict(list)
    for at, _, text in sorted(events):
        days[_day(at)].append(f"- {_clock(at)} {text}")
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    for run in runs:
        tally[_day(run.started_at)][str(run.status)] += 1
    for day, counts in tally.items():
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        days[day].append(f"\n**Engine runs:** {sum(counts.values())} ({summary})")
    return dict(sorted(days.items()))


# -- how things are written -------------------------------------------------------------


def _page(title: str, parts: Iterable[str]) -> str:
    return "\n\n".join([MARK, f"# {_line(title)}", *parts]) + "\n"


def _table(rows: Sequence[Sequence[str]]) -> str:
    cells = [[c.replace("|", "\\|") for c in row] for row in rows]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    return "\n".join(lines)


def _block(value: Any) -> str:
    if isinstance(value, str):
        return "\n".join(f"> {line}" for line in value.splitlines() or [""])
    return "```json\n" + json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n```"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _data(value)


def _data(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _line(text: str) -> str:
    return " ".join(text.split())


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.6g}" if abs(value) >= 1000 else f"{value:.6g}"


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _day(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d")


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%H:%M")


def _slug(ref: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in ref).strip("-.") or "scope"


def _group(records: Iterable[Any], key: Any) -> dict[str, list[Any]]:
    """Records by ``key``, keys sorted, each group in time order."""
    groups: dict[str, list[Any]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.at, r.id)):
        groups[key(record)].append(record)
    return dict(sorted(groups.items()))


def _ours(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as file:
            return file.readline().rstrip("\n") == MARK
    except (OSError, UnicodeDecodeError):
        return False


def _write(path: Path, text: str) -> bool:
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    if path.exists() and not _ours(path):
        raise FileExistsError(
            f"{path} is not a file `bank export --markdown` wrote; move it aside, or "
            "export into another folder"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return True
