"""The ``muscle-mem`` command: see what the cache holds, whether it pays, and clean it.

A thin layer over the store protocol, :mod:`muscle_mem.stats` and
:mod:`muscle_mem.portable`: every figure it prints is one the Python API returns.
Exit codes: 0 done, 1 done but not all of it (nothing matched, rows rejected, the
user said no), 2 the command could not start (bad arguments, no store).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .errors import MuscleMemError
from .models import Param, Redacted, RunRecord, TaskInfo, Text
from .portable import ExportFormatError, export_lines, import_into, read_export
from .stats import TaskStats, compute
from .store import ENV_VAR, Store, open_store, sqlite_path
from .store.sql import IntegrityWarning
from .trie import Node, Tree

DEFAULT_STORE = ".muscle_mem/cache.db"
SECRET_VAR = "MUSCLE_MEM_SECRET"
_PREFIX = "task1:"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class UsageError(Exception):
    """The command cannot start: exit code 2, one line on stderr."""


class Failed(Exception):
    """The command ran but could not do what was asked: exit code 1."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", IntegrityWarning)
            code = int(args.run(args) or 0)
        failed = [w for w in caught if issubclass(w.category, IntegrityWarning)]
        for warning in caught:
            if warning not in failed:
                print(f"muscle-mem: {warning.message}", file=sys.stderr)
        if failed:
            print(
                f"muscle-mem: rows of {len(failed)} task key(s) failed signature verification "
                f"and were left out: is ${SECRET_VAR} the secret they were written with?",
                file=sys.stderr,
            )
            return max(code, 1)
        return code
    except UsageError as error:
        print(f"muscle-mem: {error}", file=sys.stderr)
        return 2
    except (Failed, MuscleMemError) as error:
        print(f"muscle-mem: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("muscle-mem: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `muscle-mem runs | head`: the reader left, and that is fine
        sys.stderr.close()
        return 0


# -- arguments ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    # --store and --json are accepted before or after the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        default=argparse.SUPPRESS,
        metavar="URL",
        help=f"the store (default: ${ENV_VAR}, else {DEFAULT_STORE})",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    parser = argparse.ArgumentParser(
        prog="muscle-mem",
        description="See, measure and manage a muscle-mem cache.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"muscle-mem {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int], text: str) -> Any:
        sub = commands.add_parser(name, parents=[common], help=text, description=text)
        sub.set_defaults(run=run)
        return sub

    stats = command("stats", _stats, "hit rate, divergences and what the cache saved")
    stats.add_argument(
        "--since", type=_duration, metavar="AGE", help="only runs of the last AGE (7d, 12h)"
    )
    stats.add_argument("--tag", action="append", default=[], help="only runs with this tag")

    command("ls", _ls, "the task keys the cache holds")

    show = command("show", _show, "a task key's tree of steps")
    show.add_argument("key", help="the task key, or the start of it")

    runs = command("runs", _runs, "the run log, newest first")
    runs.add_argument("--status", choices=["hit", "miss", "handoff", "error"])
    runs.add_argument("--tag", action="append", default=[], help="only runs with this tag")
    runs.add_argument("--since", type=_duration, metavar="AGE", help="only runs of the last AGE")
    runs.add_argument("-n", "--limit", type=int, default=20, help="how many (default 20, 0: all)")

    rm = command("rm", _rm, "forget task keys")
    rm.add_argument("keys", nargs="+", metavar="KEY", help="a task key, or the start of it")
    _confirm_options(rm)

    prune = command("prune", _prune, "forget steps that are unused or failing")
    prune.add_argument(
        "--unused-for", type=_duration, metavar="AGE", help="steps unused for AGE (30d)"
    )
    prune.add_argument(
        "--failing",
        action="store_true",
        help="steps whose checks failed more often than they passed",
    )
    _confirm_options(prune)

    export = command("export", _export, "write task keys' trees as JSON lines")
    export.add_argument("keys", nargs="*", metavar="KEY", help="task keys to export (default: all)")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")

    load = command("import", _import, "read an export into the store (idempotent)")
    load.add_argument("file", help="a file written by `muscle-mem export`, or - for stdin")
    return parser


def _confirm_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask")
    parser.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")


def _duration(text: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age: write 30d, 12h, 15m or 2w")
    return float(match[1]) * _UNITS[match[2]]


# -- the store ----------------------------------------------------------------------------


def _store(args: argparse.Namespace, *, create: bool = False) -> Store:
    """The store the command works on; one that does not exist is created only if asked."""
    url = getattr(args, "store", None) or os.environ.get(ENV_VAR) or DEFAULT_STORE
    if url.startswith("memory:"):
        raise UsageError(
            "a memory:// store lives inside one process; give the command a file or a "
            "server: --store sqlite:///path/to/cache.db or postgresql://..."
        )
    path = sqlite_path(url)
    if path and not create and not Path(path).exists():
        raise UsageError(
            f"no store at {path}: nothing was recorded there (pass --store URL, or set ${ENV_VAR})"
        )
    try:
        return open_store(url, secret=os.environ.get(SECRET_VAR) or None)
    except (MuscleMemError, ValueError) as error:  # each names the store it could not open
        raise UsageError(str(error)) from None


def _resolve(store: Store, prefixes: Iterable[str]) -> list[TaskInfo]:
    """The task keys the given prefixes name, each exactly one."""
    tasks = store.tasks()
    found = []
    for prefix in prefixes:
        bare = prefix.removeprefix(_PREFIX)
        matches = [t for t in tasks if t.task_key.removeprefix(_PREFIX).startswith(bare)]
        if not bare or not matches:
            raise Failed(f"no task key starts with {prefix!r}; `muscle-mem ls` lists them")
        if len(matches) > 1:
            shown = ", ".join(_short(t.task_key) for t in matches[:5])
            raise Failed(f"{prefix!r} names {len(matches)} task keys ({shown}); give more of it")
        found.append(matches[0])
    return found


# -- commands -----------------------------------------------------------------------------


def _stats(args: argparse.Namespace) -> int:
    store = _store(args)
    since = time.time() - args.since if args.since else None
    figures = compute(store.runs(since=since), tags=args.tag)
    if _json(args):
        return _dump(figures.to_dict())
    if not figures.tasks:
        print("no runs" + (" in that window" if since or args.tag else " recorded yet"))
        return 0
    rows = [_stats_row(task) for task in (*figures.tasks, figures.total)]
    _table(
        [
            "TASK",
            "TAGS",
            "RUNS",
            "HITS",
            "HIT RATE",
            "MISSES",
            "HANDOFFS",
            "DIVERGED",
            "TIME SAVED",
            "TOKENS SAVED",
            "COST SAVED",
        ],
        rows,
        total=True,
    )
    total = figures.total
    if total.reasons:
        print("\nwhy replay stopped (most common):")
        for reason, count in total.reasons:
            print(f"  {count:>5}  {_clip(reason, 90)}")
    return 0


def _stats_row(task: TaskStats) -> list[str]:
    diverged = f"{task.divergence_rate:.0%}"
    if task.diverged_at:
        diverged += f" (step {task.diverged_at[0][0]})"
    return [
        _short(task.task_key),
        ",".join(task.tags),
        str(task.runs),
        str(task.hits),
        f"{task.hit_rate:.0%}",
        str(task.misses),
        str(task.handoffs),
        diverged,
        _seconds(task.time_saved_s),
        f"{task.tokens_saved:,}",
        f"${task.cost_saved:,.4f}",
    ]


def _ls(args: argparse.Namespace) -> int:
    tasks = _store(args).tasks()
    if _json(args):
        return _dump([{**t._asdict(), "tags": list(t.tags)} for t in tasks])
    if not tasks:
        print("the cache is empty")
        return 0
    _table(
        ["TASK", "TAGS", "PATHS", "NODES", "LAST USED"],
        [
            [_short(t.task_key), ",".join(t.tags), str(t.paths), str(t.nodes), _ago(t.last_used)]
            for t in tasks
        ],
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    store = _store(args)
    [info] = _resolve(store, [args.key])
    tree = store.tree(info.task_key)
    if _json(args):
        return _dump(
            {**info._asdict(), "tags": list(info.tags), "steps": _node_json(tree, tree.root)}
        )
    print(
        f"{info.task_key}  tags: {','.join(info.tags) or '-'}  paths: {info.paths}  "
        f"nodes: {info.nodes}  last used: {_ago(info.last_used)}"
    )
    _print_children(tree.root, "")
    return 0


def _print_children(node: Node, indent: str) -> None:
    children = node.children
    for i, child in enumerate(children):
        last = i == len(children) - 1
        print(f"{indent}{'└─' if last else '├─'} {_call(child)}")
        more = indent + ("   " if last else "│  ")
        facts = (
            f"snapshots: pre {len(child.pre)}, post {len(child.post)} · hits {child.hits} · "
            f"failures {child.failures}" + (" · path ends here" if child.terminal else "")
        )
        print(f"{more}{'│  ' if child.children else '   '}{facts}")
        _print_children(child, more)


def _node_json(tree: Tree, node: Node) -> list[dict[str, Any]]:
    return [
        {
            "id": child.id,
            "call": _call(child),
            "tool": child.step.tool if child.step else None,
            "pre_snapshots": len(child.pre),
            "post_snapshots": len(child.post),
            "hits": child.hits,
            "failures": child.failures,
            "terminal": child.terminal,
            "last_used": _iso(child.last_used),
            "steps": _node_json(tree, child),
        }
        for child in node.children
    ]


def _call(node: Node) -> str:
    """The step as a call, with params shown as ``{name}``."""
    assert node.step is not None
    try:
        (args, kwargs), _ = node.template()
    except MuscleMemError as error:
        return f"{node.step.tool}(<cannot read its arguments: {error}>)"
    shown = [_value(a) for a in args] + [f"{k}={_value(v)}" for k, v in kwargs.items()]
    return f"{node.step.tool}({', '.join(shown)})"


def _value(value: Any) -> str:
    if isinstance(value, Param):
        return f"{{{value.name}}}"
    if isinstance(value, Text):
        text = "".join(f"{{{p.name}}}" if isinstance(p, Param) else p for p in value.parts)
        return repr(text)
    if isinstance(value, Redacted):
        return "<sensitive>"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_value(v) for v in value)
        return (
            f"[{inner}]"
            if isinstance(value, list)
            else f"({inner}{',' if len(value) == 1 else ''})"
        )
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_value(k)}: {_value(v)}" for k, v in value.items()) + "}"
    return _clip(repr(value), 60)


def _runs(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or more")
    since = time.time() - args.since if args.since else None
    newest_first = sorted(_store(args).runs(since=since), key=lambda r: -r.started_at)
    log = [
        run
        for run in newest_first
        if (args.status is None or run.status == args.status) and set(args.tag).issubset(run.tags)
    ]
    if args.limit:
        log = log[: args.limit]
    if _json(args):
        return _dump([_run_json(run) for run in log])
    if not log:
        print("no runs")
        return 0
    _table(
        [
            "WHEN",
            "TASK",
            "TAGS",
            "STATUS",
            "REPLAYED",
            "RECORDED",
            "DIVERGED AT",
            "TIME",
            "TOKENS",
            "REASON",
        ],
        [
            [
                _ago(run.started_at),
                _short(run.task_key),
                ",".join(run.tags),
                run.status,
                str(run.replayed),
                str(run.recorded),
                "-" if run.diverged_at is None else str(run.diverged_at),
                _seconds(run.duration_s),
                f"{run.tokens:,}",
                _clip(run.reason or "", 50),
            ]
            for run in log
        ],
    )
    return 0


def _run_json(run: RunRecord) -> dict[str, Any]:
    return {
        **run._asdict(),
        "tags": list(run.tags),
        "params": list(run.params),
        "started_at": _iso(run.started_at),
    }


def _rm(args: argparse.Namespace) -> int:
    store = _store(args)
    doomed = {info.task_key: None for info in _resolve(store, args.keys)}
    lines = [
        f"{_short(t.task_key)} ({','.join(t.tags) or 'no tags'}): {t.nodes} steps, {t.paths} paths"
        for t in store.tasks()
        if t.task_key in doomed
    ]
    return _remove(args, store, doomed, lines)


def _prune(args: argparse.Namespace) -> int:
    if args.unused_for is None and not args.failing:
        raise UsageError("say what to prune: --unused-for 30d, --failing, or both")
    store = _store(args)
    cutoff = time.time() - args.unused_for if args.unused_for is not None else None
    doomed: dict[str, set[str] | None] = {}
    lines = []
    tasks = store.tasks()
    progress = Progress("reading", len(tasks))
    for info in tasks:
        tree = store.tree(info.task_key)
        unused = [n.id for n in tree if n.step and cutoff is not None and n.last_used < cutoff]
        failing = [n.id for n in tree if n.step and args.failing and n.failures > n.hits]
        nodes = tree.subtrees(unused + failing)
        if nodes:
            doomed[info.task_key] = nodes
            why = " and ".join(
                what for what, found in (("unused", unused), ("failing", failing)) if found
            )
            left = "all of it" if len(nodes) == len(tree) else f"{len(tree) - len(nodes)} left"
            lines.append(
                f"{_short(info.task_key)}: {len(nodes)} of {len(tree)} steps, {why} ({left})"
            )
        progress.step()
    progress.done()
    return _remove(args, store, doomed, lines)


def _remove(
    args: argparse.Namespace, store: Store, doomed: dict[str, Any], lines: list[str]
) -> int:
    if not doomed:
        print("nothing to remove")
        return 0
    print("would remove:" if args.dry_run or not args.yes else "removing:")
    for line in lines:
        print(f"  {line}")
    if args.dry_run:
        return 0
    if not args.yes and not _ask(f"remove from {getattr(store, 'url', store)}? [y/N] "):
        print("nothing removed")
        return 1
    progress = Progress("removing", len(doomed))
    removed = 0
    for key, nodes in doomed.items():
        removed += store.remove(key, nodes)
        progress.step()
    progress.done()
    print(f"removed {removed} steps from {len(doomed)} task keys")
    return 0


def _ask(question: str) -> bool:
    print(question, end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _export(args: argparse.Namespace) -> int:
    store = _store(args)
    keys = [t.task_key for t in _resolve(store, args.keys)] if args.keys else None
    progress = Progress("exporting", len(keys) if keys is not None else len(store.tasks()))
    secret = os.environ.get(SECRET_VAR) or None
    out: TextIO = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        for line in export_lines(
            store, keys, secret=secret, progress=lambda done, _: progress.step()
        ):
            out.write(line + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    progress.done()
    return 0


def _import(args: argparse.Namespace) -> int:
    store = _store(args, create=True)
    secret = os.environ.get(SECRET_VAR) or None
    try:
        source: TextIO = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    except OSError as error:
        raise UsageError(f"cannot read {args.file}: {error.strerror}") from None
    with source:
        try:
            imported = read_export(source, secret=secret)
        except ExportFormatError as error:
            raise Failed(f"{args.file}: {error}; nothing was imported") from None
    progress = Progress("importing", len(imported.trees))
    nodes, snapshots = import_into(store, imported, progress=lambda done, _: progress.step())
    progress.done()
    report = {
        "task_keys": len(imported.trees),
        "steps": imported.nodes,
        "snapshots": imported.snapshots,
        "new_steps": nodes,
        "new_snapshots": snapshots,
        "rejected": imported.rejected,
    }
    if _json(args):
        _dump(report)
    else:
        print(
            f"imported {len(imported.trees)} task keys: {nodes} new steps and {snapshots} new "
            f"snapshots (of {imported.nodes} and {imported.snapshots} in the file)"
        )
    if imported.rejected:
        print(
            f"muscle-mem: {imported.rejected} rows failed verification with ${SECRET_VAR} and "
            "were skipped: were they exported with the same secret?",
            file=sys.stderr,
        )
        return 1
    return 0


# -- output -------------------------------------------------------------------------------


class Progress:
    """A progress bar on stderr when it is a terminal; nothing when piped."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label, self.total, self.count = label, total, 0
        self.stream = stream or sys.stderr
        self.shown = self.stream.isatty() and total > 1

    def step(self) -> None:
        self.count += 1
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


def _json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _dump(data: Any) -> int:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


def _table(headers: list[str], rows: list[list[str]], *, total: bool = False) -> None:
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


def _short(task_key: str) -> str:
    return (
        task_key if not task_key.startswith(_PREFIX) else task_key[len(_PREFIX) : len(_PREFIX) + 12]
    )


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _seconds(value: float) -> str:
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


def _ago(timestamp: float) -> str:
    age = time.time() - timestamp
    if age < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if age >= size:
            return f"{age / size:.0f}{unit} ago"
    return "just now"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat()
