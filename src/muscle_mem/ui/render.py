"""The web view's sections as HTML, the same for the server's pages and the one-file
report, which differ only in how they link (:class:`~.page.Links`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from ..models import RunRecord
from ..stats import TaskStats
from ..stats import seconds as duration
from .chart import chart
from .data import (
    SINCE,
    Briefs,
    HeatMap,
    Overview,
    RunLog,
    StepView,
    Task,
    TaskTree,
    Timeline,
    Unreadable,
)
from .html import Content, Markup, el, joined
from .page import Links, page, task_anchor
from .values import call, literal

# -- the overview ------------------------------------------------------------------------


def overview(view: Overview, links: Links) -> Markup:
    total = view.total
    figures = el(
        "dl",
        _figure("runs", f"{total.runs:,}"),
        _figure("hit rate", _percent(total.hit_rate)),
        _figure("time saved", duration(total.time_saved_s)),
        _figure("tokens saved", f"{total.tokens_saved:,}"),
        _figure("cost saved", money(total.cost_saved)),
        _figure("diverged", f"{total.divergences:,}"),
        class_="figures",
    )
    body: list[Content] = [el("h1", "Tasks"), figures]
    if view.timeline.periods:
        body.append(el("h2", "Over time"))
        body.append(timeline_charts(view.timeline))
    body.append(el("h2", "Task keys"))
    body.append(tasks_table(view.tasks, links) if view.tasks else _empty("the cache is empty"))
    body.append(el("h2", "Where runs diverged"))
    body.append(
        heat_map(view.heat, links, "task")
        if view.heat.rows
        else _empty("no run has diverged: every replay either hit or never started")
    )
    return el("section", body, id="tasks")


def _figure(name: str, value: str) -> Markup:
    return el("div", el("dt", name), el("dd", value))


def timeline_charts(timeline: Timeline) -> Markup:
    points = [(_period(p.start, timeline.width_s), p) for p in timeline.periods]
    return el(
        "div",
        chart(
            "hit rate per period",
            [
                (label, p.hit_rate if p.runs else None, f"{p.hits} of {p.runs} runs")
                for label, p in points
            ],
            kind="bars",
            fmt=_percent,
            top=1.0,
        ),
        chart(
            "time saved, cumulative",
            [(label, p.time_saved_s, "") for label, p in points],
            kind="line",
            fmt=duration,
        ),
        chart(
            "tokens saved, cumulative",
            [(label, float(p.tokens_saved), "") for label, p in points],
            kind="line",
            fmt=lambda v: f"{v:,.0f}",
        ),
        class_="charts",
    )


def tasks_table(tasks: Sequence[Task], links: Links) -> Markup:
    head = ["task", "tags", "runs", "hit rate", "diverged", "time saved", "tokens saved"]
    head += ["paths", "last used"]
    rows = []
    for task in tasks:
        stats, info = task.stats, task.info
        rows.append(
            el(
                "tr",
                el("td", task_name(task, links)),
                el("td", _tags(task.tags)),
                _number(f"{stats.runs:,}" if stats else "0"),
                el("td", _rate(stats) if stats else "-", class_="num"),
                _number(_diverged(stats)),
                _number(duration(stats.time_saved_s) if stats else "-"),
                _number(f"{stats.tokens_saved:,}" if stats else "-"),
                _number(_paths(info.paths, info.approved) if info else "not cached"),
                el("td", when(info.last_used) if info else "-"),
            )
        )
    return _table(head, rows, class_="tasks")


def task_name(task: Task, links: Links) -> Markup:
    """The task's text as a link to its tree, with its short key beside it."""
    text = el("span", task.text, class_="text") if task.text else el("em", "no task text")
    return el("a", text, " ", el("code", task.short, class_="key"), href=links.task(task.task_key))


def _paths(paths: int, approved: int) -> str:
    return f"{paths} ({approved} approved)" if approved else str(paths)


def _rate(stats: TaskStats) -> Markup:
    return el(
        "span",
        el("meter", min="0", max="1", value=f"{stats.hit_rate:.3f}"),
        " ",
        _percent(stats.hit_rate),
        title=f"{stats.hits} hits, {stats.misses} misses, {stats.handoffs} handoffs, "
        f"{stats.errors} errors",
    )


def _diverged(stats: TaskStats | None) -> str:
    if stats is None or not stats.divergences:
        return "-"
    return f"{stats.divergences} (step {stats.diverged_at[0][0]})"


def heat_map(heat: HeatMap, links: Links, rows_are: str) -> Markup:
    """A table whose cells are runs diverged at a step, shaded by how many."""
    peak = heat.peak
    head = el(
        "tr",
        el("th", rows_are),
        [el("th", f"step {step}", class_="num") for step in heat.steps],
    )
    body = []
    for row in heat.rows:
        label: Content = row.label
        if row.task_key is not None:
            label = el("a", row.label, href=links.task(row.task_key))
        cells = [
            el(
                "td",
                str(count) if count else "",
                class_=f"heat heat-{_level(count, peak)}",
                title=f"{_runs(count)} diverged at step {step}",
                data_step=step,
                data_runs=count,
            )
            for step, count in zip(heat.steps, row.counts, strict=True)
        ]
        body.append(el("tr", el("th", label, scope="row"), cells))
    return el("table", el("thead", head), el("tbody", body), class_="heatmap", data_peak=peak)


def _level(count: int, peak: int) -> int:
    """0 for none, then 1..5 by the share of the peak."""
    return 0 if not count else max(1, min(5, -(-5 * count // max(peak, 1))))


# -- a task's tree -----------------------------------------------------------------------


def task_page(view: TaskTree, links: Links) -> Markup:
    task, stats = view.task, view.task.stats
    facts = [
        el("dt", "key"),
        el("dd", el("code", task.task_key)),
        el("dt", "tags"),
        el("dd", _tags(task.tags) or "-"),
        el("dt", "paths"),
        el("dd", _paths(view.paths, view.approved)),
    ]
    if stats is not None:
        facts += [
            el("dt", "runs"),
            el("dd", el("a", f"{stats.runs:,}", href=links.runs(task=task.task_key))),
            el("dt", "hit rate"),
            el("dd", _rate(stats)),
            el("dt", "saved"),
            el(
                "dd",
                f"{duration(stats.time_saved_s)}, {stats.tokens_saved:,} tokens, "
                f"{money(stats.cost_saved)}",
            ),
        ]
    body: list[Content] = [
        el("h2", task.text or el("em", "no task text"), " ", el("code", task.short), class_="task"),
        el("dl", facts, class_="facts"),
    ]
    if stats is not None and stats.reasons:
        body.append(el("h3", "Why replay stopped"))
        reasons = [el("li", _runs(n), ": ", el("q", reason)) for reason, n in stats.reasons]
        body.append(el("ul", reasons))
    body.append(el("h3", "Where runs diverged"))
    body.append(
        heat_map(view.heat, links, "path taken")
        if view.heat.rows
        else _empty("no run of this task has diverged")
    )
    body.append(el("h3", "Steps"))
    body.append(
        el("ol", [_step(step) for step in view.steps], class_="tree")
        if view.steps
        else _empty("nothing is cached for this task key")
    )
    return el("section", body, id=task_anchor(task.task_key), class_="task")


def _step(step: StepView) -> Markup:
    badges: list[Content] = []
    if step.path is not None:
        badges.append(el("span", f"path {step.path} ends here", class_="badge end"))
        badges.append(
            el("span", "approved", class_="badge approved")
            if step.approved
            else el("span", "not approved", class_="badge unapproved")
        )
    counts: list[Content] = [f"hits {step.hits} · failures {step.failures}"]
    if step.last_used:
        counts += [" · last used ", when(step.last_used)]
    checks = [
        _snapshots(which, shown, count)
        for which, shown, count in (
            ("pre-check", step.pre, step.pre_count),
            ("post-check", step.post, step.post_count),
        )
        if count
    ]
    return el(
        "li",
        el(
            "div",
            el("span", f"step {step.index}", class_="index"),
            " ",
            call(step),
            " ",
            badges,
            class_="call",
        ),
        el("div", counts, class_="counts"),
        checks,
        el("ol", [_step(child) for child in step.children]) if step.children else None,
        data_node=step.id,
        class_="step",
    )


def _snapshots(which: str, shown: Sequence[Any], count: int) -> Markup:
    items = [
        el(
            "li",
            el("span", f"cannot read it: {item.reason}", class_="error")
            if isinstance(item, Unreadable)
            else literal(item, 160),
            " ",
            el("span", "latest", class_="badge") if i == 0 else None,
            [" last matched ", when(matched)] if matched is not None else None,
        )
        for i, (item, matched) in enumerate(shown)
    ]
    more = count - len(shown)
    if more:
        items.append(el("li", f"and {more} more, matched less recently", class_="more"))
    noun = "snapshot" if count == 1 else "snapshots"
    return el(
        "details",
        el("summary", f"{which}: {count} {noun}"),
        el("ul", items, class_="snapshots"),
        class_="check",
    )


# -- the run log -------------------------------------------------------------------------


def run_log(log: RunLog, links: Links) -> Markup:
    wanted = log.filter
    form = el(
        "form",
        _select("status", "any status", [(s, s) for s in log.statuses], wanted.status),
        _select("tag", "any tag", [(t, t) for t in log.tags], wanted.tag),
        _select("task", "any task", [(t.task_key, t.name) for t in log.tasks], wanted.task),
        _select("since", "any time", [(str(s), name) for s, name in SINCE], str(wanted.since_s)),
        el("button", "filter", type="submit"),
        id="run-filter",
        method="get",
        action=None if links.report else "/runs",
        data_static=links.report,
    )
    shown = len(log.runs)
    count = (
        f"{log.matching:,} of {log.total:,} runs"
        if shown == log.matching
        else f"the newest {shown:,} of {log.matching:,} runs ({log.total:,} in the log)"
    )
    more = None
    if shown < log.matching and not links.report:  # the report holds what it holds
        everything = links.runs(
            status=wanted.status,
            tag=wanted.tag,
            task=wanted.task,
            since=str(wanted.since_s or ""),
            limit="0",
        )
        more = el("a", "show all", href=everything)
    head = ["when (UTC)", "task", "tags", "status", "replayed", "recorded", "diverged at"]
    head += ["time", "tokens", "reason"]
    rows = [_run_row(run, log, links) for run in log.runs]
    return el(
        "section",
        el("h1", "Runs"),
        form,
        el("p", el("span", count, id="run-count"), " ", more, class_="count"),
        _table(head, rows, id="run-table", class_="runs"),
        el("p", "no run matches", id="no-runs", hidden=bool(rows), class_="empty"),
        id="runs",
    )


def _select(name: str, anything: str, options: Sequence[tuple[str, str]], chosen: str) -> Markup:
    return el(
        "label",
        name,
        " ",
        el(
            "select",
            el("option", anything, value=""),
            [el("option", text, value=value, selected=value == chosen) for value, text in options],
            name=name,
        ),
    )


def _run_row(run: RunRecord, log: RunLog, links: Links) -> Markup:
    return el(
        "tr",
        el("td", el("time", stamp(run.started_at), datetime=_iso(run.started_at))),
        el("td", el("a", log.name(run.task_key), href=links.task(run.task_key))),
        el("td", _tags(run.tags)),
        el("td", el("span", str(run.status), class_=f"status status-{run.status}")),
        _number(str(run.replayed)),
        _number(str(run.recorded)),
        _number("-" if run.diverged_at is None else str(run.diverged_at)),
        _number(duration(run.duration_s)),
        _number(f"{run.tokens:,}"),
        el("td", run.reason or "", class_="reason"),
        data_status=str(run.status),
        data_tags=json.dumps(list(run.tags)),
        data_task=run.task_key,
        data_started=f"{run.started_at:.3f}",
    )


# -- the memory bank ---------------------------------------------------------------------


def bank(briefs: Briefs) -> Markup:
    body: list[Content] = [el("h1", "Memory bank")]
    if briefs.note:
        body.append(el("p", briefs.note, class_="note"))
    for i, (scope, text) in enumerate(briefs.scopes):
        body.append(
            el(
                "details",
                el("summary", el("code", scope)),
                markdown(text),
                open=i == 0,
                class_="brief",
                data_scope=scope,
            )
        )
    return el("section", body, id="bank")


def markdown(text: str) -> Markup:
    """The little markdown a brief is written in: headings, bullets and paragraphs."""
    out: list[Markup] = []
    items: list[Markup] = []
    for line in text.splitlines():
        if line.startswith("- "):
            items.append(el("li", line[2:]))
            continue
        if items:
            out.append(el("ul", items))
            items = []
        if line.startswith("## "):
            out.append(el("h4", line[3:]))
        elif line.startswith("# "):
            out.append(el("h3", line[2:]))
        elif line.strip():
            out.append(el("p", line))
    if items:
        out.append(el("ul", items))
    return el("div", out, class_="markdown")


# -- the whole report --------------------------------------------------------------------


def report(
    view: Overview, trees: Sequence[TaskTree], log: RunLog, briefs: Briefs, generated: float
) -> str:
    """Every section in one file: the overview, each task's tree, the run log, the bank."""
    links = Links(report=True)
    body = [
        el("p", f"A report of {view.store}, written {stamp(generated)} UTC.", class_="note"),
        overview(view, links),
        [task_page(tree, links) for tree in trees],
        run_log(log, links),
        bank(briefs),
    ]
    return page("report", body, links, view.store)


# -- small formats -----------------------------------------------------------------------


def _table(head: Sequence[str], rows: Sequence[Markup], **attributes: object) -> Markup:
    return el(
        "table",
        el("thead", el("tr", [el("th", h) for h in head])),
        el("tbody", rows),
        **attributes,
    )


def _number(text: str) -> Markup:
    return el("td", text, class_="num")


def _tags(tags: Sequence[str]) -> Markup:
    return joined(" ", (el("span", tag, class_="tag") for tag in tags))


def _runs(count: int) -> str:
    return f"{count:,} run{'s' * (count != 1)}"


def _empty(text: str) -> Markup:
    return el("p", text, class_="empty")


def _percent(value: float) -> str:
    return f"{value:.0%}"


def money(value: float) -> str:
    return f"-${-value:,.4f}" if value < 0 else f"${value:,.4f}"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat()


def stamp(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def when(timestamp: float) -> Markup:
    return el("time", stamp(timestamp), datetime=_iso(timestamp), title="UTC")


def _period(start: float, width: float) -> str:
    moment = datetime.fromtimestamp(start, timezone.utc)
    if width >= 86400:
        return moment.strftime("%Y-%m-%d")
    if width >= 60:
        return moment.strftime("%m-%d %H:%M")
    return moment.strftime("%H:%M:%S")
