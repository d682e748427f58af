"""``muscle-mem ui``: the web view, served on 127.0.0.1 by the standard library.

Read-only: it answers GET and nothing else, and it reads the store in one thread of its
own (the HTTP server makes one per request; a store keeps a connection per thread, and
a thread per request would open one each). It answers only requests addressed to its
own host and port, so a page of another site that renamed itself to 127.0.0.1 (DNS
rebinding) cannot read the cache through the visitor's browser.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import MuscleMemError
from . import render
from .data import Cache, RunFilter
from .html import el
from .page import Links, asset, page

T = TypeVar("T")

HOST = "127.0.0.1"
RUNS_SHOWN = 200  # the newest runs a run log page shows unless asked for more
_LINKS = Links()
_STATIC = {
    "ui.css": "text/css; charset=utf-8",
    "ui.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# Nothing but this server's own files: no inline script, no other origin, no frames.
_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


class Page(Exception):
    """A request the view answers with an error page: its status and what to say."""

    def __init__(self, status: HTTPStatus, text: str) -> None:
        super().__init__(text)
        self.status = status


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cache: Cache, port: int) -> None:
        self.cache = cache
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="muscle-mem-ui")
        super().__init__((HOST, port), _Handler)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def read(self, work: Callable[[Cache], T]) -> T:
        """``work(cache)``, run in the one thread that reads the store."""
        return self._reader.submit(work, self.cache).result()

    def server_close(self) -> None:
        super().server_close()
        self._reader.shutdown()


def serve(cache: Cache, port: int) -> Server:
    """A server of ``cache`` on 127.0.0.1:``port`` (0: a free port), not yet started:
    call ``serve_forever()``, then ``server_close()``.

    Raises OSError when the port is taken."""
    return Server(cache, port)


def _page(cache: Cache, path: str, query: dict[str, list[str]]) -> str:
    """The HTML of the page at ``path``."""
    store = cache.store.url
    if path == "/":
        return page("tasks", render.overview(cache.overview(), _LINKS), _LINKS, store)
    if path.startswith("/task/"):
        key = unquote(path.removeprefix("/task/"))
        tree = cache.task(key)
        if tree is None:
            raise Page(HTTPStatus.NOT_FOUND, f"no task key {key!r} in the cache or the run log")
        return page(tree.task.name, render.task_page(tree, _LINKS), _LINKS, store)
    if path == "/runs":
        wanted, limit = _run_filter(query)
        return page("runs", render.run_log(cache.runs(wanted, limit), _LINKS), _LINKS, store)
    if path == "/bank":
        return page("memory bank", render.bank(cache.briefs()), _LINKS, store)
    raise Page(HTTPStatus.NOT_FOUND, f"no page {path}")


def _run_filter(query: dict[str, list[str]]) -> tuple[RunFilter, int]:
    """The filter and the number of runs the run log's query string asks for."""

    def one(name: str) -> str:
        return query.get(name, [""])[-1].strip()

    since, limit = one("since") or "0", one("limit") or str(RUNS_SHOWN)
    if not since.isdigit() or not limit.isdigit():
        raise Page(HTTPStatus.BAD_REQUEST, "since and limit must be whole numbers (seconds, runs)")
    return RunFilter(one("status"), one("tag"), one("task"), int(since)), int(limit)


class _Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = "muscle-mem"

    def do_GET(self) -> None:  # the name http.server calls
        try:
            self._check_host()
            url = urlsplit(self.path)
            if url.path.startswith("/static/"):
                self._static(url.path.removeprefix("/static/"))
                return
            query = parse_qs(url.query)
            html = self.server.read(lambda cache: _page(cache, url.path, query))
            self._send(HTTPStatus.OK, html.encode(), "text/html; charset=utf-8")
        except Page as error:
            self._error(error.status, str(error))
        except MuscleMemError as error:
            self._failed(f"the store could not be read: {error}")
        except Exception as error:  # a bug: the page says so, the terminal says where
            traceback.print_exc()
            self._failed(f"{type(error).__name__}: {error}")

    def _refuse(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET")
        self.send_header("Content-Length", "0")
        self.end_headers()

    # Read-only: everything but GET is refused.
    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _refuse

    def _check_host(self) -> None:
        port = self.server.server_address[1]
        allowed = {f"{name}:{port}" for name in (HOST, "localhost", "[::1]")}
        if self.headers.get("Host", "") not in allowed:
            raise Page(HTTPStatus.FORBIDDEN, "this view answers requests to 127.0.0.1 only")

    def _static(self, name: str) -> None:
        if name not in _STATIC:
            raise Page(HTTPStatus.NOT_FOUND, f"no file {name}")
        self._send(HTTPStatus.OK, asset(name).encode(), _STATIC[name])

    def _error(self, status: HTTPStatus, text: str) -> None:
        body = el("section", el("h1", f"{status.value} {status.phrase}"), el("p", text))
        html = page(status.phrase, body, _LINKS, self.server.cache.store.url)
        self._send(status, html.encode(), "text/html; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", _POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a page served is no news. Failures are said by :meth:`_failed`."""

    def _failed(self, text: str) -> None:
        sys.stderr.write(f"muscle-mem ui {time.strftime('%H:%M:%S')}: {self.path}: {text}\n")
        self._error(HTTPStatus.INTERNAL_SERVER_ERROR, text)
