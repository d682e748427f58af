"""The commands that look after the behavior cache: stats, ls, show, runs, rm and prune
(export, import and approve are in :mod:`.review`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from typing import Any

from .. import prune
from ..errors import MuscleMemError
from ..models import TASK_KEY_PREFIX, Param, Redacted, RunRecord, Status, TaskInfo, Text, Traced
from ..stats import TaskStats, compute
from ..store import Store
from ..trie import Node, Tree
from .common import (
    Command,
    Failed,
    UsageError,
    age_ago,
    open_for,
    wants_json,
)
from .output import Progress, ago, clip, dump, iso, seconds, short, table


def add_commands(command: Command) -> None:
    stats = command("stats", _stats, "hit rate, divergences and what the cache saved")
    stats.add_argument(
        "--since", type=age_ago, metavar="AGE", help="only runs of the last AGE (7d, 12h)"
    )
    stats.add_argument("--tag", action="append", default=[], help="only runs with this tag")

    command("ls", _ls, "the task keys the cache holds")

    show = command("show", _show, "a task key's tree of steps")
    show.add_argument("key", help="the task key, or the start of it")

    runs = command("runs", _runs, "the run log, newest first")
    runs.add_argument("--status", choices=[status.value for status in Status])
    runs.add_argument("--tag", action="append", default=[], help="only runs with this tag")
    runs.add_argument("--since", type=age_ago, metavar="AGE", help="only runs of the last AGE")
    runs.add_argument("-n", "--limit", type=int, default=20, help="how many (default 20, 0: all)")

    rm = command("rm", _rm, "forget task keys")
    rm.add_argument("keys", nargs="*", metavar="KEY", help="a task key, or the start of it")
    rm.add_argument("--all", action="store_true", help="every task key the store holds")
    _confirm_options(rm)

    prune = command("prune", _prune, "forget steps that are unused or failing")
    prune.add_argument(
        "--unused-for", type=age_ago, metavar="AGE", help="steps unused for AGE (30d)"
    )
    prune.add_argument(
        "--failing",
        action="store_true",
        help="steps whose checks failed more often than they passed",
    )
    _confirm_options(prune)


def _resolve(store: Store, prefixes: Iterable[str]) -> list[TaskInfo]:
    """The task keys the given prefixes name, each exactly one: the start of a task key,
    or of a task's text (any case)."""
    tasks = store.tasks()
    found = []
    for prefix in prefixes:
        bare = prefix.removeprefix(TASK_KEY_PREFIX)
        words = prefix.casefold()
        matches = [
            t
            for t in tasks
            if t.task_key.removeprefix(TASK_KEY_PREFIX).startswith(bare)
            or (t.text and t.text.casefold().startswith(words))
        ]
        if not bare or not matches:
            raise Failed(
                f"no task key starts with {prefix!r}; `muscle-mem ls` lists them (the start "
                "of a task's text names one too)"
            )
        if len(matches) > 1:
            shown = ", ".join(short(t.task_key) for t in matches[:5])
            raise Failed(f"{prefix!r} names {len(matches)} task keys ({shown}); give more of it")
        found.append(matches[0])
    return found


def _stats(args: argparse.Namespace) -> int:
    store = open_for(args, read_only=True)
    figures = compute(store.runs(since=args.since), tags=args.tag)
    if wants_json(args):
        return dump(figures.to_dict())
    if not figures.tasks:
        print(
            "no runs"
            + (" in that window" if args.since is not None or args.tag else " recorded yet")
        )
        return 0
    rows = [_stats_row(task) for task in (*figures.tasks, figures.total)]
    table(
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
            print(f"  {count:>5}  {clip(reason, 90)}")
    return 0


def _stats_row(task: TaskStats) -> list[str]:
    diverged = f"{task.divergence_rate:.0%}"
    if task.diverged_at:
        diverged += f" (step {task.diverged_at[0][0]})"
    return [
        short(task.task_key),
        ",".join(task.tags),
        str(task.runs),
        str(task.hits),
        f"{task.hit_rate:.0%}",
        str(task.misses),
        str(task.handoffs),
        diverged,
        seconds(task.time_saved_s),
        f"{task.tokens_saved:,}",
        f"${task.cost_saved:,.4f}",
    ]


def _ls(args: argparse.Namespace) -> int:
    tasks = open_for(args, read_only=True).tasks()
    if wants_json(args):
        return dump([{**t._asdict(), "tags": list(t.tags)} for t in tasks])
    if not tasks:
        print("the cache is empty")
        return 0
    table(
        ["TASK", "TAGS", "PATHS", "NODES", "LAST USED"],
        [
            [short(t.task_key), ",".join(t.tags), str(t.paths), str(t.nodes), ago(t.last_used)]
            for t in tasks
        ],
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    store = open_for(args, read_only=True)
    [info] = _resolve(store, [args.key])
    tree = store.tree(info.task_key)
    if wants_json(args):
        return dump(
            {**info._asdict(), "tags": list(info.tags), "steps": _node_json(tree, tree.root)}
        )
    print(
        f"{info.task_key}  tags: {','.join(info.tags) or '-'}  paths: {info.paths}  "
        f"nodes: {info.nodes}  last used: {ago(info.last_used)}"
    )
    _print_children(tree.root, "", {end.id: n for n, end in enumerate(tree.ends(), 1)})
    return 0


def _print_children(node: Node, indent: str, paths: dict[str, int]) -> None:
    children = node.children
    for i, child in enumerate(children):
        last = i == len(children) - 1
        print(f"{indent}{'└─' if last else '├─'} {_call(child)}")
        more = indent + ("   " if last else "│  ")
        facts = (
            f"snapshots: pre {len(child.pre)}, post {len(child.post)} · hits {child.hits} · "
            f"failures {child.failures}" + (_end_mark(child, paths) if child.terminal else "")
        )
        print(f"{more}{'│  ' if child.children else '   '}{facts}")
        _print_children(child, more, paths)


def _end_mark(end: Node, paths: dict[str, int]) -> str:
    """Where a path ends, numbered as `muscle-mem approve --path` takes it."""
    return f" · path {paths[end.id]} ends here ({'approved' if end.approved else 'not approved'})"


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
            "last_used": iso(child.last_used),
            "steps": _node_json(tree, child),
        }
        for child in node.children
    ]


def _call(node: Node) -> str:
    """The step as a call, with params shown as ``{name}`` and values from earlier
    results as where they came from: ``⟨step 1: orders[*]⟩``, after the value the agent
    chose there when it chose among several."""
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
    if isinstance(value, Traced):
        sources = " = ".join(_value(s) if isinstance(s, Param) else str(s) for s in value.sources)
        return f"⟨{sources}⟩" if value.value is None else f"{_value(value.value)} ⟨{sources}⟩"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_value(v) for v in value)
        return (
            f"[{inner}]"
            if isinstance(value, list)
            else f"({inner}{',' if len(value) == 1 else ''})"
        )
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_value(k)}: {_value(v)}" for k, v in value.items()) + "}"
    return clip(repr(value), 60)


def _runs(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise UsageError("--limit must be 0 (all) or more")
    newest_first = sorted(
        open_for(args, read_only=True).runs(since=args.since), key=lambda r: -r.started_at
    )
    log = [
        run
        for run in newest_first
        if (args.status is None or run.status == args.status) and set(args.tag).issubset(run.tags)
    ]
    if args.limit:
        log = log[: args.limit]
    if wants_json(args):
        return dump([_run_json(run) for run in log])
    if not log:
        print("no runs")
        return 0
    table(
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
                ago(run.started_at),
                short(run.task_key),
                ",".join(run.tags),
                run.status,
                str(run.replayed),
                str(run.recorded),
                "-" if run.diverged_at is None else str(run.diverged_at),
                seconds(run.duration_s),
                f"{run.tokens:,}",
                clip(run.reason or "", 50),
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
        "started_at": iso(run.started_at),
    }


# What a removal lists: per task key, how many steps go and a line saying so.
Listing = list[tuple[str, int, str]]


def _rm(args: argparse.Namespace) -> int:
    if args.all == bool(args.keys):
        raise UsageError("name the task keys to remove, or say --all (not both)")
    store = open_for(args)
    tasks = store.tasks() if args.all else _resolve(store, args.keys)
    named = {t.task_key: t for t in tasks}  # a key named twice, once
    listing: Listing = [
        (
            t.task_key,
            t.nodes,
            f"{short(t.task_key)} ({','.join(t.tags) or 'no tags'}): "
            f"{t.nodes} steps, {t.paths} paths",
        )
        for t in named.values()
    ]

    def remove(progress: Progress) -> int:
        removed = 0
        for key in named:
            removed += store.remove(key)
            progress.step()
        return removed

    return _remove(args, store, listing, remove)


def _prune(args: argparse.Namespace) -> int:
    if args.unused_for is None and not args.failing:
        raise UsageError("say what to prune: --unused-for 30d, --failing, or both")
    store = open_for(args)
    reading = Progress("reading")
    plans = prune.plan(
        store, unused_since=args.unused_for, failing=args.failing, progress=reading.update
    )
    reading.done()
    listing: Listing = [(p.task_key, len(p.nodes), _prune_line(p)) for p in plans]
    return _remove(
        args,
        store,
        listing,
        lambda progress: prune.apply(store, plans, progress=progress.update),
    )


def _prune_line(plan: prune.TaskPlan) -> str:
    left = "all of it" if not plan.left else f"{plan.left} left"
    return (
        f"{short(plan.task_key)}: {len(plan.nodes)} of {plan.steps} steps, "
        f"{' and '.join(plan.reasons)} ({left})"
    )


def _remove(
    args: argparse.Namespace,
    store: Store,
    listing: Listing,
    remove: Callable[[Progress], int],
) -> int:
    """Say what would go, ask unless --yes, then ``remove`` it (unless --dry-run)."""
    as_json = wants_json(args)
    tasks = [{"task_key": key, "steps": steps} for key, steps, _ in listing]
    if not as_json and not listing:
        print("nothing to remove")
    elif not as_json:
        print("would remove:" if args.dry_run or not args.yes else "removing:")
        for *_, line in listing:
            print(f"  {line}")
    go = bool(listing) and not args.dry_run
    if go and not args.yes and not _ask(f"remove from {store.url}? [y/N] "):
        if as_json:
            dump({"dry_run": False, "declined": True, "tasks": tasks, "removed_steps": 0})
        else:
            print("nothing removed")
        return 1
    removed = 0
    if go:
        progress = Progress("removing", len(listing))
        removed = remove(progress)
        progress.done()
    if as_json:
        dump({"dry_run": args.dry_run, "declined": False, "tasks": tasks, "removed_steps": removed})
    elif go:
        print(f"removed {removed} steps from {len(listing)} task keys")
    return 0


def _ask(question: str) -> bool:
    print(question, end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _confirm_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask")
    parser.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
