"""The web view without a browser: what its pages say, that the store's data never
becomes markup, that the server is read-only and local, and that ``report --html`` is
one file that loads nothing.

The data is real: an engine on a SQLite store records a form task (with a param, a
handoff at step 1), a report task whose argument and task text are HTML, and a memory
bank with a brief. ``test_ui_browser.py`` loads the same pages in Chromium.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import quote

import pytest

import muscle_mem
from conftest import kinds
from muscle_mem import Check, Engine, MemoryBank
from muscle_mem.cli import main
from muscle_mem.models import RunRecord
from muscle_mem.stats import compute
from muscle_mem.store import open_store
from muscle_mem.ui import Cache, report, serve
from muscle_mem.ui.data import MAX_PERIODS, RunFilter, timeline
from muscle_mem.ui.html import Markup, el
from muscle_mem.ui.page import Links
from muscle_mem.ui.render import markdown
from muscle_mem.ui.values import value

XSS = "<script>alert('xss')</script>"
FORM = "fill the signup form for {name}"
ALERT = f"send the alert {XSS}"


# -- the recorded store ---------------------------------------------------------------------


def record(url: str) -> dict[str, str]:
    """Runs of two tasks and a memory bank in the store at ``url``; the task keys.

    The form (param name): a miss, two hits, a handoff at step 1 (the greeting box
    moved), a hit. The alert, whose text and argument are HTML: a miss and a hit; its
    path is approved.
    """
    world = {"greeting_at": "#greeting", "log": []}
    engine = Engine(store=url)

    def where(field: str, value: str) -> str:
        return "page-v1" if field == "name" else str(world["greeting_at"])

    @engine.function(pre_check=Check(where))
    def fill(field: str, value: str) -> None:
        world["log"].append(("fill", field, value))

    @engine.function
    def submit() -> None:
        world["log"].append(("submit",))

    @engine.function
    def send(to: str, text: str) -> None:
        world["log"].append(("send", to, text))

    def agent(task: str, name: str = "") -> None:
        handoff = muscle_mem.handoff()
        done = len(handoff.steps) if handoff else 0
        if task.startswith("fill"):
            for field, value in [("name", name), ("greeting", f"Hello {name}!")][done:]:
                time.sleep(0.01)
                fill(field, value)
                muscle_mem.report_usage(tokens=100, cost=0.01)
            submit()
        else:
            time.sleep(0.01)
            send("ops@example.com", XSS)
            muscle_mem.report_usage(tokens=50, cost=0.005)

    engine.set_agent(agent).finalize()

    def form(name: str) -> str:
        return engine(FORM.format(name=name), name, params={"name": name}, tags=["signup"]).status

    statuses = [form("John"), form("Jane"), form("Bob")]
    world["greeting_at"] = "#greeting-v2"
    statuses += [form("Ann"), form("Zoe")]
    statuses += [engine(ALERT, tags=["alerts", "x<y"]).status for _ in range(2)]
    assert statuses == ["miss", "hit", "hit", "handoff", "hit", "miss", "hit"]
    keys = {
        "form": engine.task_key(FORM.format(name="x"), "x", params={"name": "x"}, tags=["signup"]),
        "alert": engine.task_key(ALERT, tags=["alerts", "x<y"]),
    }
    engine.close()
    store = open_store(url)
    assert store.approve(keys["alert"]) == 1
    store.close()
    with MemoryBank(url) as bank:
        bank.entity("brand", "acme", name=f"Acme {XSS}")
        bank.learn("brand:acme", "page_change", f"The greeting box moved {XSS}")
        bank.decide("budget", "CPL too high", "Move budget to the lookalike", scope="brand:acme")
    return keys


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'cache.db'}"
    return url, record(url)


@pytest.fixture
def cache(recorded: tuple[str, dict[str, str]]) -> Iterator[Cache]:
    store = open_store(recorded[0], read_only=True)
    bank = MemoryBank(open_store(recorded[0]))
    yield Cache(store, bank)
    bank.store.close()
    store.close()


@pytest.fixture
def keys(recorded: tuple[str, dict[str, str]]) -> dict[str, str]:
    return recorded[1]


class Parsed(HTMLParser):
    """A page's elements: each start tag with its attributes, and the text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


# -- markup --------------------------------------------------------------------------------


def test_text_is_escaped_and_markup_is_kept():
    made = el("p", XSS, el("b", "bold"), title='" onmouseover="x', class_="c", hidden=True)
    assert made == (
        '<p title="&quot; onmouseover=&quot;x" class="c" hidden>'
        "&lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt;<b>bold</b></p>"
    )
    assert el("br") == "<br>"
    assert isinstance(made, Markup)


def test_template_values_are_marked_and_escaped():
    from muscle_mem.models import FromResult, Param, Redacted, Text, Traced

    shown = value(
        {
            "to": Param("name"),
            "greeting": Text(("Hello ", Param("name"), "!")),
            "id": Traced((FromResult(0, ("orders", None, "id")),)),
            "pick": Traced((FromResult(1, ("items", None), alone=False),), value="b"),
            "secret": Redacted("password"),
            "raw": [XSS, (1,)],
        }
    )
    text = re.sub(r"<[^>]+>", "", shown)
    assert text == (
        "{&#x27;to&#x27;: {name}, &#x27;greeting&#x27;: &#x27;Hello {name}!&#x27;, "
        "&#x27;id&#x27;: ⟨step 0: orders[*].id⟩, &#x27;pick&#x27;: &#x27;b&#x27; "
        "⟨step 1: items[*]⟩, &#x27;secret&#x27;: &lt;sensitive&gt;, &#x27;raw&#x27;: "
        "[&quot;&lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt;&quot;, (1,)]}"
    )
    assert '<span class="param"' in shown and '<span class="ref"' in shown
    assert "<script" not in shown


def test_a_brief_becomes_headings_bullets_and_paragraphs_of_text():
    shown = markdown(f"# Memory: brand:x\n\n## Learnings\n- one {XSS}\n- two\nplain")
    assert shown == (
        '<div class="markdown"><h3>Memory: brand:x</h3><h4>Learnings</h4><ul>'
        "<li>one &lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt;</li><li>two</li></ul>"
        "<p>plain</p></div>"
    )


# -- what the pages say ----------------------------------------------------------------------


def test_the_overview_has_each_task_its_figures_a_plot_and_a_heat_map(cache, keys):
    from muscle_mem.ui import render

    view = cache.overview()
    html = render.overview(view, Links())
    figures = compute(cache.store.runs())
    assert [t.task_key for t in view.tasks] == [t.task_key for t in figures.tasks]
    assert view.total == figures.total
    form = next(t for t in view.tasks if t.task_key == keys["form"])
    assert form.stats is not None and (form.stats.runs, form.stats.hits) == (5, 3)
    assert form.text == FORM
    assert f'href="/task/{quote(keys["form"], safe="")}"><span class="text">{FORM}' in html
    assert "send the alert &lt;script&gt;" in html and XSS not in html
    assert ">1 (1 approved)</td>" in html  # the alert's one path
    assert html.count("<svg") == 3  # hit rate, time saved, tokens saved
    page = Parsed(html)
    cells = [a for a in page.all("td") if a.get("data-step") is not None]
    assert [(c["data-step"], c["data-runs"]) for c in cells] == [("0", "0"), ("1", "1")]
    assert "57%" in page.text  # the total: 4 hits in 7 runs


def test_a_task_page_shows_steps_params_checks_paths_and_divergence(cache, keys):
    from muscle_mem.ui import render

    tree = cache.task(keys["form"])
    assert tree is not None and tree.paths == 1  # the handoff took the same steps
    html = render.task_page(tree, Links())
    text = re.sub(r"<[^>]+>", "", html)
    assert "fill(&#x27;name&#x27;, {name})" in text.replace("tests.test_ui.", "")
    assert "&#x27;Hello {name}!&#x27;" in text
    assert "path 1 ends here" in text and "not approved" in text
    alert = cache.task(keys["alert"])
    assert alert is not None and alert.steps[0].approved and alert.task.text == ALERT
    assert (tree.approved, alert.approved) == (0, 1)
    assert "approved</span>" in render.task_page(alert, Links())
    assert "pre-check: 2 snapshots" in text  # the greeting box, where it was and is
    assert "&#x27;#greeting-v2&#x27;" in text
    # Each snapshot says when it was last matched, as the store keeps it.
    [greeting] = tree.steps[0].children
    assert [value for value, _ in greeting.pre] == ["#greeting-v2", "#greeting"]
    assert all(matched is not None and matched > 0 for _, matched in greeting.pre)
    assert text.count("last matched") == len(tree.steps[0].pre) + len(greeting.pre)
    page = Parsed(html)
    heat = [(a["data-step"], a["data-runs"]) for a in page.all("td") if "data-step" in a]
    assert heat == [("0", "0"), ("1", "1")]
    assert "path 1" in [row.label for row in tree.heat.rows]
    assert cache.task("task1:" + "0" * 32) is None


def test_the_run_log_filters_by_status_tag_task_and_age(cache, keys):
    everything = cache.runs(RunFilter(), 0)
    assert (everything.matching, everything.total) == (7, 7)
    assert [r.started_at for r in everything.runs] == sorted(
        (r.started_at for r in everything.runs), reverse=True
    )
    assert cache.runs(RunFilter(status="handoff"), 0).matching == 1
    assert cache.runs(RunFilter(tag="x<y"), 0).matching == 2
    assert cache.runs(RunFilter(task=keys["form"], status="hit"), 0).matching == 3
    assert cache.runs(RunFilter(since_s=3600), 0).matching == 7
    now = time.time()
    old = everything.runs[0]._replace(started_at=now - 7200)
    assert RunFilter(since_s=7300).admits(old, now) and not RunFilter(since_s=3600).admits(old, now)
    newest = cache.runs(RunFilter(), 2)
    assert (len(newest.runs), newest.matching) == (2, 7)


def test_the_bank_gives_a_brief_per_scope(cache):
    briefs = cache.briefs()
    assert [scope for scope, _ in briefs.scopes] == ["brand:acme"]
    assert "The greeting box moved" in briefs.scopes[0][1]
    assert Cache(cache.store).briefs().note == "no memory bank in this store"


def test_a_heat_map_has_a_column_per_step_or_only_those_runs_diverged_at():
    from muscle_mem.ui.data import HEAT_STEPS, Task, _heat_by_task

    def diverged(key: str, step: int) -> RunRecord:
        return RunRecord(key, (), (), "handoff", step, 1, step, "why", 0.0, 1.0)

    tasks = [Task(key, key, (), None, None) for key in ("a", "b", "c")]
    near = _heat_by_task(tasks, [diverged("a", 2), diverged("a", 2), diverged("b", 0)])
    assert near.steps == (0, 1, 2) and near.peak == 2
    assert [(row.label, row.counts) for row in near.rows] == [("a", (0, 0, 2)), ("b", (1, 0, 0))]
    far = _heat_by_task(tasks, [diverged("a", 1), diverged("c", HEAT_STEPS + 5)])
    assert far.steps == (1, HEAT_STEPS + 5)
    assert [row.counts for row in far.rows] == [(1, 0), (0, 1)]


def test_the_timeline_ends_at_what_stats_count():
    start = 1_700_000_000.0
    runs = [
        RunRecord("task1:a", (), (), status, 1, 1, None, None, start + i * 600, took, 10, 0, "p")
        for i, (status, took) in enumerate([("miss", 2.0), ("hit", 0.5), ("hit", 0.25)] * 20)
    ]
    line = timeline(runs)
    assert len(line.periods) <= MAX_PERIODS
    assert sum(p.runs for p in line.periods) == 60
    assert sum(p.hits for p in line.periods) == 40
    total = compute(runs).total
    assert line.periods[-1].time_saved_s == pytest.approx(total.time_saved_s)
    assert line.periods[-1].tokens_saved == total.tokens_saved
    saved = [p.time_saved_s for p in line.periods]
    assert saved == sorted(saved)  # every hit here saved time: the curve only rises
    assert timeline([]).periods == ()


def test_an_empty_store_has_pages_that_say_so():
    from muscle_mem import MemoryStore

    empty = Cache(MemoryStore())
    html = report(empty)
    assert "the cache is empty" in html and "no run has diverged" in html
    assert "<svg" not in html  # no runs, nothing to plot
    assert '<p id="no-runs" class="empty">no run matches</p>' in html
    assert "no memory bank in this store" in html


# -- the static report --------------------------------------------------------------------------


def test_report_is_one_file_that_loads_nothing_and_holds_every_section(cache, keys, tmp_path):
    html = report(cache)
    page = Parsed(html)
    for tag, attribute in (("script", "src"), ("link", "href"), ("img", "src"), ("a", "href")):
        for attrs in page.all(tag):
            target = attrs.get(attribute) or ""
            assert target == "" or target.startswith(("#", "data:")), (tag, target)
    assert not re.search(r"https?://", html.replace("http://www.w3.org/2000/svg", ""))
    ids = {attrs.get("id") for _, attrs in page.tags}
    assert {"tasks", "runs", "bank", f"task-{quote(keys['form'], safe='')}"} <= ids
    assert f"task-{quote(keys['alert'], safe='')}" in ids
    [policy] = [meta for meta in page.all("meta") if "http-equiv" in meta]
    assert policy["http-equiv"] == "Content-Security-Policy"
    assert "default-src 'none'" in (policy["content"] or "")
    assert len(page.all("script")) == 1 and XSS not in html
    assert html.count("<svg") == 3


def test_report_command_writes_the_file(recorded, tmp_path, capsys):
    out = tmp_path / "out.html"
    assert main(["report", "--html", str(out), "--store", recorded[0]]) == 0
    assert out.read_text().startswith("<!doctype html>")
    assert "muscle-mem" in out.read_text()
    assert main(["report", "--html", "-", "--store", recorded[0]]) == 0
    assert capsys.readouterr().out.startswith("<!doctype html>")


@kinds("sqlite", "postgres")
def test_report_command_on_each_store_kind_holds_the_cache_and_the_bank(stores, capsys):
    url = stores.url()
    keys = record(url)
    assert main(["report", "--html", "-", "--store", url]) == 0
    html = capsys.readouterr().out
    assert f'id="task-{quote(keys["form"], safe="")}"' in html
    assert html.count("<tr data-status=") == 7
    assert 'data-scope="brand:acme"' in html and "The greeting box moved" in html


def test_report_of_a_store_that_does_not_exist_says_so(tmp_path, capsys):
    out = tmp_path / "x.html"
    assert main(["report", "--html", str(out), "--store", str(tmp_path / "no.db")]) == 2
    assert "no store at" in capsys.readouterr().err
    assert not out.exists()


# -- the server ---------------------------------------------------------------------------------


@pytest.fixture
def server(cache):
    running = serve(cache, 0)
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()
    thread.join()


def fetch(server, path: str, method: str = "GET", host: str | None = None):
    port = server.server_address[1]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Host": host or f"127.0.0.1:{port}"}
    connection.request(method, path, headers=headers)
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    return response, body


def test_the_server_serves_every_page_on_127_0_0_1(server, keys):
    assert server.server_address[0] == "127.0.0.1"
    for path in ("/", f"/task/{quote(keys['form'], safe='')}", "/runs?status=hit", "/bank"):
        response, body = fetch(server, path)
        assert response.status == 200, (path, body)
        assert response.getheader("Content-Type") == "text/html; charset=utf-8"
        assert "script-src 'self'" in response.getheader("Content-Security-Policy")
        assert XSS not in body
    _, runs = fetch(server, "/runs?status=hit")
    assert runs.count('data-status="hit"') == 4 and 'data-status="miss"' not in runs
    _, newest = fetch(server, "/runs?status=hit&limit=2")
    assert newest.count('data-status="hit"') == 2
    assert "the newest 2 of 4 runs (7 in the log)" in newest
    assert 'href="/runs?status=hit&amp;limit=0">show all' in newest
    for name in ("ui.css", "ui.js", "favicon.svg"):
        response, _ = fetch(server, f"/static/{name}")
        assert response.status == 200


def test_the_server_refuses_all_but_get_unknown_pages_and_other_hosts(server):
    for method in ("POST", "PUT", "DELETE", "HEAD", "PATCH"):
        response, _ = fetch(server, "/", method)
        assert response.status == 405 and response.getheader("Allow") == "GET"
    assert fetch(server, "/nowhere")[0].status == 404
    assert fetch(server, "/task/task1%3Anope")[0].status == 404
    assert fetch(server, "/static/../data.py")[0].status == 404
    response, body = fetch(server, "/runs?since=yesterday")
    assert response.status == 400 and "whole numbers" in body
    response, _ = fetch(server, "/", host="evil.example:80")
    assert response.status == 403


def test_ui_command_says_when_the_port_is_taken(recorded, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["ui", "--port", str(port), "--store", recorded[0]]) == 2
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["ui", "--port", "70000", "--store", recorded[0]]) == 2
