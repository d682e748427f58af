"""The ``muscle-mem`` command, end to end: what it prints, what it changes, how it fails.

Most tests call :func:`muscle_mem.cli.main` in-process (fast); a few run the installed
script (and ``python -m muscle_mem``) as a subprocess, as a user would. The data is
real: an engine on a SQLite store (PostgreSQL too for stats, export and import) whose
agent records a three-step path with params, replays it, and hands over when the
environment changes under a pre-check.

Tiers (see conftest): most tests run once, on a SQLite file of their own; those about
moving figures and trees between stores run on SQLite and PostgreSQL (``@both_kinds``).
A command refuses a memory store, so none runs there.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import muscle_mem
from conftest import Engines, kinds
from muscle_mem import Check
from muscle_mem.cli import Progress, main
from muscle_mem.codec import encode
from muscle_mem.models import Changes, RunRecord, Step
from muscle_mem.store import open_store
from muscle_mem.trie import Tree

SCRIPT = str(Path(sys.executable).parent / "muscle-mem")
FORM = "fill the form"
REPORT = "send the report"
FLAKY = "open the dashboard"
DELAY = 0.02  # the agent "thinks" this long per step: misses are measurably slower
OLD_KEY = "task1:0123456789abcdef0123456789abcdef"  # a task key of the distant past
# The tasks' own words, as the store keeps them: the task's text, params by name.
FORM_TEXT, REPORT_TEXT, FLAKY_TEXT = FORM, REPORT, FLAKY  # no param in their words
DAY = 86400.0


# -- the agent and its data -------------------------------------------------------------


def build_engine(engines, store, world, *, secret=None):
    """An engine whose agent does one of three tasks:

    FORM (params: name): fill name, fill greeting ('Hello {name}!'), submit; the fills'
    pre-checks look at the page and at where the greeting box is. REPORT: one send.
    FLAKY (params: name): open a page, then click "go" (whose pre-check reads a counter
    that changes every run, so its replay keeps failing) and submit, or, in "alt" mode,
    click "other".
    """
    engine = engines(store=store, secret=secret)

    def where(field, value):
        return world["page"] if field == "name" else world["greeting_at"]

    @engine.function(pre_check=Check(where))
    def fill(field, value):
        world["log"].append(("fill", field, value))

    @engine.function
    def submit():
        world["log"].append(("submit",))

    @engine.function
    def send(to):
        world["log"].append(("send", to))

    @engine.function
    def open_page(url):
        world["log"].append(("open", url))

    def ready(target):
        return (world["mode"], world["counter"]) if target == "go" else world["mode"]

    @engine.function(pre_check=Check(ready))
    def click(target):
        world["log"].append(("click", target))

    def agent(task, name):
        handoff = muscle_mem.handoff()
        done = len(handoff.steps) if handoff else 0
        if task == FORM:
            for field, value in [("name", name), ("greeting", f"Hello {name}!")][done:]:
                time.sleep(DELAY)
                fill(field, value)
                muscle_mem.report_usage(tokens=100, cost=0.01)
            submit()
        elif task == REPORT:
            time.sleep(DELAY)
            send(name)
            muscle_mem.report_usage(tokens=50, cost=0.005)
        else:
            if not done:
                open_page(f"https://example.com/{name}")
            click("go" if world["mode"] == "go" else "other")
            if world["mode"] == "go":
                submit()
            muscle_mem.report_usage(tokens=10, cost=0.001)

    engine.set_agent(agent)
    return engine


def new_world():
    return {"page": "v1", "greeting_at": "#greeting", "mode": "go", "counter": 0, "log": []}


def form(engine, name):
    return engine(FORM, name, params={"name": name}, tags=["signup"])


def report(engine):
    return engine(REPORT, "ops@example.com", tags=["reports"])


def flaky(engine, name="dash"):
    return engine(FLAKY, name, params={"name": name}, tags=["dashboard"])


def record(engine, world):
    """The form: a miss, two hits, a handoff at step 1, a hit; the report: miss, hit."""
    outcomes = [form(engine, "John"), form(engine, "Jane"), form(engine, "Bob")]
    world["greeting_at"] = "#greeting-v2"  # the greeting box moved: step 1's check fails
    outcomes += [form(engine, "Ann"), form(engine, "Zoe")]
    outcomes += [report(engine), report(engine)]
    statuses = [o.status for o in outcomes]
    assert statuses == ["miss", "hit", "hit", "handoff", "hit", "miss", "hit"], outcomes
    assert outcomes[3].diverged_at == 1
    return outcomes


def record_flaky(engine, world):
    """A path whose second step's check fails on every replay, and a healthy branch."""
    statuses = [flaky(engine).status]
    for counter in (1, 2):  # the counter changed: click("go") cannot be replayed
        world["counter"] = counter
        statuses.append(flaky(engine).status)
    world["mode"] = "alt"
    statuses += [flaky(engine).status, flaky(engine).status]
    assert statuses == ["miss", "handoff", "handoff", "handoff", "hit"]


def keys(engine):
    return {
        "form": engine.task_key(FORM, "x", params={"name": "x"}, tags=["signup"]),
        "report": engine.task_key(REPORT, "ops@example.com", tags=["reports"]),
        "flaky": engine.task_key(FLAKY, "x", params={"name": "x"}, tags=["dashboard"]),
    }


def hexpart(task_key):
    return task_key.removeprefix("task1:")


def task_keys(url):
    store = open_store(url)
    try:
        return [info.task_key for info in store.tasks()]
    finally:
        store.close()


def add_old_runs(url):
    """Two runs of a task key, ten days ago, tagged "legacy": a miss and a hit."""
    store = open_store(url)
    try:
        old = time.time() - 10 * DAY
        for i, (status, duration, tokens, cost) in enumerate(
            [("miss", 2.0, 500, 0.05), ("hit", 0.5, 0, 0.0)]
        ):
            store.commit(
                Changes(OLD_KEY),
                RunRecord(
                    task_key=OLD_KEY,
                    tags=("legacy",),
                    params=(),
                    status=status,
                    replayed=0 if status == "miss" else 1,
                    recorded=1 if status == "miss" else 0,
                    diverged_at=None,
                    reason=None,
                    started_at=old + i,
                    duration_s=duration,
                    tokens=tokens,
                    cost=cost,
                    path="old-path",  # the miss recorded it, the hit replayed it
                ),
            )
    finally:
        store.close()


# -- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_secret_from_the_shell(monkeypatch):
    monkeypatch.delenv("MUSCLE_MEM_SECRET", raising=False)


@pytest.fixture
def engines():
    """Engines on the stores these tests name themselves (not ``$MUSCLE_MEM_STORE``, so
    asking for one does not run a test on every store kind); closed at the end."""
    made = Engines()
    yield made
    made.close()


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path}/cache.db"


@pytest.fixture
def world():
    return new_world()


@pytest.fixture
def recorded(url, world, engines):
    """A SQLite store holding the form and report tasks, and the engine that recorded it."""
    engine = build_engine(engines, url, world)
    outcomes = record(engine, world)
    return engine, outcomes


@pytest.fixture
def server(store_kind, stores):
    """A fresh store of the parametrised kind (sqlite or postgres) to record into."""
    assert store_kind in ("sqlite", "postgres")
    return stores.url()


both_kinds = kinds("sqlite", "postgres")


def cli(capsys, *args, stdin=None, monkeypatch=None):
    """Run ``muscle-mem ARGS`` in-process: (exit code, stdout, stderr)."""
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys, *args):
    code, out, err = cli(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def script_env(store=None, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSCLE_MEM_")}
    if store is not None:
        env["MUSCLE_MEM_STORE"] = store
    env.update(extra)
    return env


def script(*args, store=None, cwd=None, stdin=None, env=None, **extra):
    """Run the installed ``muscle-mem`` script, its output piped (not a terminal)."""
    return subprocess.run(
        [SCRIPT, *map(str, args)],
        env=env or script_env(store, **extra),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def piped(exporting, importing, store):
    """``muscle-mem EXPORTING | muscle-mem IMPORTING`` through the installed script, both
    with ``$MUSCLE_MEM_STORE=store``: (the exporter's stderr, the importer's run)."""
    exporter = subprocess.Popen(
        [SCRIPT, *exporting],
        env=script_env(store),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    importer = subprocess.run(
        [SCRIPT, *importing],
        env=script_env(store),  # a --store among IMPORTING wins over $MUSCLE_MEM_STORE
        stdin=exporter.stdout,
        capture_output=True,
        text=True,
        timeout=60,
    )
    exporter.stdout.close()
    export_err = exporter.stderr.read()
    exporter.stderr.close()
    assert exporter.wait(timeout=60) == 0, export_err
    return export_err, importer


def as_api(figures):
    """The CLI's stats JSON as :meth:`Stats.to_dict` has it: times as epoch seconds (the
    CLI's are ISO 8601), without the task's text (the API's figures have none)."""

    def task(t):
        t = {k: v for k, v in t.items() if k != "text"}
        t["last_run"] = iso_time(t["last_run"]) if t["last_run"] else 0.0
        return t

    return {"tasks": [task(t) for t in figures["tasks"]], "total": task(figures["total"])}


def untold(run):
    """A run of the log as JSON, without its task's text (the tree's, not the log's)."""
    return {k: v for k, v in run.items() if k != "text"}


def iso_time(text):
    """Epoch seconds of an ISO 8601 time the CLI printed, which must carry its zone."""
    when = datetime.fromisoformat(text)
    assert when.utcoffset() == timedelta(0), text
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", text), text
    return when.timestamp()


def same(cli_value, api_value, where="stats"):
    """The CLI's JSON figures equal the API's, floats within rounding."""
    if isinstance(api_value, dict):
        assert isinstance(cli_value, dict) and set(cli_value) == set(api_value), where
        for key in api_value:
            same(cli_value[key], api_value[key], f"{where}.{key}")
    elif isinstance(api_value, (list, tuple)):
        assert isinstance(cli_value, list) and len(cli_value) == len(api_value), where
        for i, (c, a) in enumerate(zip(cli_value, api_value, strict=True)):
            same(c, a, f"{where}[{i}]")
    elif isinstance(api_value, float):
        assert cli_value == pytest.approx(api_value), where
    else:
        assert cli_value == api_value, where


def export_of(capsys, store_url, *args):
    code, out, err = cli(capsys, "export", "--store", store_url, *args)
    assert code == 0, err
    return out.splitlines()


# -- stats -------------------------------------------------------------------------------


@both_kinds
def test_stats_json_gives_the_figures_of_the_run_log_and_of_engine_stats(
    engines, server, world, capsys
):
    engine = build_engine(engines, server, world)
    miss, hit1, hit2, _, hit3, _, _ = record(engine, world)
    k = keys(engine)
    figures = cli_json(capsys, "stats", "--store", server)

    form_stats, report_stats = figures["tasks"]  # most runs first
    assert form_stats["task_key"] == k["form"] and report_stats["task_key"] == k["report"]
    assert form_stats["tags"] == ["signup"]
    expected = {"runs": 5, "hits": 3, "misses": 1, "handoffs": 1, "errors": 0, "divergences": 1}
    assert {name: form_stats[name] for name in expected} == expected
    assert form_stats["hit_rate"] == pytest.approx(0.6)
    assert form_stats["divergence_rate"] == pytest.approx(0.2)
    assert form_stats["diverged_at"] == [{"step": 1, "runs": 1}]
    [why] = form_stats["reasons"]
    assert why["runs"] == 1 and why["reason"].startswith("step 1: the pre-check of")
    assert "fill" in why["reason"]
    # Each hit saves what the miss that recorded its path spent.
    assert form_stats["tokens_saved"] == 3 * miss.tokens == 600
    assert form_stats["cost_saved"] == pytest.approx(3 * 0.02)
    assert form_stats["tokens"] == 200 + 100 and form_stats["cost"] == pytest.approx(0.03)
    hits = (hit1, hit2, hit3)
    assert form_stats["time_saved_s"] == pytest.approx(
        3 * miss.duration_s - sum(h.duration_s for h in hits)
    )
    assert form_stats["time_saved_s"] > 3 * 2 * DELAY * 0.5

    assert (report_stats["runs"], report_stats["hits"], report_stats["misses"]) == (2, 1, 1)
    assert report_stats["tokens_saved"] == 50 and report_stats["diverged_at"] == []
    total = figures["total"]
    assert total["task_key"] == "total" and total["tags"] == []
    assert (total["runs"], total["hits"], total["misses"], total["handoffs"]) == (7, 4, 2, 1)
    assert total["hit_rate"] == pytest.approx(4 / 7)
    assert total["tokens_saved"] == 650 and total["cost_saved"] == pytest.approx(0.065)
    assert total["time_saved_s"] == pytest.approx(
        form_stats["time_saved_s"] + report_stats["time_saved_s"]
    )
    assert total["time_saved_s"] > 0
    assert form_stats["text"] == FORM_TEXT and report_stats["text"] == REPORT_TEXT
    assert "text" not in total
    assert iso_time(total["last_run"]) == pytest.approx(
        max(r.started_at for r in engine.store.runs())
    )
    # The CLI is a thin layer: the same figures as the Python API.
    same(as_api(figures), engine.stats().to_dict())
    assert engine.stats().total.hits == 4


@both_kinds
def test_stats_since_and_tag_keep_only_those_runs(engines, server, world, capsys):
    engine = build_engine(engines, server, world)
    record(engine, world)
    add_old_runs(server)
    k = keys(engine)

    everything = cli_json(capsys, "stats", "--store", server)
    assert [t["task_key"] for t in everything["tasks"]] == [k["form"], OLD_KEY, k["report"]]
    assert everything["total"]["runs"] == 9
    same(as_api(everything), engine.stats().to_dict())

    recent = cli_json(capsys, "stats", "--store", server, "--since", "7d")
    assert [t["task_key"] for t in recent["tasks"]] == [k["form"], k["report"]]
    assert recent["total"]["runs"] == 7
    same(as_api(recent), engine.stats(since=timedelta(days=7)).to_dict())

    legacy = cli_json(capsys, "stats", "--store", server, "--tag", "legacy")
    [old] = legacy["tasks"]
    assert old["text"] == ""  # a key the store holds no tree of: its text is unknown
    assert (old["task_key"], old["runs"], old["hits"], old["misses"]) == (OLD_KEY, 2, 1, 1)
    assert old["tokens_saved"] == 500 and old["time_saved_s"] == pytest.approx(1.5)
    same(as_api(legacy), engine.stats(tags=["legacy"]).to_dict())

    signup = cli_json(capsys, "stats", "--store", server, "--tag", "signup", "--since", "1h")
    assert [t["task_key"] for t in signup["tasks"]] == [k["form"]]
    assert signup["total"]["runs"] == 5
    none = cli_json(capsys, "stats", "--store", server, "--tag", "legacy", "--since", "7d")
    assert none["tasks"] == [] and none["total"]["runs"] == 0
    assert none["total"]["last_run"] is None  # no run, no time
    code, out, _ = cli(capsys, "stats", "--store", server, "--tag", "legacy", "--since", "7d")
    assert (code, out.strip()) == (0, "no runs in that window")


def test_stats_since_agrees_with_engine_stats_given_a_timedelta(engines, url, world, capsys):
    engine = build_engine(engines, url, world)
    record(engine, world)
    add_old_runs(url)
    recent = cli_json(capsys, "stats", "--store", url, "--since", "2w")
    assert recent["total"]["runs"] == 9
    same(as_api(recent), engine.stats(since=timedelta(weeks=2)).to_dict())
    recent = cli_json(capsys, "stats", "--store", url, "--since", "12h")
    same(as_api(recent), engine.stats(since=timedelta(hours=12)).to_dict())
    assert recent["total"]["runs"] == 7


def test_stats_table_from_the_installed_script(recorded, url):
    engine, _ = recorded
    k = keys(engine)
    done = script("stats", store=url)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    header = lines[0].split()
    assert header[:6] == ["TASK", "KEY", "TAGS", "RUNS", "HITS", "HIT"]
    [form_row] = [line for line in lines if line.startswith(FORM_TEXT)]
    cells = form_row.removeprefix(FORM_TEXT).split()
    assert cells[:6] == [hexpart(k["form"])[:12], "signup", "5", "3", "60%", "1"]
    assert "20% (step 1)" in form_row and "600" in form_row and "$0.0600" in form_row
    assert lines[2].startswith(REPORT_TEXT)
    [total_row] = [line for line in lines if line.startswith("total")]
    assert total_row.split()[1:4] == ["7", "4", "57%"]
    assert "650" in total_row
    assert "why replay stopped (most common):" in done.stdout
    assert "step 1: the pre-check of" in done.stdout


def test_stats_of_an_empty_store(tmp_path, capsys):
    empty = f"sqlite:///{tmp_path}/empty.db"
    open_store(empty).close()
    code, out, err = cli(capsys, "stats", "--store", empty)
    assert (code, out.strip(), err) == (0, "no runs recorded yet", "")
    assert cli_json(capsys, "stats", "--store", empty)["total"]["runs"] == 0


# -- ls and show ---------------------------------------------------------------------------


def test_ls_lists_task_keys_with_tags_paths_nodes_and_last_use(recorded, url, world, capsys):
    engine, _ = recorded
    record_flaky(engine, world)
    k = keys(engine)
    listed = {t["task_key"]: t for t in cli_json(capsys, "ls", "--store", url)}
    assert set(listed) == set(k.values())
    assert (listed[k["form"]]["tags"], listed[k["form"]]["paths"]) == (["signup"], 1)
    assert listed[k["form"]]["nodes"] == 3
    assert (listed[k["report"]]["tags"], listed[k["report"]]["nodes"]) == (["reports"], 1)
    assert (listed[k["flaky"]]["paths"], listed[k["flaky"]]["nodes"]) == (2, 4)
    assert all(time.time() - iso_time(t["last_used"]) < 60 for t in listed.values())
    assert all(iso_time(t["created_at"]) <= iso_time(t["last_used"]) for t in listed.values())
    assert listed[k["form"]]["text"] == FORM_TEXT and listed[k["flaky"]]["text"] == FLAKY_TEXT
    assert listed[k["form"]]["approved"] == 0  # recorded paths start unapproved

    assert cli(capsys, "--json", "--store", url, "ls")[1] == cli(capsys, "ls", "--json",
                                                                  "--store", url)[1]  # fmt: skip
    code, out, err = cli(capsys, "--store", url, "ls")  # --store before the command too
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == [
        "KEY", "TASK", "TAGS", "PATHS", "APPROVED", "NODES", "LAST USED"
    ]  # fmt: skip
    rows = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line) for line in lines[1:])}
    assert rows[hexpart(k["form"])[:12]] == [FORM_TEXT, "signup", "1", "0", "3", "just now"]
    assert rows[hexpart(k["flaky"])[:12]] == [FLAKY_TEXT, "dashboard", "2", "0", "4", "just now"]
    assert rows[hexpart(k["report"])[:12]] == [REPORT_TEXT, "reports", "1", "0", "1", "just now"]


def test_ls_of_an_empty_store(tmp_path, capsys):
    empty = f"sqlite:///{tmp_path}/empty.db"
    open_store(empty).close()
    assert cli(capsys, "ls", "--store", empty)[:2] == (0, "the cache is empty\n")
    assert cli_json(capsys, "ls", "--store", empty) == []


def test_show_draws_the_tree_with_params_snapshots_and_counts(recorded, url, capsys):
    engine, _ = recorded
    key = keys(engine)["form"]
    assert hexpart(key)[:4] != hexpart(keys(engine)["report"])[:4]
    code, out, err = cli(capsys, "show", hexpart(key)[:4], "--store", url)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[:3] == [
        FORM_TEXT,
        f"  key: {key}",
        "  tags: signup · paths: 1 (0 approved) · nodes: 3 · last used: just now",
    ]
    calls = [line for line in lines if "─ " in line]
    assert len(calls) == 3
    assert calls[0].startswith("└─ ") and calls[0].endswith(".fill('name', {name})")
    assert calls[1].endswith(".fill('greeting', 'Hello {name}!')")
    assert calls[2].endswith(".submit()")
    facts = [line.strip(" │") for line in lines if "snapshots:" in line]
    assert facts == [
        "snapshots: pre 1, post 0 · hits 4 · failures 0",  # every run replayed it
        "snapshots: pre 2, post 0 · hits 3 · failures 1",  # two greeting boxes, one miss
        "snapshots: pre 0, post 0 · hits 3 · failures 0",
    ]
    assert lines[-1].strip() == "path 1 ends here (not approved)"  # numbered for approve
    # Each check's snapshots by value, the most recently matched first, with when.
    values = [
        line.strip(" │") for line in lines[3:-1] if "─ " not in line and "snapshots:" not in line
    ]
    assert values == [
        "pre: 'v1' (last matched just now)",
        "pre: '#greeting-v2' (last matched just now)",  # the box moved: matched since
        "'#greeting' (last matched just now)",
    ]
    for name in ("John", "Jane", "Bob", "Ann", "Zoe"):
        assert name not in out  # params are shown by name, never by value

    # The full key, with or without its "task1:" prefix, names the same tree; so does
    # the start of its text, in any case.
    for name in (key, hexpart(key), "fill", "FILL  THE", "fill the form"):
        assert cli(capsys, "show", name, "--store", url)[1] == out, name
    assert cli(capsys, "show", "send the", "--store", url)[1].startswith(REPORT_TEXT + "\n")


def test_show_lists_a_few_snapshots_unless_asked_for_all(engines, url, world, capsys):
    engine = build_engine(engines, url, world)
    for page in ("v1", "v2", "v3", "v4", "v5"):  # a new page each time: five environments
        world["page"] = page
        form(engine, "John")
    # When each was last matched is the store's: make the older ones older.
    for page, hours in (("v1", 72), ("v2", 48), ("v3", 5), ("v4", 2)):
        engine.store.write(
            lambda cur, page=page, hours=hours: cur.execute(
                "UPDATE mm_snapshots SET used = ? WHERE data = ?",
                (time.time() - hours * 3600, encode(page)),
            )
        )
    code, out, _ = cli(capsys, "show", "fill", "--store", url)
    assert code == 0
    pre = [line.strip(" │") for line in out.splitlines() if "'v" in line or "more" in line]
    assert pre == [
        "pre: 'v5' (last matched just now)",
        "'v4' (last matched 2h ago)",
        "'v3' (last matched 5h ago)",
        "… and 2 more (--snapshots 0 shows all)",
    ]
    code, out, _ = cli(capsys, "show", "fill", "--snapshots", "0", "--store", url)
    last = [line.strip(" │") for line in out.splitlines() if "'v" in line][-1]
    assert last == "'v1' (last matched 3d ago)"
    shown = cli_json(capsys, "show", "fill", "--snapshots", "2", "--store", url)
    [name] = shown["steps"]
    assert name["pre_snapshots"] == 5 and name["post"] == []
    assert [s["value"] for s in name["pre"]] == ["'v5'", "'v4'"]
    assert iso_time(name["pre"][0]["last_matched"]) == pytest.approx(iso_time(name["last_used"]))
    assert iso_time(name["pre"][1]["last_matched"]) == pytest.approx(time.time() - 7200, abs=60)
    code, _, err = cli(capsys, "show", "fill", "--snapshots", "-1", "--store", url)
    assert code == 2 and "--snapshots" in err


def test_show_json_nests_the_steps(recorded, url, capsys):
    engine, _ = recorded
    key = keys(engine)["form"]
    shown = cli_json(capsys, "show", hexpart(key)[:6], "--store", url)
    assert (shown["task_key"], shown["tags"], shown["paths"], shown["nodes"]) == (
        key,
        ["signup"],
        1,
        3,
    )
    assert (shown["text"], shown["approved"]) == (FORM_TEXT, 0)
    assert iso_time(shown["created_at"]) <= iso_time(shown["last_used"])
    [name] = shown["steps"]
    [greeting] = name["steps"]
    [submit] = greeting["steps"]
    assert name["call"].endswith("fill('name', {name})") and name["tool"].endswith(".fill")
    assert (name["pre_snapshots"], name["hits"], name["failures"]) == (1, 4, 0)
    assert [s["value"] for s in name["pre"]] == ["'v1'"]
    assert greeting["call"].endswith("fill('greeting', 'Hello {name}!')")
    assert (greeting["pre_snapshots"], greeting["hits"], greeting["failures"]) == (2, 3, 1)
    assert [s["value"] for s in greeting["pre"]] == ["'#greeting-v2'", "'#greeting'"]
    assert (submit["terminal"], submit["steps"], submit["hits"]) == (True, [], 3)
    assert (submit["path"], submit["approved"], name["path"]) == (1, False, None)
    assert not name["terminal"] and not greeting["terminal"]
    assert all(iso_time(step["last_used"]) for step in (name, greeting, submit))
    tree = engine.store.tree(key)
    assert {name["id"], greeting["id"], submit["id"]} == {n.id for n in tree if n.step}


def test_show_an_ambiguous_or_unknown_prefix_exits_1_and_says_why(tmp_path, capsys):
    crafted = f"sqlite:///{tmp_path}/crafted.db"
    store = open_store(crafted)
    for key in ("task1:beef01" + "0" * 26, "task1:beef02" + "0" * 26):
        tree = Tree(key)
        tree.insert(tree.root, Step("tool.one", "code", encode(((), {})))).terminal = True
        store.merge(tree, ("crafted",))
    store.close()

    code, out, err = cli(capsys, "show", "beef", "--store", crafted)
    assert (code, out) == (1, "")
    assert err.splitlines() == [  # both, so one can choose (their text is not known)
        "muscle-mem: 'beef' names 2 tasks; give more of the text, or of the key:",
        "  beef01000000  -  (crafted)",
        "  beef02000000  -  (crafted)",
    ]
    code, out, err = cli(capsys, "show", "cafe", "--store", crafted)
    assert (code, out) == (1, "")
    assert "no task key or task text starts with 'cafe'; `muscle-mem ls` lists them" in err
    code, _, err = cli(capsys, "show", "task1:", "--store", crafted)
    assert code == 1 and "no task key or task text starts with 'task1:'" in err
    code, out, _ = cli(capsys, "show", "beef02", "--store", crafted)
    assert code == 0 and "  key: task1:beef02" in out
    assert "tool.one()" in out


def test_a_prefix_of_the_text_names_every_task_it_starts(engines, url, world, capsys):
    engine = build_engine(engines, url, world)
    record(engine, world)
    engine(FORM, "x", params={"name": "x"}, tags=["other"])  # the same words, other tags
    k = keys(engine)
    code, out, err = cli(capsys, "show", "fill the", "--store", url)
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert lines[0] == "muscle-mem: 'fill the' names 2 tasks; give more of the text, or of the key:"
    assert f"  {hexpart(k['form'])[:12]}  {FORM_TEXT}  (signup)" in lines
    assert any(line.endswith(f"  {FORM_TEXT}  (other)") for line in lines)
    # The key tells them apart; rm takes the same names.
    code, out, _ = cli(capsys, "rm", "send", hexpart(k["form"])[:8], "--dry-run", "--store", url)
    assert code == 0 and len(out.splitlines()) == 3


# -- runs ------------------------------------------------------------------------------------


def test_runs_newest_first_filtered_by_status_tag_and_limit(recorded, url, capsys):
    engine, outcomes = recorded
    add_old_runs(url)
    everything = cli_json(capsys, "runs", "--store", url, "--limit", "0")
    assert len(everything) == 9
    log = [r for r in everything if r["task_key"] != OLD_KEY]
    assert [r["status"] for r in log] == ["hit", "miss", "hit", "handoff", "hit", "hit", "miss"]
    started = [r["started_at"] for r in log]
    assert started == sorted(started, reverse=True)  # ISO strings in UTC sort as times
    assert [iso_time(t) for t in started] == sorted(map(iso_time, started), reverse=True)
    assert [r["text"] for r in log[:2]] == [REPORT_TEXT, REPORT_TEXT]
    assert {r["text"] for r in everything if r["task_key"] == OLD_KEY} == {""}  # no tree
    newest = log[0]
    assert newest["tags"] == ["reports"] and newest["params"] == []
    assert newest["replayed"] == 1 and newest["recorded"] == 0
    handoff = log[3]
    assert (handoff["diverged_at"], handoff["replayed"], handoff["recorded"]) == (1, 1, 2)
    assert handoff["tokens"] == 100 and handoff["params"] == ["name"]
    assert handoff["reason"].startswith("step 1: the pre-check of")
    assert handoff["duration_s"] == pytest.approx(outcomes[3].duration_s)

    assert len(cli_json(capsys, "runs", "--store", url)) == 9  # the default limit is 20
    two = cli_json(capsys, "runs", "--store", url, "--since", "1d", "-n", "2")
    assert [r["status"] for r in two] == ["hit", "miss"]
    misses = cli_json(capsys, "runs", "--store", url, "--status", "miss", "--since", "1d")
    assert [r["task_key"] for r in misses] == [keys(engine)["report"], keys(engine)["form"]]
    signup = cli_json(capsys, "runs", "--store", url, "--tag", "signup", "--status", "hit")
    assert len(signup) == 3 and all(r["tags"] == ["signup"] for r in signup)
    handoffs = cli_json(capsys, "runs", "--store", url, "--status", "handoff")
    assert [r["diverged_at"] for r in handoffs] == [1]
    recent = cli_json(capsys, "runs", "--store", url, "--since", "1d", "-n", "0")
    assert len(recent) == 7 and OLD_KEY not in {r["task_key"] for r in recent}
    assert cli_json(capsys, "runs", "--store", url, "--tag", "nope") == []


def test_runs_are_newest_first_by_when_they_started(recorded, url, capsys):
    """Runs logged late (imported history, a long run of another worker that finished
    after a short one) still take their place by time: newest first means by started_at."""
    add_old_runs(url)  # logged last, started ten days ago
    log = cli_json(capsys, "runs", "--store", url, "--limit", "0")
    started = [r["started_at"] for r in log]
    assert started == sorted(started, reverse=True)
    assert [r["task_key"] for r in log][-2:] == [OLD_KEY, OLD_KEY]
    assert [r["status"] for r in cli_json(capsys, "runs", "--store", url, "-n", "1")] == ["hit"]
    assert cli_json(capsys, "runs", "--store", url, "-n", "1")[0]["task_key"] != OLD_KEY


def test_runs_table(recorded, url, capsys):
    engine, _ = recorded
    code, out, err = cli(capsys, "runs", "--store", url, "--status", "handoff")
    assert (code, err) == (0, "")
    header, row = out.splitlines()  # not a terminal: as wide as it takes
    assert header.split()[:5] == ["WHEN", "KEY", "TASK", "TAGS", "STATUS"]
    assert f"{hexpart(keys(engine)['form'])[:12]}  {FORM_TEXT}  signup  handoff " in row
    reason = engine.store.runs()[3].reason
    assert row.endswith(f"  {reason}") and "matched none of 1 recorded snapshot(s)" in reason
    code, out, _ = cli(capsys, "runs", "--store", url, "--status", "error")
    assert (code, out) == (0, "no runs\n")
    code, _, err = cli(capsys, "runs", "--store", url, "--limit", "-1")
    assert code == 2 and "--limit" in err


# -- the terminal's width -----------------------------------------------------------------

# A task of many words, on three tags: wider than any terminal's column for it.
LONG = (
    "open the weekly funnel review for {name} and flag every step that lost more than "
    "five percent of its visitors since the last review"
)
LONG_TEXT = LONG


@pytest.fixture
def everything(url, world, engines):
    """The form and report tasks, the flaky one, and a task of many words (it runs the
    flaky agent's steps), with a handoff whose reason is long."""
    engine = build_engine(engines, url, world)
    record(engine, world)
    record_flaky(engine, world)
    long = LONG.replace("{name}", "dash")
    engine(long, "dash", params={"name": "dash"}, tags=["dashboard", "funnel", "weekly"])
    return engine


def at(capsys, monkeypatch, columns, *args):
    """``muscle-mem ARGS`` in a terminal ``columns`` wide: its output."""
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, err = cli(capsys, *args)
    assert (code, err) == (0, ""), (args, err)
    return out


def words(text):
    """The text without its spaces: the same however it was wrapped."""
    return "".join(text.split())


COMMANDS = [
    ["stats"],
    ["ls"],
    ["runs", "-n", "0"],
    ["runs", "--status", "handoff"],
    ["show", "fill"],
    ["show", "open the weekly"],
    ["show", "open the dash"],
    ["rm", "--all", "--dry-run"],
    ["prune", "--failing", "--dry-run"],
]


def test_every_command_fits_80_columns_and_keeps_what_matters(everything, url, capsys, monkeypatch):
    reasons = [run.reason for run in everything.store.runs() if run.diverged_at is not None]
    assert max(map(len, reasons)) > 80
    printed = {}
    for command in COMMANDS:
        out = at(capsys, monkeypatch, 80, *command, "--store", url)
        assert max(map(len, out.splitlines())) <= 80, (command, out)
        printed[command[0] + " " + command[-1]] = out
    stats, ls = printed["stats stats"], printed["ls ls"]
    # The task's own words stand first; those too long for their column are cut with "…".
    for table in (stats, ls, printed["runs 0"]):
        for text in (REPORT_TEXT, FLAKY_TEXT, LONG_TEXT):
            assert text[:16] in table
        assert LONG_TEXT not in table and "…" in table
    assert FORM_TEXT in stats and FORM_TEXT in ls  # short enough to fit whole
    assert stats.splitlines()[0].split()[:2] == ["TASK", "RUNS"]  # what a glance needs
    for header in ("HIT RATE", "TIME SAVED", "TOKENS SAVED"):
        assert header in stats.splitlines()[0]
    assert ls.splitlines()[0].split()[:2] == ["KEY", "TASK"]  # the key to type, beside
    # Reasons are wrapped at the width, never cut: every word of each is there.
    assert "why replay stopped (most common):" in stats
    for reason in {r for r in reasons if r in {x for x, _ in everything.stats().total.reasons}}:
        assert words(reason) in words(stats)
    handoffs = printed["runs handoff"]
    assert handoffs.splitlines()[0].split()[:3] == ["WHEN", "TASK", "STATUS"]
    for reason in reasons:
        assert words(reason) in words(handoffs)
    # show: the text, then the tree, its lines cut at the width.
    shown = printed["show open the weekly"].splitlines()
    assert shown[0].startswith(LONG_TEXT[:40]) and shown[0].endswith("…") and len(shown[0]) == 80
    assert "key: task1:" in shown[1]
    assert printed["show fill"].splitlines()[0] == FORM_TEXT
    assert printed["rm --dry-run"].count("\n") == 5  # the heading and a line per task
    assert "failing (2 left)" in printed["prune --dry-run"]

    # Narrower still, low-priority columns give way first; the task and status stay.
    narrow = at(capsys, monkeypatch, 50, "runs", "--store", url)
    assert max(map(len, narrow.splitlines())) <= 50
    assert narrow.splitlines()[0].split()[:3] == ["WHEN", "TASK", "STATUS"]


def test_wide_prints_every_column_and_all_of_each_text(everything, url, capsys, monkeypatch):
    for command in COMMANDS:
        fitted = at(capsys, monkeypatch, 80, *command, "--store", url)
        wide = at(capsys, monkeypatch, 80, *command, "--wide", "--store", url)
        assert wide == at(capsys, monkeypatch, 80, "--wide", *command, "--store", url)
        monkeypatch.delenv("COLUMNS")  # not a terminal: as wide as --wide
        assert cli(capsys, *command, "--store", url)[1] == wide, command
        if command[0] not in ("show", "prune") or "weekly" in command[-1]:
            assert max(map(len, wide.splitlines())) > 80, command
        assert "…" not in wide.replace("… and", ""), command  # nothing cut
        assert len(fitted.splitlines()) >= len(wide.splitlines())  # nothing left out
    stats = at(capsys, monkeypatch, 80, "stats", "--wide", "--store", url)
    assert stats.splitlines()[0].split() == [
        "TASK", "KEY", "TAGS", "RUNS", "HITS", "HIT", "RATE", "MISSES", "HANDOFFS",
        "DIVERGED", "TIME", "SAVED", "TOKENS", "SAVED", "COST", "SAVED",
    ]  # fmt: skip
    assert "…" not in stats and LONG_TEXT in stats
    assert "dashboard,funnel,weekly" in stats
    for reason in {r for r, _ in everything.stats().total.reasons}:
        assert re.search(rf"^ +\d+  {re.escape(reason)}$", stats, re.M)  # one line each
    runs = at(capsys, monkeypatch, 80, "runs", "--wide", "--store", url)
    assert all(f"  {r.reason}" in runs for r in everything.store.runs() if r.reason)
    ls = at(capsys, monkeypatch, 80, "ls", "--wide", "--store", url)
    assert LONG_TEXT in ls and "APPROVED" in ls and "NODES" in ls
    shown = at(capsys, monkeypatch, 80, "show", "open the weekly", "--wide", "--store", url)
    assert shown.splitlines()[0] == LONG_TEXT


def test_json_times_are_iso_8601_with_their_zone(everything, url, capsys):
    shown = cli_json(capsys, "show", "fill", "--store", url)
    stamps = [shown["created_at"], shown["last_used"]]
    steps = shown["steps"]
    while steps:
        stamps += [s["last_used"] for s in steps]
        stamps += [m["last_matched"] for s in steps for m in s["pre"] + s["post"]]
        steps = [child for s in steps for child in s["steps"]]
    for task in cli_json(capsys, "ls", "--store", url):
        stamps += [task["created_at"], task["last_used"]]
    stamps += [run["started_at"] for run in cli_json(capsys, "runs", "--store", url)]
    figures = cli_json(capsys, "stats", "--store", url)
    stamps += [t["last_run"] for t in figures["tasks"]] + [figures["total"]["last_run"]]
    stamps = [s for s in stamps if s is not None]
    assert len(stamps) > 30
    for stamp in stamps:
        assert abs(time.time() - iso_time(stamp)) < 600


# -- rm ------------------------------------------------------------------------------------


def test_rm_asks_and_removes_nothing_on_no(recorded, url, capsys, monkeypatch):
    engine, _ = recorded
    key = keys(engine)["form"]
    code, out, err = cli(capsys, "rm", hexpart(key)[:4], "--store", url, stdin="n\n",
                         monkeypatch=monkeypatch)  # fmt: skip
    assert code == 1
    assert out.splitlines() == [
        "would remove:",
        f"  {hexpart(key)[:12]} (signup): 3 steps, 1 paths · {FORM_TEXT}",
        "nothing removed",
    ]
    assert "remove from" in err and "[y/N]" in err
    assert set(task_keys(url)) == {key, keys(engine)["report"]}
    # An empty answer (just Enter) is a no as well.
    code, out, _ = cli(capsys, "rm", key, "--store", url, stdin="\n", monkeypatch=monkeypatch)
    assert code == 1 and "nothing removed" in out
    assert form(engine, "Max").status == "hit"


def test_rm_asks_and_removes_on_yes(recorded, url, capsys, monkeypatch):
    engine, _ = recorded
    key = keys(engine)["form"]
    code, out, err = cli(capsys, "rm", key, "--store", url, stdin="y\n", monkeypatch=monkeypatch)
    assert code == 0, err
    assert "[y/N]" in err
    assert out.splitlines()[-1] == "removed 3 steps from 1 task keys"
    assert task_keys(url) == [keys(engine)["report"]]


def test_rm_dry_run_removes_nothing(recorded, url, capsys):
    engine, _ = recorded
    key = keys(engine)["form"]
    code, out, err = cli(capsys, "rm", hexpart(key)[:5], "--dry-run", "--store", url)
    assert (code, err) == (0, "")  # nothing asked
    assert out.splitlines() == [
        "would remove:",
        f"  {hexpart(key)[:12]} (signup): 3 steps, 1 paths · {FORM_TEXT}",
    ]
    assert len(task_keys(url)) == 2
    assert form(engine, "Max").status == "hit"


def test_rm_yes_forgets_the_trees_for_this_process_and_others_and_keeps_the_log(
    engines, recorded, url, world, capsys
):
    engine, _ = recorded
    k = keys(engine)
    before = cli_json(capsys, "runs", "--store", url, "-n", "0")
    code, out, err = cli(capsys, "rm", k["form"], hexpart(k["report"])[:4], "--yes", "--store", url)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "removing:"
    assert out.splitlines()[-1] == "removed 4 steps from 2 task keys"
    assert cli_json(capsys, "ls", "--store", url) == []
    after = cli_json(capsys, "runs", "--store", url, "-n", "0")
    assert [untold(run) for run in after] == [untold(run) for run in before]  # history stays
    assert {run["text"] for run in after} == {""}  # the words went with the tree

    # The engine that recorded them had their trees in memory: it sees the removal.
    again = form(engine, "Max")
    assert (again.status, again.replayed) == ("miss", 0)
    fresh = build_engine(engines, url, world)
    assert (report(fresh).status, report(fresh).status) == ("miss", "hit")
    code, _, err = cli(capsys, "rm", k["form"][:10] + "0000", "--yes", "--store", url)
    assert code == 1 and "no task key or task text starts with" in err


def test_rm_from_the_script_reads_the_answer_on_stdin(recorded, url):
    engine, _ = recorded
    key = keys(engine)["report"]
    done = script("rm", hexpart(key)[:8], store=url, stdin="n\n")
    assert done.returncode == 1
    assert "[y/N]" in done.stderr and "Traceback" not in done.stderr
    assert "nothing removed" in done.stdout
    done = script("rm", hexpart(key)[:8], store=url, stdin="yes\n")
    assert done.returncode == 0, done.stderr
    assert "removed 1 steps from 1 task keys" in done.stdout
    assert task_keys(url) == [keys(engine)["form"]]


def test_rm_all_asks_then_forgets_every_task_key_and_keeps_the_log(
    recorded, url, capsys, monkeypatch
):
    engine, _ = recorded
    k = keys(engine)
    before = cli_json(capsys, "runs", "--store", url, "-n", "0")
    code, out, err = cli(capsys, "rm", "--all", "--dry-run", "--store", url)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "would remove:" and len(out.splitlines()) == 3
    code, out, err = cli(capsys, "rm", "--all", "--store", url, stdin="n\n",
                         monkeypatch=monkeypatch)  # fmt: skip
    assert code == 1 and "[y/N]" in err and out.splitlines()[-1] == "nothing removed"
    assert sorted(task_keys(url)) == sorted([k["form"], k["report"]])

    code, out, err = cli(capsys, "rm", "--all", "--yes", "--json", "--store", url)
    assert (code, err) == (0, "")
    done = json.loads(out)
    assert (done["removed_steps"], done["dry_run"], done["declined"]) == (4, False, False)
    assert sorted(t["task_key"] for t in done["tasks"]) == sorted([k["form"], k["report"]])
    assert task_keys(url) == []
    after = cli_json(capsys, "runs", "--store", url, "-n", "0")
    assert [untold(run) for run in after] == [untold(run) for run in before]  # history stays
    assert {run["text"] for run in after} == {""}  # the words went with the tree
    code, out, _ = cli(capsys, "rm", "--all", "--yes", "--store", url)
    assert (code, out) == (0, "nothing to remove\n")


def test_rm_takes_keys_or_all_not_both_nor_neither(recorded, url, capsys):
    engine, _ = recorded
    for args in (("rm",), ("rm", "--all", keys(engine)["form"])):
        code, out, err = cli(capsys, *args, "--yes", "--store", url)
        assert (code, out) == (2, "") and "--all" in err
    assert len(task_keys(url)) == 2


# -- prune ------------------------------------------------------------------------------------


def test_prune_failing_removes_failing_steps_and_what_is_below_them(recorded, url, world, capsys):
    engine, _ = recorded
    record_flaky(engine, world)
    k = keys(engine)
    tree = engine.store.tree(k["flaky"])
    [go] = [n for n in tree if n.step and n.step.tool.endswith("click") and n.children]
    assert (go.hits, go.failures) == (0, 3)
    form_before = cli_json(capsys, "show", k["form"], "--store", url)

    code, out, err = cli(capsys, "prune", "--failing", "--dry-run", "--store", url)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "would remove:",
        f"  {hexpart(k['flaky'])[:12]}: 2 of 4 steps, failing (2 left) · {FLAKY_TEXT}",
    ]
    assert len(engine.store.tree(k["flaky"])) == 4

    code, out, err = cli(capsys, "prune", "--failing", "--yes", "--store", url)
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "removed 2 steps from 1 task keys"
    shown = cli_json(capsys, "show", k["flaky"], "--store", url)
    [page] = shown["steps"]
    [other] = page["steps"]
    assert page["call"].endswith("open_page('https://example.com/{name}')")
    assert other["call"].endswith("click('other')") and other["steps"] == []
    assert (shown["nodes"], shown["paths"]) == (2, 1)
    assert cli_json(capsys, "show", k["form"], "--store", url) == form_before  # healthy
    assert flaky(engine).status == "hit"  # the healthy branch still replays
    assert form(engine, "Max").status == "hit"
    code, out, _ = cli(capsys, "prune", "--failing", "--yes", "--store", url)
    assert (code, out) == (0, "nothing to remove\n")


def test_prune_unused_for_removes_steps_not_used_lately(recorded, url, capsys):
    engine, _ = recorded
    k = keys(engine)
    code, out, _ = cli(capsys, "prune", "--unused-for", "30d", "--yes", "--store", url)
    assert (code, out) == (0, "nothing to remove\n")

    store = open_store(url)
    old = time.time() - 40 * DAY
    store._write(
        lambda cur: cur.execute(
            "UPDATE mm_nodes SET last_used = ? WHERE task_key = ?", (old, k["form"])
        )
    )
    store.close()
    code, out, _ = cli(capsys, "prune", "--unused-for", "50d", "--store", url, "--dry-run")
    assert (code, out) == (0, "nothing to remove\n")
    code, out, _ = cli(capsys, "prune", "--unused-for", "30d", "--store", url, "--dry-run")
    assert out.splitlines() == [
        "would remove:",
        f"  {hexpart(k['form'])[:12]}: 3 of 3 steps, unused (all of it) · {FORM_TEXT}",
    ]
    code, out, err = cli(capsys, "prune", "--unused-for", "4w", "--yes", "--store", url)
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "removed 3 steps from 1 task keys"
    assert [t["task_key"] for t in cli_json(capsys, "ls", "--store", url)] == [k["report"]]
    assert form(engine, "Max").status == "miss"  # re-recorded
    assert report(engine).status == "hit"


def test_prune_asks_first(recorded, url, world, capsys, monkeypatch):
    engine, _ = recorded
    record_flaky(engine, world)
    code, out, err = cli(capsys, "prune", "--failing", "--store", url, stdin="no\n",
                         monkeypatch=monkeypatch)  # fmt: skip
    assert code == 1 and "[y/N]" in err and out.splitlines()[-1] == "nothing removed"
    assert len(engine.store.tree(keys(engine)["flaky"])) == 4


def test_prune_without_a_criterion_exits_2(recorded, url, capsys):
    code, out, err = cli(capsys, "prune", "--yes", "--store", url)
    assert (code, out) == (2, "")
    assert err == "muscle-mem: say what to prune: --unused-for 30d, --failing, or both\n"
    assert len(task_keys(url)) == 2


# -- export and import ------------------------------------------------------------------------


@both_kinds
def test_export_import_moves_the_cache_to_another_store(engines, recorded, url, server, capsys):
    engine, _ = recorded
    k = keys(engine)
    exported = export_of(capsys, url)
    header = json.loads(exported[0])
    assert header == {"format": "muscle-mem cache", "version": 2, "signed": False}
    kinds = [next(iter(json.loads(line))) for line in exported[1:]]
    assert kinds.count("task") == 2 and kinds.count("node") == 4
    assert kinds.count("snapshot") == 3  # 1 for the name, 2 for the greeting
    assert kinds.count("end") == 2 and kinds[-1] == "done"  # what complete means
    assert "John" not in "\n".join(exported)
    path = Path(url.removeprefix("sqlite:///")).with_name("export.jsonl")
    path.write_text("\n".join(exported) + "\n")

    code, out, err = cli(capsys, "import", path, "--store", server)
    assert (code, err) == (0, "")
    assert out == (
        "imported 2 task keys: 4 new steps and 3 new snapshots "
        "(of 4 steps and 3 snapshots accepted)\n"
    )
    # The run log is the source's history: it does not move.
    assert cli_json(capsys, "runs", "--store", server) == []
    assert sorted(export_of(capsys, server)) == sorted(exported)  # portable, as it was
    target = build_engine(engines, server, new_world() | {"greeting_at": "#greeting-v2"})
    hit = form(target, "Eve")
    assert (hit.status, hit.replayed) == ("hit", 3)
    assert report(target).status == "hit"

    again = cli_json(capsys, "import", path, "--store", server)
    assert again == {
        "task_keys": 2,
        "steps": 4,
        "snapshots": 3,
        "new_steps": 0,
        "new_snapshots": 0,
        "rejected": 0,
        "incomplete": 0,
    }
    first = export_of(capsys, server)
    code, out, _ = cli(capsys, "import", path, "--store", server)
    assert out.startswith("imported 2 task keys: 0 new steps and 0 new snapshots")
    assert export_of(capsys, server) == first  # idempotent
    assert {t["task_key"] for t in cli_json(capsys, "ls", "--store", server)} == {
        k["form"],
        k["report"],
    }


def test_import_keeps_the_later_last_use_of_a_step(recorded, url, tmp_path, capsys):
    """A step the file says was used yesterday is not "unused for 30 days" in the target
    just because the target's copy of it is old: merging keeps the later last use, as
    the memory store does (Tree.merge)."""
    path = tmp_path / "all.jsonl"
    assert cli(capsys, "export", "-o", path, "--store", url)[0] == 0
    target = f"sqlite:///{tmp_path}/fleet.db"
    assert cli(capsys, "import", path, "--store", target)[0] == 0
    store = open_store(target)
    old = time.time() - 40 * DAY
    store._write(lambda cur: cur.execute("UPDATE mm_nodes SET last_used = ?", (old,)))
    store.close()
    assert cli(capsys, "import", path, "--store", target)[0] == 0  # recent use, again
    code, out, _ = cli(capsys, "prune", "--unused-for", "30d", "--dry-run", "--store", target)
    assert (code, out) == (0, "nothing to remove\n")


def test_export_some_keys_to_a_file(recorded, url, tmp_path, capsys):
    engine, _ = recorded
    k = keys(engine)
    out_file = tmp_path / "report.jsonl"
    code, out, err = cli(capsys, "export", hexpart(k["report"])[:4], "-o", out_file, "--store", url)
    assert (code, out, err) == (0, "", "")
    lines = out_file.read_text().splitlines()
    assert [json.loads(line).get("task") for line in lines[1:-2]] == [k["report"], k["report"]]
    assert json.loads(lines[-2]) == {"end": k["report"], "nodes": 1, "snapshots": 0}
    both = export_of(capsys, url, k["form"], hexpart(k["report"]))
    assert sorted(both) == sorted(export_of(capsys, url))
    code, _, err = cli(capsys, "export", "ffffffff", "--store", url)
    assert code == 1 and "no task key or task text starts with 'ffffffff'" in err

    target = f"sqlite:///{tmp_path}/only-report.db"
    code, out, err = cli(capsys, "import", out_file, "--store", target)
    assert code == 0, err
    assert [t["task_key"] for t in cli_json(capsys, "ls", "--store", target)] == [k["report"]]


@both_kinds
def test_export_piped_into_import_between_two_stores_with_the_script(
    engines, recorded, url, server
):
    export_err, importer = piped(["export"], ["import", "-", "--store", server], url)
    assert importer.returncode == 0, importer.stderr
    assert export_err == b"" and importer.stderr == ""  # no progress bar into a pipe
    assert importer.stdout.startswith("imported 2 task keys: 4 new steps and 3 new snapshots")
    assert form(build_engine(engines, server, new_world()), "Eve").status == "hit"
    assert report(build_engine(engines, server, new_world())).status == "hit"


@both_kinds
def test_signed_export_imports_and_replays_with_the_same_secret(
    engines, tmp_path, server, stores, world, capsys, monkeypatch
):
    source = f"sqlite:///{tmp_path}/signed.db"
    record(build_engine(engines, source, world, secret="s3cret"), world)
    monkeypatch.setenv("MUSCLE_MEM_SECRET", "s3cret")
    exported = export_of(capsys, source)
    assert json.loads(exported[0])["signed"] is True
    rows = [json.loads(line) for line in exported[1:]]
    assert all(row["sig"] for row in rows if "node" in row or "snapshot" in row)
    path = tmp_path / "signed.jsonl"
    path.write_text("\n".join(exported) + "\n")
    imported = cli_json(capsys, "import", path, "--store", server)
    assert (imported["new_steps"], imported["new_snapshots"], imported["rejected"]) == (4, 3, 0)
    target = build_engine(engines, server, new_world(), secret="s3cret")
    assert form(target, "Eve").status == "hit"
    assert report(target).status == "hit"

    # A different secret on the target: every row is refused, and nothing is imported.
    other = stores.url()
    monkeypatch.setenv("MUSCLE_MEM_SECRET", "not the same")
    code, out, err = cli(capsys, "import", path, "--store", other)
    assert code == 1
    assert "7 rows failed verification with $MUSCLE_MEM_SECRET" in err
    assert "0 new steps and 0 new snapshots" in out
    monkeypatch.delenv("MUSCLE_MEM_SECRET")
    assert cli_json(capsys, "ls", "--store", other) == []


@both_kinds
def test_an_unsigned_export_into_a_store_with_a_secret_is_rejected(
    engines, recorded, url, server, tmp_path, capsys, monkeypatch
):
    exported = export_of(capsys, url)
    path = tmp_path / "unsigned.jsonl"
    path.write_text("\n".join(exported) + "\n")
    monkeypatch.setenv("MUSCLE_MEM_SECRET", "s3cret")
    code, out, err = cli(capsys, "import", path, "--store", server)
    assert code == 1
    assert (
        out == "imported 2 task keys: 0 new steps and 0 new snapshots "
        "(of 0 steps and 0 snapshots accepted)\n"
    )
    assert err == (
        "muscle-mem: 7 rows failed verification with $MUSCLE_MEM_SECRET and were skipped: "
        "were they exported with the same secret?\n"
    )
    assert cli_json(capsys, "ls", "--store", server) == []
    target = build_engine(engines, server, new_world(), secret="s3cret")
    assert form(target, "Eve").status == "miss"


def test_export_with_the_wrong_secret_fails_rather_than_write_an_empty_export(
    engines, tmp_path, world
):
    """The rows of a signed store do not verify with another secret, so the store hides
    them: an export that silently leaves them out would look fine and import as nothing.
    It must say so (exit 1, one line) instead of exiting 0 with no steps in the file."""
    source = f"sqlite:///{tmp_path}/signed.db"
    engine = build_engine(engines, source, world, secret="s3cret")
    record(engine, world)
    engine.store.close()
    done = script("export", store=source, MUSCLE_MEM_SECRET="not the same")
    exported = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1, (done.returncode, len(exported), done.stderr)
    assert "MUSCLE_MEM_SECRET" in done.stderr and done.stderr.count("\n") == 1


def test_an_altered_line_is_refused_and_the_store_is_left_as_it_was(
    recorded, url, tmp_path, capsys
):
    engine, _ = recorded
    k = keys(engine)
    exported = export_of(capsys, url)
    target = f"sqlite:///{tmp_path}/target.db"
    path = tmp_path / "report.jsonl"
    path.write_text("\n".join(export_of(capsys, url, k["report"])) + "\n")
    assert cli(capsys, "import", path, "--store", target)[0] == 0
    before = export_of(capsys, target)

    lines = [json.loads(line) for line in exported]
    [number] = [
        i for i, row in enumerate(lines) if "node" in row and row["tool"].endswith("submit")
    ]
    lines[number]["tool"] = lines[number]["tool"].replace("submit", "delete_account")
    altered = tmp_path / "altered.jsonl"
    altered.write_text("\n".join(json.dumps(row) for row in lines) + "\n")
    code, out, err = cli(capsys, "import", altered, "--store", target)
    assert (code, out) == (1, "")
    assert err.startswith(f"muscle-mem: {altered}: line {number + 1}: node ")
    assert "does not match its content: the file was altered; nothing was imported" in err
    assert err.count("\n") == 1
    assert export_of(capsys, target) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("hello\n", "line 1: not JSON"),
        ('{"rows": []}\n', "line 1: not a muscle-mem export"),
        ("\n\n[1, 2]\n", "line 3: expected a JSON object"),
        ("", "the file is empty"),
        ('{"format": "muscle-mem cache", "version": 1}\n{"what": 1}\n', "line 2: expected a task"),
        ('{"format": "muscle-mem cache", "version": 99}\n', "line 1: export format 99 is newer"),
    ],
)
def test_a_file_that_is_not_an_export_is_refused_naming_the_line(
    content, message, tmp_path, capsys
):
    target = f"sqlite:///{tmp_path}/target.db"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    code, out, err = cli(capsys, "import", bad, "--store", target)
    assert (code, out) == (1, "")
    assert err.startswith(f"muscle-mem: {bad}: {message}")
    assert err.endswith("nothing was imported\n") and err.count("\n") == 1
    assert not (tmp_path / "target.db").exists()  # checked before a store is made for it


def test_import_of_a_missing_file_exits_2(tmp_path, capsys):
    code, out, err = cli(capsys, "import", tmp_path / "nope.jsonl", "--store", tmp_path / "t.db")
    assert (code, out) == (2, "")
    assert err == f"muscle-mem: cannot read {tmp_path / 'nope.jsonl'}: No such file or directory\n"


# -- errors ------------------------------------------------------------------------------------


def test_a_missing_store_is_one_line_and_exit_code_2(tmp_path):
    missing = tmp_path / "nowhere" / "cache.db"
    for args, env in [
        (["stats", "--store", f"sqlite:///{missing}"], {}),
        (["ls"], {"MUSCLE_MEM_STORE": str(missing)}),
        (["runs"], {"MUSCLE_MEM_STORE": f"sqlite:///{missing}"}),
    ]:
        done = script(*args, env=script_env(**env))
        assert done.returncode == 2, (args, done.stderr)
        assert done.stdout == ""
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert done.stderr.startswith(f"muscle-mem: no store at {missing}")
        assert "--store URL" in done.stderr and "MUSCLE_MEM_STORE" in done.stderr
    assert not missing.exists() and not missing.parent.exists()  # nothing was created


def test_the_default_store_is_in_the_working_directory(engines, tmp_path, world):
    done = script("ls", cwd=tmp_path, env=script_env())
    assert done.returncode == 2
    assert done.stderr == (
        "muscle-mem: no store at .muscle_mem/cache.db: nothing was recorded there "
        "(pass --store URL, or set $MUSCLE_MEM_STORE)\n"
    )
    engine = build_engine(engines, tmp_path / ".muscle_mem" / "cache.db", world)
    report(engine)
    done = script("ls", "--json", cwd=tmp_path, env=script_env())
    assert done.returncode == 0, done.stderr
    assert [t["task_key"] for t in json.loads(done.stdout)] == [keys(engine)["report"]]


def test_a_file_that_is_not_a_database_exits_2(tmp_path, capsys):
    notes = tmp_path / "notes.db"
    notes.write_bytes(b"my notes, not a database" * 100)
    code, out, err = cli(capsys, "stats", "--store", notes)
    assert (code, out) == (2, "")
    assert err.startswith("muscle-mem: ") and str(notes) in err and err.count("\n") == 1
    assert notes.read_bytes() == b"my notes, not a database" * 100
    done = script("ls", store=f"sqlite:///{notes}")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    (tmp_path / "cache.txt").write_text("notes")
    code, _, err = cli(capsys, "ls", "--store", tmp_path / "cache.txt")
    assert code == 2 and "cache.txt" in err and err.count("\n") == 1


def test_an_unreachable_postgres_server_exits_2(capsys):
    pytest.importorskip("psycopg")
    code, out, err = cli(capsys, "stats", "--store", "postgresql://nobody@127.0.0.1:1/none")
    assert (code, out) == (2, "")
    assert err.startswith("muscle-mem: ") and "127.0.0.1:1/none" in err
    assert err.count("\n") == 1


def test_a_store_error_does_not_print_the_password(capsys):
    pytest.importorskip("psycopg")
    code, out, err = cli(capsys, "ls", "--store", "postgresql://alice:hunter2@127.0.0.1:1/db")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "alice:***@127.0.0.1:1/db" in err
    assert "hunter2" not in err  # stderr ends up in CI logs


def test_a_memory_store_is_refused_with_advice(capsys, monkeypatch):
    code, out, err = cli(capsys, "ls", "--store", "memory://")
    assert (code, out) == (2, "")
    assert "lives inside one process" in err and "--store sqlite:///" in err
    monkeypatch.setenv("MUSCLE_MEM_STORE", "memory://")
    assert cli(capsys, "stats")[0] == 2


def test_bad_arguments_exit_2(url, recorded, capsys):
    for args in (
        ["stats", "--since", "7 days", "--store", url],
        ["runs", "--since", "3x", "--store", url],
        ["prune", "--unused-for", "soon", "--store", url],
    ):
        with pytest.raises(SystemExit) as exited:
            main(args)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert "is not an age: write 30d, 12h, 15m or 2w" in err
    with pytest.raises(SystemExit) as exited:
        main(["runs", "--status", "lost", "--store", url])
    assert exited.value.code == 2
    capsys.readouterr()
    assert main([]) == 2
    assert "commands:" in capsys.readouterr().err


def test_version_from_python_dash_m():
    done = subprocess.run(
        [sys.executable, "-m", "muscle_mem", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env=script_env(),
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"muscle-mem {muscle_mem.__version__}\n",
        "",
    )


# -- progress -----------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_draws_on_a_terminal_and_not_into_a_pipe():
    screen = FakeTerminal()
    bar = Progress("importing", 3, stream=screen)
    for _ in range(3):
        bar.step()
    bar.done()
    drawn = screen.getvalue()
    assert drawn.count("\r") == 3 and drawn.endswith("\n")
    assert "\rimporting " in drawn and drawn.rstrip().endswith("3/3")
    assert "█" * 30 in drawn and "1/3" in drawn

    piped = io.StringIO()
    bar = Progress("importing", 3, stream=piped)
    bar.step()
    bar.done()
    assert piped.getvalue() == ""
    single = FakeTerminal()
    bar = Progress("importing", 1, stream=single)  # one item: no bar worth drawing
    bar.step()
    bar.done()
    assert single.getvalue() == ""
    late = FakeTerminal()
    bar = Progress("reading", stream=late)  # the total comes with the library's callback
    bar.update(1, 2)
    bar.update(2, 2)
    bar.done()
    assert late.getvalue().endswith("\rreading " + "█" * 30 + " 2/2\n")


def test_export_and_import_draw_progress_on_a_terminal(
    recorded, url, tmp_path, capsys, monkeypatch
):
    path = tmp_path / "all.jsonl"
    with monkeypatch.context() as patched:
        screen = FakeTerminal()
        patched.setattr(sys, "stderr", screen)
        assert main(["export", "--store", url, "-o", str(path)]) == 0
        assert "\rexporting " in screen.getvalue() and "2/2" in screen.getvalue()
        screen = FakeTerminal()
        patched.setattr(sys, "stderr", screen)
        assert main(["import", str(path), "--store", f"sqlite:///{tmp_path}/t.db"]) == 0
        assert "\rimporting " in screen.getvalue() and "2/2" in screen.getvalue()
    assert "imported 2 task keys" in capsys.readouterr().out


def test_export_stays_quiet_when_piped(recorded, url):
    done = script("export", store=url)
    assert done.returncode == 0 and done.stderr == ""
    assert json.loads(done.stdout.splitlines()[0])["format"] == "muscle-mem cache"


# -- found in review ---------------------------------------------------------------------------


def test_prune_unused_keeps_a_step_while_a_path_below_it_is_in_use(recorded, url, capsys):
    engine, _ = recorded
    k = keys(engine)
    # The form's first fill is old, but the handoff branch recorded under it is recent.
    store = open_store(url)
    tree = store.tree(k["form"])
    first = next(n for n in tree.root.children)
    store._write(
        lambda cur: cur.execute(
            "UPDATE mm_nodes SET last_used = ? WHERE id = ?", (time.time() - 40 * DAY, first.id)
        )
    )
    store.close()
    assert cli(capsys, "prune", "--unused-for", "30d", "--dry-run", "--store", url)[1] == (
        "nothing to remove\n"
    )


def test_rm_and_prune_speak_json(recorded, url, capsys):
    engine, _ = recorded
    k = keys(engine)
    planned = cli_json(capsys, "rm", hexpart(k["report"])[:6], "--dry-run", "--store", url)
    assert planned == {
        "dry_run": True,
        "declined": False,
        "tasks": [{"task_key": k["report"], "text": REPORT_TEXT, "steps": 1}],
        "removed_steps": 0,
    }
    done = cli_json(capsys, "rm", hexpart(k["report"])[:6], "--yes", "--store", url)
    assert done["removed_steps"] == 1 and done["dry_run"] is False
    assert cli_json(capsys, "prune", "--failing", "--yes", "--store", url)["tasks"] == []


def test_an_empty_window_is_empty(recorded, url, capsys):
    assert cli_json(capsys, "stats", "--since", "0s", "--store", url)["total"]["runs"] == 0
    assert cli_json(capsys, "runs", "--since", "0d", "--store", url) == []


def test_reading_a_store_does_not_wait_for_its_writer(recorded, url, capsys, tmp_path):
    import sqlite3

    writer = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a run
    try:
        started = time.perf_counter()
        code, out, err = cli(capsys, "ls", "--store", url)
        assert (code, err) == (0, "") and "signup" in out
        assert time.perf_counter() - started < 5  # the busy timeout is 30 s
    finally:
        writer.execute("ROLLBACK")
        writer.close()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda row: row.update(hits=10**30), "'hits' must be from 0 to 2**63 - 1"),
        (lambda row: row.update(last_used=float("nan")), "'last_used' must be a finite number"),
        (lambda row: row.update(last_used=10**400), "'last_used' must be a time"),
        (lambda row: row.update(tool="x\ud800"), "'tool' is not valid Unicode"),
    ],
)
def test_an_impossible_value_in_an_export_is_one_line(
    recorded, url, tmp_path, capsys, change, says
):
    lines = export_of(capsys, url)
    node = json.loads(lines[2])
    assert "node" in node
    change(node)
    lines[2] = json.dumps(node)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    code, out, err = cli(capsys, "import", bad, "--store", tmp_path / "target.db")
    assert (code, out) == (1, "") and err.count("\n") == 1
    assert says in err and "line 3" in err
    assert not (tmp_path / "target.db").exists()


@pytest.mark.parametrize(
    ("tags", "says"), [(["ok", 5], "tags[1] must be str, got 5"), (["\ud800"], "tags[0] is not")]
)
def test_a_tag_no_store_can_hold_is_one_line(recorded, url, tmp_path, capsys, tags, says):
    lines = export_of(capsys, url)
    at = next(i for i, line in enumerate(lines) if '"tags"' in line and '"node"' not in line)
    task = json.loads(lines[at])
    task["tags"] = tags
    lines[at] = json.dumps(task)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    code, out, err = cli(capsys, "import", bad, "--store", tmp_path / "target.db")
    assert (code, out) == (1, "") and err.count("\n") == 1
    assert says in err and f"line {at + 1}" in err
    assert not (tmp_path / "target.db").exists()


def test_a_signed_file_imported_without_the_secret_says_it_was_not_checked(
    engines, url, world, tmp_path, capsys, monkeypatch
):
    engine = build_engine(engines, url, world, secret="k1")
    record(engine, world)
    monkeypatch.setenv("MUSCLE_MEM_SECRET", "k1")
    signed = export_of(capsys, url)
    monkeypatch.delenv("MUSCLE_MEM_SECRET")
    (tmp_path / "signed.jsonl").write_text("\n".join(signed) + "\n")
    code, _, err = cli(capsys, "import", tmp_path / "signed.jsonl", "--store", tmp_path / "t.db")
    assert code == 0 and "signatures were not checked" in err


def test_an_unsigned_import_leaves_a_signed_store_signed(engines, url, world, tmp_path, capsys):
    engine = build_engine(engines, url, world, secret="k1")
    record(engine, world)
    plain = tmp_path / "plain.jsonl"
    plain.write_text("\n".join(export_of(capsys, url)) + "\n")  # no secret: unsigned rows
    code, out, _ = cli(capsys, "import", plain, "--store", url)
    assert code == 0 and "0 new steps and 0 new snapshots" in out
    engine.store.close()
    again = build_engine(engines, url, world, secret="k1")
    assert form(again, "Kim").status == "hit"  # no IntegrityWarning: filterwarnings=error
