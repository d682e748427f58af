"""The document around the sections, and where its links go: the server's pages link
their style sheet and script and each other; the one-file report holds its style and
script inline, under a policy that lets nothing else load, and links within itself."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from importlib import resources
from urllib.parse import quote, urlencode

from .html import Content, Markup, el

TITLE = "muscle-mem"


@dataclass(frozen=True)
class Links:
    """Where a link goes: a page of the server, or a section of the one-file report."""

    report: bool = False

    def home(self) -> str:
        return "#tasks" if self.report else "/"

    def task(self, task_key: str) -> str:
        return f"#{task_anchor(task_key)}" if self.report else f"/task/{quote(task_key, safe='')}"

    def runs(self, **wanted: str) -> str:
        query = urlencode({name: value for name, value in wanted.items() if value})
        if self.report:
            return f"#runs?{query}" if query else "#runs"
        return f"/runs?{query}" if query else "/runs"

    def bank(self) -> str:
        return "#bank" if self.report else "/bank"


def task_anchor(task_key: str) -> str:
    return "task-" + quote(task_key, safe="")


def asset(name: str) -> str:
    """A file of the package's static folder, as text."""
    return (
        resources.files(__package__).joinpath("static").joinpath(name).read_text(encoding="utf-8")
    )


def page(title: str, body: Content, links: Links, store: str) -> str:
    """A whole HTML document. The server's links its style sheet and script; the report
    holds them, with a policy that lets nothing else run or load."""
    if links.report:
        style, script = asset("ui.css"), asset("ui.js")
        policy = (
            f"default-src 'none'; style-src '{_sha256(style)}'; "
            f"script-src '{_sha256(script)}'; img-src data:; form-action 'none'"
        )
        head: Content = [
            el("meta", http_equiv="Content-Security-Policy", content=policy),
            el("link", rel="icon", href=_data_url("favicon.svg")),
            el("style", Markup(style)),
        ]
        tail: Content = el("script", Markup(script))
    else:
        head = [
            el("link", rel="icon", href="/static/favicon.svg"),
            el("link", rel="stylesheet", href="/static/ui.css"),
        ]
        tail = el("script", src="/static/ui.js", defer=True)
    nav = el(
        "nav",
        el("a", TITLE, href=links.home(), class_="brand"),
        el("a", "Tasks", href=links.home()),
        el("a", "Runs", href=links.runs()),
        el("a", "Memory bank", href=links.bank()),
        el("span", store, class_="store", title="the store this view reads"),
    )
    document = el(
        "html",
        el(
            "head",
            el("meta", charset="utf-8"),
            el("meta", name="viewport", content="width=device-width, initial-scale=1"),
            el("title", f"{title} · {TITLE}"),
            head,
        ),
        el("body", el("header", nav), el("main", body), tail),
        lang="en",
    )
    return "<!doctype html>\n" + document + "\n"


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _data_url(name: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(asset(name).encode()).decode()
