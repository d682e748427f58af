"""The commands that look after the behavior cache: stats, ls, show, runs, rm and prune
(export, import and approve are in :mod:`.review`)."""

from __future__ import annotations

import argparse
import reprlib
import sys
from collections.abc import Callable, Iterable
from typing import Any

from .. import prune
from ..errors import MuscleMemError
from ..models import (
    TASK_KEY_PREFIX,
    Param,
    Redacted,
    RunRecord,
    Slot,
    Status,
    TaskInfo,
    Text,
    Traced,
)
from ..stats import TaskStats, compute, seconds
from ..store import Store
from ..trie import Node, SnapshotSet
from .common import (
    Command,
    Failed,
    UsageError,
    age_ago,
    open_for,
    wants_json,
    width,
)
from .output import Column, Progress, ago, clip, cut, dump, iso, short, table, wrap

CHECKS: tuple[Slot, ...] = ("pre", "post")  # the snapshot sets `show` lists
# A snapshot's value as `show` prints it: enough to recognise, bounded however big.
_abbreviated = reprlib.Repr()
_abbreviated.maxstring = _abbreviated.maxother = 200
_abbreviated.maxlist = _abbreviated.maxtuple = _abbreviated.maxdict = _abbreviated.maxset = 12


def add_commands(command: Command) -> None:
    stats = command("stats", _stats, "hit rate, divergences and what the cache saved")
    stats.add_argument(
        "--since", type=age_ago, metavar="AGE", help="only runs of the last AGE (7d, 12h)"
    )
    stats.add_argument("--tag", action="append", default=[], help="only runs with this tag")

    command("ls", _ls, "the tasks the cache holds")

    show = command("show", _show, "a task's tree of steps, their checks' snapshots and counts")
    show.add_argument("key", metavar="TASK", help="the start of the task's text or of its key")
    show.add_argument(
        "--snapshots",
        type=int,
        default=3,
        metavar="N",
        help="list each check's N most recently matched snapshots (default 3, 0: all)",
    )

    runs = command("runs", _runs, "the run log, newest first")
    runs.add_argument("--status", choices=[status.value for status in Status])
    runs.add_argument("--tag", action="append", default=[], help="only runs with this tag")
    runs.add_argument("--since", type=age_ago, metavar="AGE", help="only runs of the last AGE")
    runs.add_argument("-n", "--limit", type=int, default=20, help="how many (default 20, 0: all)")

    rm = command("rm", _rm, "forget tasks: their trees of steps (the run log stays)")
    rm.add_argument(
        "keys", nargs="*", metavar="TASK", help="the start of a task's text or of its key"
    )
    rm.add_argument("--all", action="store_true", help="every task the store holds")
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


def resolve(store: Store, names: Iterable[str]) -> list[TaskInfo]:
    """The tasks the given names select, each exactly one.

    A name is the start of a task key (with or without its ``task1:``) or of a task's
    text, in any case (``fill the`` selects ``Fill the form for {name}``); a whole key
    or a whole text selects its task even when it also starts another's."""
    tasks = store.tasks()
    return [_select(tasks, name) for name in names]


def _select(tasks: list[TaskInfo], name: str) -> TaskInfo:
    bare = name.removeprefix(TASK_KEY_PREFIX)
    words = _words(name)

    def hexes(task: TaskInfo) -> str:
        return task.task_key.removeprefix(TASK_KEY_PREFIX)

    exact = [t for t in tasks if hexes(t) == bare or (words and _words(t.text) == words)]
    if len(exact) == 1:
        return exact[0]
    found = exact or [
        t
        for t in tasks
        if (bare and hexes(t).startswith(bare)) or (words and _words(t.text).startswith(words))
    ]
    if not found:
        raise Failed(f"no task key or task text starts with {name!r}; `muscle-mem ls` lists them")
    if len(found) > 1:
        listed = [
            f"  {short(t.task_key)}  {clip(t.text or '-', 60)}  ({','.join(t.tags) or 'no tags'})"
            for t in found[:10]
        ]
        more = [f"  … and {len(found) - 10} more"] if len(found) > 10 else []
        raise Failed(
            f"{name!r} names {len(found)} tasks; give more of the text, or of the key:\n"
            + "\n".join(listed + more)
        )
    return found[0]


def _words(text: str) -> str:
    """Text as a name is matched against it: spaces collapsed, case folded."""
    return " ".join(text.split()).casefold()


def _task(text: str, task_key: str) -> str:
    """How a table names a task: by its text, else (recorded before muscle-mem kept
    it, or no longer in the store) by its short key."""
    return text or short(task_key)


def _texts(store: Store) -> dict[str, str]:
    """Each task key's text, for the run log's keys."""
    return {t.task_key: t.text for t in store.tasks()}


def _stats(args: argparse.Namespace) -> int:
    store = open_for(args, read_only=True)
    figures = compute(store.runs(since=args.since), tags=args.tag)
    texts = _texts(store)
    if wants_json(args):
        return dump(
            {
                "tasks": [_stats_json(t, texts.get(t.task_key, "")) for t in figures.tasks],
                "total": _stats_json(figures.total, None),
            }
        )
    if not figures.tasks:
        print(
            "no runs"
            + (" in that window" if args.since is not None or args.tag else " recorded yet")
        )
        return 0
    rows = [_stats_row(task, texts.get(task.task_key, "")) for task in figures.tasks]
    rows.append(_stats_row(figures.total, None))
    table(
        [
            Column("TASK", flex=True, least=24),
            Column("KEY", keep=1),
            Column("TAGS", keep=2),
            Column("RUNS", keep=10),
            Column("HITS", keep=4),
            Column("HIT RATE", keep=9),
            Column("MISSES", keep=3),
            Column("HANDOFFS", keep=3),
            Column("DIVERGED", keep=6),
            Column("TIME SAVED", keep=8),
            Column("TOKENS SAVED", keep=7),
            Column("COST SAVED", keep=5),
        ],
        rows,
        total=True,
        width=width(args),
    )
    total = figures.total
    if total.reasons:
        print("\nwhy replay stopped (most common):")
        for reason, count in total.reasons:
            print(wrap(reason, width(args), f"  {count:>5}  ", " " * 9))
    return 0


def _stats_row(task: TaskStats, text: str | None) -> list[str]:
    """A table row; ``text`` None for the total."""
    diverged = f"{task.divergence_rate:.0%}"
    if task.diverged_at:
        diverged += f" (step {task.diverged_at[0][0]})"
    return [
        task.task_key if text is None else _task(text, task.task_key),
        "" if text is None else short(task.task_key),
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


def _stats_json(task: TaskStats, text: str | None) -> dict[str, Any]:
    """A task's figures, with its text (None: the total, which has none)."""
    figures = task.to_dict()
    figures["last_run"] = iso(task.last_run) if task.runs else None
    return figures if text is None else {**figures, "text": text}


def _ls(args: argparse.Namespace) -> int:
    tasks = open_for(args, read_only=True).tasks()
    if wants_json(args):
        return dump([_task_json(t) for t in tasks])
    if not tasks:
        print("the cache is empty")
        return 0
    table(
        [
            Column("KEY", keep=5),
            Column("TASK", flex=True),
            Column("TAGS", keep=3),
            Column("PATHS", keep=6),
            Column("APPROVED", keep=2),
            Column("NODES", keep=1),
            Column("LAST USED", keep=4),
        ],
        [
            [
                short(t.task_key),
                t.text or "-",
                ",".join(t.tags),
                str(t.paths),
                str(t.approved),
                str(t.nodes),
                ago(t.last_used),
            ]
            for t in tasks
        ],
        width=width(args),
    )
    return 0


def _task_json(info: TaskInfo) -> dict[str, Any]:
    return {
        **info._asdict(),
        "tags": list(info.tags),
        "created_at": iso(info.created_at),
        "last_used": iso(info.last_used),
    }


def _show(args: argparse.Namespace) -> int:
    if args.snapshots < 0:
        raise UsageError("--snapshots must be 0 (all) or more")
    store = open_for(args, read_only=True)
    [info] = resolve(store, [args.key])
    tree = store.tree(info.task_key)
    paths = {end.id: n for n, end in enumerate(tree.ends(), 1)}  # as approve --path counts
    times = store.snapshot_times(info.task_key)
    if wants_json(args):
        steps = _node_json(tree.root, paths, args.snapshots, times)
        return dump({**_task_json(info), "steps": steps})
    w = width(args)
    print(clip(info.text or "(the task's text is unknown: recorded before muscle-mem kept it)", w))
    print(cut(f"  key: {info.task_key}", w))
    print(
        cut(
            f"  tags: {','.join(info.tags) or '-'} · paths: {info.paths} "
            f"({info.approved} approved) · nodes: {info.nodes} · "
            f"last used: {ago(info.last_used)}",
            w,
        )
    )
    _print_children(tree.root, "", paths, w, args.snapshots, times)
    return 0


Times = dict[tuple[str, str, bytes], float]  # see Store.snapshot_times


def _print_children(
    node: Node, indent: str, paths: dict[str, int], w: int | None, limit: int, times: Times
) -> None:
    children = node.children
    for i, child in enumerate(children):
        last = i == len(children) - 1
        print(cut(f"{indent}{'└─' if last else '├─'} {_call(child)}", w))
        below = indent + ("   " if last else "│  ")  # what stands left of the child's lines
        about = below + ("│  " if child.children else "   ")
        facts = (
            f"snapshots: pre {len(child.pre)}, post {len(child.post)} · hits {child.hits} · "
            f"failures {child.failures}"
        )
        print(cut(f"{about}{facts}", w))
        for which in CHECKS:
            shown, hidden = _snapshots(child, which, limit, times)
            gap = " " * (len(which) + 2)
            for j, (value, when) in enumerate(shown):
                label = f"{which}: " if j == 0 else gap
                after = " (earlier)" if when is None else f" (last matched {ago(when)})"
                room = None if w is None else max(w - len(about + label + after), 8)
                print(f"{about}{label}{clip(value, room)}{after}")
            if hidden:
                print(cut(f"{about}{gap}… and {hidden} more (--snapshots 0 shows all)", w))
        if child.terminal:
            print(cut(f"{about}{_end_mark(child, paths)}", w))
        _print_children(child, below, paths, w, limit, times)


def _end_mark(end: Node, paths: dict[str, int]) -> str:
    """Where a path ends, numbered as `muscle-mem approve --path` takes it."""
    return f"path {paths[end.id]} ends here ({'approved' if end.approved else 'not approved'})"


def _snapshots(
    node: Node, which: Slot, limit: int, times: Times
) -> tuple[list[tuple[str, float | None]], int]:
    """A check's snapshots at ``node``, most recently matched first, at most ``limit``
    (0: all), each as its value abbreviated and when it was last matched if that is
    known; and how many more there are.

    The store's times say when; where it keeps none, the latest was matched when the
    step was last used, and the others earlier."""
    kept = node.snapshots(which)
    keys = kept.keys()[::-1]
    if limit:
        keys = keys[:limit]
    shown = [
        (
            _snapshot(kept, key),
            times.get((node.id, which, key), node.last_used if i == 0 else None),
        )
        for i, key in enumerate(keys)
    ]
    return shown, len(kept) - len(keys)


def _snapshot(kept: SnapshotSet, key: bytes) -> str:
    try:
        return _abbreviated.repr(kept.value(key))
    except (MuscleMemError, KeyError) as error:  # a class this process can't rebuild
        return f"<cannot read it: {error}>"


def _node_json(node: Node, paths: dict[str, int], limit: int, times: Times) -> list[dict[str, Any]]:
    return [
        {
            "id": child.id,
            "call": _call(child),
            "tool": child.step.tool if child.step else None,
            "pre_snapshots": len(child.pre),
            "post_snapshots": len(child.post),
            **{
                which: [
                    {"value": value, "last_matched": None if when is None else iso(when)}
                    for value, when in _snapshots(child, which, limit, times)[0]
                ]
                for which in CHECKS
            },
            "hits": child.hits,
            "failures": child.failures,
            "terminal": child.terminal,
            "path": paths.get(child.id),  # the number of the path that ends here
            "approved": child.approved,
            "last_used": iso(child.last_used),
            "steps": _node_json(child, paths, limit, times),
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
    store = open_for(args, read_only=True)
    newest_first = sorted(store.runs(since=args.since), key=lambda r: -r.started_at)
    log = [
        run
        for run in newest_first
        if (args.status is None or run.status == args.status) and set(args.tag).issubset(run.tags)
    ]
    if args.limit:
        log = log[: args.limit]
    texts = _texts(store)
    if wants_json(args):
        return dump([_run_json(run, texts.get(run.task_key, "")) for run in log])
    if not log:
        print("no runs")
        return 0
    table(
        [
            Column("WHEN", keep=9),
            Column("KEY", keep=1),
            Column("TASK", flex=True, least=16),
            Column("TAGS", keep=2),
            Column("STATUS"),
            Column("REPLAYED", keep=6),
            Column("RECORDED", keep=5),
            Column("DIVERGED AT", keep=4),  # the reason starts with the step too
            Column("TIME", keep=7),
            Column("TOKENS", keep=3),
            Column("REASON", keep=8, flex=True, least=30, wrap=True),
        ],
        [
            [
                ago(run.started_at),
                short(run.task_key),
                _task(texts.get(run.task_key, ""), run.task_key),
                ",".join(run.tags),
                run.status,
                str(run.replayed),
                str(run.recorded),
                "-" if run.diverged_at is None else str(run.diverged_at),
                seconds(run.duration_s),
                f"{run.tokens:,}",
                run.reason or "",
            ]
            for run in log
        ],
        width=width(args),
    )
    return 0


def _run_json(run: RunRecord, text: str) -> dict[str, Any]:
    return {
        **run._asdict(),
        "text": text,
        "tags": list(run.tags),
        "params": list(run.params),
        "started_at": iso(run.started_at),
    }


# What a removal lists: per task key, its text, how many steps go and a line saying so.
Listing = list[tuple[str, str, int, str]]


def _rm(args: argparse.Namespace) -> int:
    if args.all == bool(args.keys):
        raise UsageError("name the tasks to remove, or say --all (not both)")
    store = open_for(args)
    tasks = store.tasks() if args.all else resolve(store, args.keys)
    named = {t.task_key: t for t in tasks}  # a key named twice, once
    listing: Listing = [
        (
            t.task_key,
            t.text,
            t.nodes,
            f"{short(t.task_key)} ({','.join(t.tags) or 'no tags'}): "
            f"{t.nodes} steps, {t.paths} paths · {t.text or '-'}",
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
    texts = _texts(store)
    listing: Listing = [
        (p.task_key, texts.get(p.task_key, ""), len(p.nodes), _prune_line(p, texts)) for p in plans
    ]
    return _remove(
        args,
        store,
        listing,
        lambda progress: prune.apply(store, plans, progress=progress.update),
    )


def _prune_line(plan: prune.TaskPlan, texts: dict[str, str]) -> str:
    left = "all of it" if not plan.left else f"{plan.left} left"
    return (
        f"{short(plan.task_key)}: {len(plan.nodes)} of {plan.steps} steps, "
        f"{' and '.join(plan.reasons)} ({left}) · {texts.get(plan.task_key) or '-'}"
    )


def _remove(
    args: argparse.Namespace,
    store: Store,
    listing: Listing,
    remove: Callable[[Progress], int],
) -> int:
    """Say what would go, ask unless --yes, then ``remove`` it (unless --dry-run)."""
    as_json = wants_json(args)
    tasks = [{"task_key": key, "text": text, "steps": steps} for key, text, steps, _ in listing]
    if not as_json and not listing:
        print("nothing to remove")
    elif not as_json:
        print("would remove:" if args.dry_run or not args.yes else "removing:")
        for *_, line in listing:
            print(cut(f"  {line}", width(args)))
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
