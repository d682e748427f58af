"""The crash window of PostgreSQL's bookkeeping written behind (store/behind.py).

A worker that dies without exiting normally loses the bookkeeping of the hits it had
pending (counts, last-use times, run log lines), and nothing else: never a recorded
path, never what was pending before it recorded one. A normal exit, close() and the
writer (within FLUSH_EVERY_S) write it; a failed write keeps it; a child of fork()
never writes its parent's.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import psycopg
import pytest

import muscle_mem
import muscle_mem.store.behind as behind
from conftest import kinds
from muscle_mem import Check, Engine
from muscle_mem.errors import StoreError
from muscle_mem.store.postgres import PostgresStore

pytestmark = kinds("postgres")

# Records form "a", hits it twice, records form "b" (which writes the two hits first),
# hits it three times, then ends as the test says: killed, a normal exit, or waiting to
# be killed. With "replay" it is another worker that runs form "b" once.
WORKER = textwrap.dedent(
    """
    import atexit, os, signal, sys, time
    import muscle_mem.store.behind as behind
    from muscle_mem import Check, Engine

    url, flush_every, end = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    behind.FLUSH_EVERY_S = flush_every
    engine = Engine(store=url)

    @engine.function(pre_check=Check(lambda field, form: "v1"))
    def fill(field, form):
        pass

    def agent(task, form):
        fill("name", form)
        fill("email", form)

    engine.set_agent(agent)
    if end == "replay":  # another worker, running "b" once
        print(engine("fill in form b", "b").status, flush=True)
        sys.exit(engine.close())
    for form, runs in (("a", 3), ("b", 4)):
        for _ in range(runs):
            engine("fill in form " + form, form)
    print("ready", flush=True)
    if end == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif end == "wait":
        time.sleep(600)
    elif end == "atexit":  # one more hit while the interpreter shuts down
        atexit.register(lambda: engine("fill in form b", "b"))
    # "exit", "atexit": a normal exit, without closing the engine or its store
    """
)

ALL_RUNS = ["miss", "hit", "hit", "miss", "hit", "hit", "hit"]


@pytest.fixture
def worker(tmp_path, store_url):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    started: list[subprocess.Popen] = []

    def start(flush_every: float, end: str, says: str = "ready") -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, str(script), store_url, str(flush_every), end],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line == says + "\n", process.communicate(timeout=60)[1]
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=60)  # and its pipes closed


def form_hits(store, form):
    engine = Engine(store=store)
    key = engine.task_key("fill in form " + form, form)
    tree = store.tree(key)
    return sorted(node.hits for node in tree if node.step), sum(node.terminal for node in tree)


def statuses(store):
    return [str(run.status) for run in store.runs()]


def test_a_killed_worker_loses_only_the_bookkeeping_it_had_pending(worker, stores, store_url):
    process = worker(3600, "kill")  # nothing is written behind before it dies
    assert process.wait(timeout=60) == -signal.SIGKILL
    store = stores.open(store_url)
    # Both paths, and the two hits of "a" that recording "b" wrote before it; the three
    # hits of "b" were pending.
    assert statuses(store) == ["miss", "hit", "hit", "miss"]
    assert form_hits(store, "a") == ([2, 2], 1)
    assert form_hits(store, "b") == ([0, 0], 1)
    # The recorded path of "b" is whole: another worker replays it.
    assert worker(3600, "replay", says="hit").wait(timeout=60) == 0


def test_a_worker_that_exits_normally_writes_what_it_had_pending(worker, stores, store_url):
    process = worker(3600, "exit")
    assert process.wait(timeout=60) == 0
    store = stores.open(store_url)
    assert statuses(store) == ALL_RUNS
    assert form_hits(store, "b") == ([3, 3], 1)


def test_a_hit_made_as_the_interpreter_shuts_down_is_written(worker, stores, store_url):
    process = worker(3600, "atexit")
    assert process.wait(timeout=60) == 0
    store = stores.open(store_url)
    assert statuses(store) == [*ALL_RUNS, "hit"]
    assert form_hits(store, "b") == ([4, 4], 1)


def test_a_living_worker_writes_its_hits_behind_without_being_asked(worker, stores, store_url):
    process = worker(0.05, "wait")
    try:
        store = stores.open(store_url)
        deadline = time.monotonic() + 60  # the writer's window is 0.05 s: ample
        while statuses(store) != ALL_RUNS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert statuses(store) == ALL_RUNS
        assert form_hits(store, "b") == ([3, 3], 1)
    finally:
        process.kill()


def _form_engine(store):
    engine = Engine(store=store)

    @engine.function(pre_check=Check(lambda field: "v1"))
    def fill(field):
        pass

    return engine.set_agent(lambda task: fill("name"))


def _rows(store_url: str, table: str) -> int:
    with psycopg.connect(store_url, autocommit=True) as connection:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_a_write_that_fails_keeps_what_was_pending_in_order(stores, store_url, monkeypatch):
    monkeypatch.setattr(behind, "FLUSH_EVERY_S", 3600.0)
    engine = _form_engine(stores.open(store_url))
    engine("sign in")
    engine("sign in")
    engine("sign in")
    with psycopg.connect(store_url, autocommit=True) as admin:
        admin.execute("ALTER TABLE mm_runs RENAME TO mm_runs_away")
        with pytest.raises(StoreError, match="mm_runs"):
            engine.store.runs()  # must write the two hits first, and can't
        admin.execute("ALTER TABLE mm_runs_away RENAME TO mm_runs")
    assert statuses(engine.store) == ["miss", "hit", "hit"]
    # The failed statement changed nothing: the hits are counted once.
    tree = engine.store.tree(engine.task_key("sign in"))
    [node] = [node for node in tree if node.step]
    assert node.hits == 2


def test_a_batch_committed_but_reported_failed_is_written_again_alone_and_once(
    stores, store_url, monkeypatch
):
    """A batch whose acknowledgement was lost (committed, and an error all the same) is
    written again as it was, before what was added since: it then logs and counts
    nothing twice, and what came after it is written whole."""
    monkeypatch.setattr(behind, "FLUSH_EVERY_S", 3600.0)
    store = stores.open(store_url)
    engine = _form_engine(store)
    engine("sign in")
    engine("sign in")
    write, batches = store._write_uses, []

    def acknowledgement_lost_once(uses):
        batches.append(len(uses))
        write(uses)
        if len(batches) == 1:
            raise StoreError("lost the connection")

    monkeypatch.setattr(store._behind, "_write", acknowledgement_lost_once)
    with pytest.raises(StoreError):
        store.runs()
    engine("sign in")  # another hit, pending behind the batch that "failed"
    assert statuses(store) == ["miss", "hit", "hit"]
    assert batches == [1, 1, 1]  # the failed batch again, alone; then the new one
    tree = store.tree(engine.task_key("sign in"))
    [node] = [node for node in tree if node.step]
    assert node.hits == 2


def test_the_writer_retries_a_failed_write_and_says_so_once(stores, store_url, monkeypatch, caplog):
    monkeypatch.setattr(behind, "FLUSH_EVERY_S", 0.02)
    engine = _form_engine(stores.open(store_url))
    engine("sign in")
    with psycopg.connect(store_url, autocommit=True) as admin:
        admin.execute("ALTER TABLE mm_runs RENAME TO mm_runs_away")
        with caplog.at_level(logging.WARNING, logger="muscle_mem"):
            engine("sign in")
            deadline = time.monotonic() + 30
            while not caplog.records and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)  # ten more failed attempts, if the writer is not quiet
        admin.execute("ALTER TABLE mm_runs_away RENAME TO mm_runs")
    [warned] = [record for record in caplog.records if record.name == "muscle_mem"]
    assert "kept, and tried again" in warned.getMessage()
    deadline = time.monotonic() + 30
    while _rows(store_url, "mm_runs") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _rows(store_url, "mm_runs") == 2


def test_too_much_pending_is_written_by_the_thread_that_adds_it(stores, store_url, monkeypatch):
    monkeypatch.setattr(behind, "FLUSH_EVERY_S", 3600.0)
    monkeypatch.setattr(behind, "PENDING_MAX", 3)
    engine = _form_engine(stores.open(store_url))
    engine("sign in")
    engine("sign in")
    engine("sign in")
    assert _rows(store_url, "mm_runs") == 1  # two hits pending
    engine("sign in")
    assert _rows(store_url, "mm_runs") == 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="this platform has no fork()")
def test_a_forked_child_never_writes_what_its_parent_has_pending(stores, store_url, monkeypatch):
    monkeypatch.setattr(behind, "FLUSH_EVERY_S", 3600.0)
    store = stores.open(store_url)
    engine = _form_engine(store)
    engine("sign in")
    engine("sign in")
    engine("sign in")
    with warnings.catch_warnings():
        # Python 3.12 warns when the process has threads (the pool's, the writer); the
        # child touches none of them.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # what a child's normal exit runs, then out without pytest's
        try:
            behind._write_all_at_exit()
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    assert statuses(store) == ["miss", "hit", "hit"]


def test_closing_a_store_writes_what_it_had_pending(stores, store_url, monkeypatch):
    monkeypatch.setattr(behind, "FLUSH_EVERY_S", 3600.0)
    store = PostgresStore(store_url)
    engine = _form_engine(store)
    engine("sign in")
    engine("sign in")
    store.close()
    assert _rows(store_url, "mm_runs") == 2


def test_a_cost_json_cannot_spell_never_reaches_the_log(stores, store_url):
    engine = Engine(store=stores.open(store_url))

    def agent(task, cost):  # calls no tool: nothing recorded, its log line written behind
        muscle_mem.report_usage(tokens=1, cost=cost)

    engine.set_agent(agent)
    engine("ask the model", 0.5)
    for cost in (math.inf, math.nan):  # no price: refused where it is reported
        with pytest.raises(muscle_mem.ConfigurationError, match="finite non-negative"):
            engine("ask the model", cost)
    costs = [run.cost for run in stores.open(store_url).runs()]  # another store object
    assert costs == [0.5, 0.0, 0.0]  # the two refused runs are logged as errors


def test_a_batch_holding_a_cost_json_cannot_spell_is_written_all_the_same(stores, store_url):
    # report_usage() refuses them, but a store takes its RunRecords from anyone: sent as
    # JSON numbers, infinity and NaN would have the batch refused, and every run after
    # it with it. (Reading them back is the run log's business: it calls them damage.)
    from muscle_mem.models import Changes, RunRecord, Status

    store = stores.open(store_url)
    for cost in (0.5, math.inf, math.nan, 0.25):
        run = RunRecord("task", (), (), Status.MISS, 0, 0, None, "nothing", 0.0, 0.0, 1, cost)
        store.commit(Changes("task"), run)
    store.tasks()  # writes what is pending
    with psycopg.connect(store_url, autocommit=True) as connection:
        costs = [cost for (cost,) in connection.execute("SELECT cost FROM mm_runs ORDER BY id")]
    assert costs[0] == 0.5 and costs[1] == math.inf and math.isnan(costs[2])
    assert costs[3] == 0.25


def test_closing_while_the_database_refuses_logs_what_is_lost(
    stores, store_url, monkeypatch, caplog
):
    monkeypatch.setattr(behind, "FLUSH_EVERY_S", 3600.0)
    store = PostgresStore(store_url)
    engine = _form_engine(store)
    engine("sign in")
    engine("sign in")
    engine("sign in")
    with psycopg.connect(store_url, autocommit=True) as admin:
        admin.execute("ALTER TABLE mm_runs RENAME TO mm_runs_away")
        with caplog.at_level(logging.WARNING, logger="muscle_mem"):
            store.close()  # doesn't raise: the store is going away
        admin.execute("ALTER TABLE mm_runs_away RENAME TO mm_runs")
    [warned] = [record for record in caplog.records if record.name == "muscle_mem"]
    assert "bookkeeping of 2 run(s)" in warned.getMessage()
    assert "is lost" in warned.getMessage()
    assert _rows(store_url, "mm_runs") == 1
