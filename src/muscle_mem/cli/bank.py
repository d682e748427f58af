"""``muscle-mem bank ...``: what the memory bank remembers, for a person or a script."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from .common import (
    Command,
    Failed,
    UsageError,
    age_ago,
    open_for,
    output,
    read_input,
    wants_json,
    width,
)
from .output import Column, dump, iso, table


def add_commands(command: Command) -> None:
    group = command("bank", _no_subcommand, "the memory bank: brief, recall, export, import")
    subcommands = group.add_subparsers(title="bank commands", metavar="COMMAND")

    def bank_command(name: str, run: Any, text: str) -> argparse.ArgumentParser:
        return command(name, run, text, subcommands)

    brief = bank_command("brief", _brief, "a markdown summary of a scope, for an agent's prompt")
    brief.add_argument("scope", help="an entity or a scope, as kind:id (brand:voyage)")
    brief.add_argument(
        "--budget", type=int, default=2000, metavar="CHARS", help="at most this long (2000)"
    )

    recall = bank_command("recall", _recall, "learnings, decisions, actions and analyses")
    recall.add_argument("text", nargs="?", help="words that must all appear")
    recall.add_argument("--scope", help="only about this entity or scope (kind:id)")
    recall.add_argument("--kind", help="only of this kind (audience_insight, ...)")
    recall.add_argument(
        "--type", choices=["learning", "decision", "action", "snapshot"], help="only these"
    )
    recall.add_argument("--since", type=age_ago, metavar="AGE", help="only of the last AGE")
    recall.add_argument("-n", "--limit", type=int, default=20, help="how many (20)")
    recall.add_argument("--offset", type=int, default=0, help="skip this many (for pages)")
    recall.add_argument("--all", action="store_true", help="superseded learnings too")

    export = bank_command("export", _export, "everything, as campaign and strategic memory JSON")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    export.add_argument(
        "--markdown",
        metavar="DIR",
        help="write folders of markdown into DIR instead (daily-logs/, conversion-data/, ...)",
    )

    load = bank_command("import", _import, "read an export (or seed-shaped JSON) into the bank")
    load.add_argument("file", help="a JSON file, or - for stdin")


def _no_subcommand(args: argparse.Namespace) -> int:
    raise UsageError("say what: muscle-mem bank brief SCOPE | recall [TEXT] | export | import FILE")


def _bank(args: argparse.Namespace, *, create: bool = False) -> Any:
    from ..bank import MemoryBank  # loaded only for the bank's commands

    return MemoryBank(open_for(args, create=create))


def _brief(args: argparse.Namespace) -> int:
    if args.budget < 1:
        raise UsageError("--budget must be at least 1")
    text = _bank(args).brief(args.scope, budget_chars=args.budget)
    return dump({"scope": args.scope, "brief": text}) if wants_json(args) else _say(text)


def _recall(args: argparse.Namespace) -> int:
    if args.limit < 1 or args.offset < 0:
        raise UsageError("--limit must be at least 1 and --offset 0 or more")
    found = _bank(args).recall(
        scope=args.scope,
        kind=args.kind,
        since=args.since,
        text=args.text,
        limit=args.limit,
        offset=args.offset,
        type=args.type,
        include_superseded=args.all,
    )
    if wants_json(args):
        return dump([_iso_times(dataclasses.asdict(r)) for r in found])
    if not found:
        return _say("nothing found")
    table(
        [
            Column("WHEN", keep=3),
            Column("TYPE", keep=4),
            Column("SCOPE", keep=2, flex=True, least=14),
            Column("KIND", keep=1),
            Column("WHAT", flex=True, least=30),
        ],
        [[iso(r.at)[:10], r.type, r.scope or "-", r.kind or "-", r.text] for r in found],
        width=width(args),
    )
    return 0


# The bank's times (epoch seconds), which JSON output spells in ISO 8601 as every
# command's does.
_TIMES = {"at", "closed_at", "updated_at"}


def _iso_times(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its times, and those of the record inside it, in ISO 8601."""
    spelled = dict(data)
    for key, value in data.items():
        if key in _TIMES and isinstance(value, (int, float)):
            spelled[key] = iso(value)
        elif key == "record" and isinstance(value, dict):
            spelled[key] = _iso_times(value)
    return spelled


def _export(args: argparse.Namespace) -> int:
    if args.markdown is not None:
        if args.output is not None:
            raise UsageError("write JSON to a file (-o) or markdown to a folder (--markdown)")
        try:
            changed, removed = _bank(args).export_markdown(args.markdown)
        except OSError as error:
            raise Failed(f"cannot write to {args.markdown}: {error}") from None
        report = {"dir": args.markdown, "files_changed": changed, "files_removed": removed}
        if wants_json(args):
            return dump(report)
        return _say(f"{args.markdown}: {changed} file(s) written or changed, {removed} removed")
    text = json.dumps(_bank(args).export(), indent=2, ensure_ascii=False)
    with output(args.output) as out:
        out.write(text + "\n")
    return 0


def _import(args: argparse.Namespace) -> int:
    counts = _bank(args, create=True).import_json(read_input(args.file))
    if wants_json(args):
        return dump(counts)
    added = ", ".join(f"{n} {what}" for what, n in counts.items() if n) or "nothing new"
    return _say(f"imported: {added}")


def _say(text: str) -> int:
    print(text)
    return 0
