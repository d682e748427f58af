"""The web view in a real headless Chromium: ``muscle-mem ui`` runs as a user starts it,
against a store with recorded runs (two tasks, a handoff, HTML in a task's text and
arguments, a memory bank), and every page loads with its content, no console error, no
failed request and no script of the store's data run; so does the one-file report,
whose run log filters in the page.

Screenshots are kept: in $MUSCLE_MEM_UI_SCREENSHOTS if set, else in the test's
tmp_path (the path is printed). Needs Debian's chromium (/usr/bin/chromium, or
$MUSCLE_MEM_CHROMIUM) and Playwright (the ``ui-test`` extra); without them the tests
skip, unless $MUSCLE_MEM_REQUIRE_BROWSER=1 (CI), where that is a failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from test_ui import ALERT, FORM, XSS, record

CHROMIUM = os.environ.get("MUSCLE_MEM_CHROMIUM", "/usr/bin/chromium")
SCRIPT = str(Path(sys.executable).parent / "muscle-mem")


def _browser_or_skip() -> Any:
    why = ""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = "Playwright is not installed: pip install -e '.[ui-test]'"
    if not why and not Path(CHROMIUM).exists():
        why = f"no Chromium at {CHROMIUM}: apt-get install chromium"
    if why:
        if os.environ.get("MUSCLE_MEM_REQUIRE_BROWSER") == "1":
            pytest.fail(f"MUSCLE_MEM_REQUIRE_BROWSER=1, but {why}")
        pytest.skip(why)
    return sync_playwright


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_playwright = _browser_or_skip()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('ui-browser') / 'cache.db'}"
    return url, record(url)


@pytest.fixture(scope="module")
def served(recorded: tuple[str, dict[str, str]]) -> Iterator[str]:
    """``muscle-mem ui --port 0`` as a subprocess; the URL it prints."""
    process = subprocess.Popen(
        [SCRIPT, "ui", "--port", "0", "--store", recorded[0]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=10)
        pytest.fail(f"muscle-mem ui did not start: {process.stderr.read()}")  # type: ignore[union-attr]
    url = line.split()[2]
    assert url.startswith("http://127.0.0.1:"), line
    yield url.rstrip("/")
    process.send_signal(signal.SIGINT)
    _, errors = process.communicate(timeout=10)
    assert process.returncode == 0, errors  # Ctrl-C stops it, and that is no failure
    assert "muscle-mem ui: stopped" in errors
    assert "Traceback" not in errors, errors


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(
        os.environ.get("MUSCLE_MEM_UI_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots")
    )
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots of the web view: {folder}")
    return folder


class Visit:
    """A page in Chromium, with every console message, script error, failed request,
    error response and dialog (an alert a script of the data would raise) it saw."""

    def __init__(self, browser: Any) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.problems: list[str] = []
        page = self.page
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"script error: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url}"))
        page.on(
            "response",
            lambda r: r.status >= 400 and self.problems.append(f"{r.status}: {r.url}"),
        )
        page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))

    def open(self, url: str) -> Any:
        response = self.page.goto(url)
        self.page.wait_for_load_state("load")
        assert response is not None and response.ok, url
        return self.page

    def shoot(self, folder: Path, name: str) -> None:
        self.page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.page.close()
        assert self.problems == []


@pytest.fixture
def visit(browser: Any) -> Iterator[Visit]:
    made = Visit(browser)
    yield made
    made.close()


def _text(page: Any, selector: str) -> str:
    return str(page.locator(selector).first.inner_text())


def test_overview_shows_tasks_figures_plots_and_the_heat_map(served, recorded, visit, shots):
    _, keys = recorded
    page = visit.open(served + "/")
    assert page.title() == "tasks · muscle-mem"
    figures = _text(page, "dl.figures")
    assert "7" in figures and "57%" in figures  # 7 runs, 4 hits
    assert page.locator("figure.chart svg").count() == 3
    assert page.locator("figure.chart svg rect.bar").count() >= 1
    assert page.locator("figure.chart svg polyline").count() == 2
    rows = page.locator("table.tasks tbody tr")
    assert rows.count() == 2
    form = page.locator(f'table.tasks a[href="/task/{quote(keys["form"], safe="")}"]')
    assert form.locator(".text").inner_text() == FORM
    alert = page.locator(f'table.tasks a[href="/task/{quote(keys["alert"], safe="")}"]')
    assert alert.locator(".text").inner_text() == ALERT  # its HTML, shown as text
    cell = page.locator("table.heatmap td.heat[data-step='1']")
    assert cell.inner_text() == "1" and "heat-5" in (cell.get_attribute("class") or "")
    visit.shoot(shots, "overview")


def test_task_page_shows_the_tree_its_checks_and_where_runs_diverged(
    served, recorded, visit, shots
):
    _, keys = recorded
    page = visit.open(f"{served}/task/{quote(keys['form'], safe='')}")
    steps = page.locator("li.step")
    assert steps.count() == 3
    calls = [steps.nth(i).locator(".call code").first.inner_text() for i in range(3)]
    assert calls[0].endswith("fill('name', {name})")
    assert calls[1].endswith("fill('greeting', 'Hello {name}!')")
    assert calls[2].endswith("submit()")
    assert page.locator("li.step .param").first.inner_text() == "{name}"
    assert page.locator(".badge.end").inner_text() == "path 1 ends here"
    assert page.locator(".badge.unapproved").inner_text() == "not approved"
    page.locator("li.step details.check summary").nth(1).click()  # the greeting's check
    snapshots = page.locator("li.step details.check").nth(1).locator("ul.snapshots li")
    assert snapshots.count() == 2 and "'#greeting-v2'" in snapshots.first.inner_text()
    heat = page.locator("table.heatmap tbody tr")
    assert heat.count() == 1 and heat.locator("th").inner_text() == "path 1"
    assert heat.locator("td[data-step='1']").inner_text() == "1"
    visit.shoot(shots, "task")


def test_data_from_the_store_is_shown_as_text_never_run(served, recorded, visit):
    _, keys = recorded
    page = visit.open(f"{served}/task/{quote(keys['alert'], safe='')}")
    assert page.locator("h2.task").inner_text().startswith(ALERT)
    assert page.title() == f"{ALERT} · muscle-mem"
    call = page.locator("li.step .call code").first.inner_text()
    assert XSS in call  # the argument, shown as it is
    assert page.locator(".badge.approved").inner_text() == "approved"
    assert page.locator("main script").count() == 0
    assert page.evaluate("document.querySelectorAll('script').length") == 1  # ui.js alone


def test_run_log_filters_by_status_tag_task_and_age(served, recorded, visit, shots):
    _, keys = recorded
    page = visit.open(served + "/runs")
    assert page.locator("#run-table tbody tr").count() == 7
    page.select_option("select[name=status]", "handoff")  # the form submits itself
    page.wait_for_url("**/runs?status=handoff**")
    rows = page.locator("#run-table tbody tr")
    assert rows.count() == 1 and rows.first.get_attribute("data-status") == "handoff"
    assert "step 1" in rows.first.locator("td.reason").inner_text()
    page = visit.open(f"{served}/runs?tag=x%3Cy&task={quote(keys['alert'], safe='')}&since=3600")
    assert page.locator("#run-table tbody tr").count() == 2
    assert page.locator("select[name=tag]").input_value() == "x<y"
    visit.shoot(shots, "runs")


def test_bank_page_shows_a_brief_per_scope(served, visit, shots):
    page = visit.open(served + "/bank")
    brief = page.locator("details.brief[data-scope='brand:acme']")
    assert brief.count() == 1
    text = brief.inner_text()
    assert "The greeting box moved" in text and XSS in text
    assert "Move budget to the lookalike" in text
    visit.shoot(shots, "bank")


def test_report_is_one_page_that_works_from_a_file(recorded, visit, shots, tmp_path):
    url, keys = recorded
    out = tmp_path / "report.html"
    subprocess.run([SCRIPT, "report", "--html", str(out), "--store", url], check=True)
    page = visit.open(out.as_uri())
    assert page.locator("section#tasks figure.chart svg").count() == 3
    assert page.locator("section.task").count() == 2
    rows = page.locator("#run-table tbody tr")
    assert rows.count() == 7
    page.select_option("select[name=status]", "hit")  # filters in the page
    assert page.locator("#run-table tbody tr:not([hidden])").count() == 4
    assert page.inner_text("#run-count") == "4 of 7 runs"
    page.select_option("select[name=status]", "")
    page.locator(f"a[href='#{'task-' + quote(keys['form'], safe='')}']").first.click()
    page.evaluate("window.location.hash = '#runs?status=miss'")
    page.wait_for_function("document.getElementById('run-count').textContent === '2 of 7 runs'")
    assert page.locator("select[name=status]").input_value() == "miss"
    visit.shoot(shots, "report")
