"""The web view of a cache: ``muscle-mem ui`` serves it, ``muscle-mem report --html``
writes it as one file.

:mod:`.data` gathers what a page shows from the store's public API (the figures of
:mod:`muscle_mem.stats`, the trees, the run log, the memory bank's briefs);
:mod:`.render` writes its sections as HTML (:mod:`.values` the recorded arguments,
:mod:`.chart` the plots as SVG, :mod:`.page` the document around them) through
:mod:`.html`, which escapes everything the store holds; :mod:`.server` serves the
pages on 127.0.0.1, read-only.
Nothing is loaded from the network: the style sheet and the script are in ``static/``.
"""

from __future__ import annotations

import time

from . import render
from .data import Cache, RunFilter
from .server import Server, serve

__all__ = ["Cache", "Server", "report", "serve"]

#: The newest runs a report holds: a log of a million runs would make a file nobody opens.
REPORT_RUNS = 2000


def report(cache: Cache) -> str:
    """The whole view as one self-contained HTML document."""
    reading = cache.read()  # once: every section shows the same moment of the store
    view = cache.overview(reading)
    trees = [cache.task(task.task_key, reading) for task in view.tasks]
    return render.report(
        view,
        [tree for tree in trees if tree is not None],
        cache.runs(RunFilter(), REPORT_RUNS, reading),
        cache.briefs(),
        time.time(),
    )
