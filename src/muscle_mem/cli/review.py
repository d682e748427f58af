"""The commands that move the cache and review it: export, import (as JSON lines, or as
a folder of readable files to keep in git) and approve."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import ExportFormatError
from ..portable import Imported, export_lines, import_into, read_export
from ..portable_dir import ImportedDir, apply_approvals, export_dir, read_dir
from ..trie import Node
from .cache import resolve
from .common import (
    SECRET_VAR,
    Command,
    Failed,
    UsageError,
    open_for,
    output,
    read_input,
    wants_json,
)
from .output import Progress, dump, short


def add_commands(command: Command) -> None:
    export = command("export", _export, "write task keys' trees as JSON lines, or a folder")
    export.add_argument("keys", nargs="*", metavar="KEY", help="task keys to export (default: all)")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    export.add_argument(
        "--dir",
        metavar="DIR",
        help="write one readable file per task key into DIR, in folders by tag, to review in git",
    )
    export.add_argument(
        "--counts",
        action="store_true",
        help="with --dir: add each step's hits, failures and last use (they change every hit)",
    )

    load = command("import", _import, "read an export into the store (idempotent)")
    load.add_argument(
        "file", nargs="?", help="a file written by `muscle-mem export`, or - for stdin"
    )
    load.add_argument("--dir", metavar="DIR", help="a folder written by `muscle-mem export --dir`")

    approve = command("approve", _approve, "mark a task's paths approved for approved_only replay")
    approve.add_argument("key", metavar="KEY", help="the task key, or the start of it or its text")
    approve.add_argument(
        "--path",
        type=int,
        action="append",
        metavar="N",
        help="only path N, as `muscle-mem show` numbers them (repeatable; default: every path)",
    )
    approve.add_argument("--revoke", action="store_true", help="take the approval back")


def _secret() -> str | None:
    return os.environ.get(SECRET_VAR) or None


def _export(args: argparse.Namespace) -> int:
    if args.dir is not None and args.output is not None:
        raise UsageError("write to a file (-o) or a folder (--dir), not both")
    if args.counts and args.dir is None:
        raise UsageError("--counts goes with --dir (JSON lines always hold the counts)")
    store = open_for(args, read_only=True)
    tasks = resolve(store, args.keys) if args.keys else None
    progress = Progress("exporting", len(tasks) if tasks is not None else 0)
    if args.dir is not None:
        try:
            changed, removed = export_dir(
                store,
                args.dir,
                tasks,
                secret=_secret(),
                counts=args.counts,
                progress=progress.update,
            )
        except OSError as error:
            raise Failed(f"cannot write to {args.dir}: {error}") from None
        progress.done()
        report = {"dir": args.dir, "files_changed": changed, "files_removed": removed}
        if wants_json(args):
            return dump(report)
        print(f"{args.dir}: {changed} file(s) written or changed, {removed} removed")
        return 0
    with output(args.output) as out:
        for line in export_lines(store, tasks, secret=_secret(), progress=progress.update):
            out.write(line + "\n")
    progress.done()
    return 0


def _import(args: argparse.Namespace) -> int:
    if (args.file is None) == (args.dir is None):
        raise UsageError("import a file (FILE, or - for stdin) or a folder (--dir DIR)")
    secret = _secret()
    source = args.dir if args.dir is not None else args.file
    folder: ImportedDir | None = None
    imported: Imported
    try:  # everything checks out before any store is opened, let alone written
        if args.dir is not None:
            imported = folder = read_dir(args.dir, secret=secret)
        else:
            imported = read_export(read_input(args.file).splitlines(), secret=secret)
    except ExportFormatError as error:
        raise Failed(f"{source}: {error}; nothing was imported") from None
    store = open_for(args, create=True)
    progress = Progress("importing", len(imported.trees))
    nodes, snapshots = import_into(store, imported, progress=progress.update)
    progress.done()
    approvals = 0 if folder is None else apply_approvals(store, folder)
    report: dict[str, Any] = {
        "task_keys": len(imported.trees),
        "steps": imported.nodes,
        "snapshots": imported.snapshots,
        "new_steps": nodes,
        "new_snapshots": snapshots,
        "rejected": imported.rejected,
        "incomplete": imported.incomplete,
    }
    if args.dir is not None:
        report["approvals_changed"] = approvals
    if wants_json(args):
        dump(report)
    else:
        print(
            f"imported {len(imported.trees)} task keys: {nodes} new steps and {snapshots} new "
            f"snapshots (of {imported.nodes} steps and {imported.snapshots} snapshots accepted)"
            + (f"; {approvals} approval(s) changed" if args.dir is not None else "")
        )
    if imported.signed and secret is None:
        print(
            f"muscle-mem: the {'folder' if args.dir else 'file'} is signed, but ${SECRET_VAR} "
            "is not set: its signatures were not checked",
            file=sys.stderr,
        )
    if imported.rejected:
        print(
            f"muscle-mem: {imported.rejected} rows failed verification with ${SECRET_VAR} and "
            "were skipped: were they exported with the same secret?",
            file=sys.stderr,
        )
    if imported.incomplete:
        print(
            f"muscle-mem: {imported.incomplete} steps were left out: no recorded path in the "
            "file ends at or below them (a file of an older muscle-mem cut short, or rows "
            "that failed verification)",
            file=sys.stderr,
        )
    return 1 if imported.rejected or imported.incomplete else 0


def _approve(args: argparse.Namespace) -> int:
    store = open_for(args)
    [info] = resolve(store, [args.key])
    ends = store.tree(info.task_key).ends()
    chosen: list[tuple[int, Node]] = list(enumerate(ends, 1))
    if args.path:
        wrong = [n for n in args.path if not 1 <= n <= len(ends)]
        if wrong:
            raise Failed(
                f"task {short(info.task_key)} has {len(ends)} path(s), numbered 1 to "
                f"{len(ends)} as `muscle-mem show {short(info.task_key)}` prints them; "
                f"there is no path {wrong[0]}"
            )
        chosen = [(n, ends[n - 1]) for n in sorted(set(args.path))]
    approved = not args.revoke
    changed = store.approve(info.task_key, [end.id for _, end in chosen], approved)
    numbers = [n for n, _ in chosen]
    if wants_json(args):
        return dump(
            {
                "task_key": info.task_key,
                "text": info.text,
                "paths": numbers,
                "approved": approved,
                "changed": changed,
            }
        )
    what = "approved" if approved else "no longer approved"
    listed = ", ".join(map(str, numbers)) or "none"
    about = f" ({info.text})" if info.text else ""
    print(f"{short(info.task_key)}{about}: path(s) {listed} {what} ({changed} changed)")
    return 0
