"""``muscle-mem ui`` and ``muscle-mem report --html``: the cache as a web page."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..errors import MuscleMemError
from ..store import Store
from ..store.base import SQLDatabase
from ..store.schema import version
from .common import Command, UsageError, open_for, output

if TYPE_CHECKING:  # loaded when one of these commands runs, not for every command
    from ..ui import Cache

DEFAULT_PORT = 8765


def add_commands(command: Command) -> None:
    ui = command("ui", _ui, "a local web view: tasks, trees, divergences, runs, memory bank")
    ui.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"serve on 127.0.0.1:PORT (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    page = command("report", _report, "the web view as one static HTML file")
    page.add_argument("--html", required=True, metavar="FILE", help="write it here (- for stdout)")


def _ui(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}")
    from ..ui import serve

    cache = _cache(args)
    try:
        server = serve(cache, args.port)
    except OSError as error:
        raise UsageError(
            f"cannot serve on 127.0.0.1:{args.port}: {error.strerror or error}; "
            "choose another with --port (0 picks a free one)"
        ) from None
    print(f"muscle-mem ui: {server.url} (read-only; Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # how a server is stopped: not a failure
        print("muscle-mem ui: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..ui import report

    html = report(_cache(args))
    name = None if args.html == "-" else args.html
    with output(name) as out:
        out.write(html)
    if name is not None:
        print(f"wrote {name}", file=sys.stderr)
    return 0


def _cache(args: argparse.Namespace) -> Cache:
    """The store, read-only, and the memory bank in it if it holds one."""
    from ..ui import Cache

    store = open_for(args, read_only=True)
    if not _holds_bank(store):
        return Cache(store, None, "no memory bank in this store")
    from ..bank import MemoryBank  # loaded only when there is a bank to show

    try:
        # The bank opens its tables in a write transaction, which a SQLite file opened
        # read-only refuses: there it gets a handle of its own (its tables are there
        # already, so nothing is written).
        read_only = getattr(store, "read_only", False)
        return Cache(store, MemoryBank(open_for(args) if read_only else store))
    except (MuscleMemError, UsageError) as error:
        return Cache(store, None, f"the memory bank could not be opened: {error}")


def _holds_bank(store: Store) -> bool:
    if not isinstance(store, SQLDatabase):
        return False
    return store.read(lambda cur: version(cur, "bank_schema_version")) is not None
