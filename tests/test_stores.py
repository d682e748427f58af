"""Persistent stores: what survives a process, what two processes share, what is refused.

Tiers (see conftest): tests that record and replay run on every store kind; tests about
persistence run on SQLite and PostgreSQL (``@persistent``: the memory store forgets by
design); a few are about one kind; opening stores from URLs and paths runs once.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sqlite3
import time
import warnings

import pytest

import muscle_mem
from conftest import kinds
from faults.common import before_schema_6
from muscle_mem import Check, ConfigurationError, Engine, MemoryStore
from muscle_mem.codec import decode
from muscle_mem.errors import IntegrityWarning, StoreError
from muscle_mem.store import open_store
from muscle_mem.store.schema import SCHEMA_VERSION
from muscle_mem.store.sql import SQLStore

persistent = kinds("sqlite", "postgres")


def form_engine(store, world, **options):
    """An engine whose agent fills a form in two steps: the name field is checked against
    the page's version, the greeting field against where the greeting box is."""
    engine = Engine(store=store, **options)

    def where(field, value):
        return world["page"] if field == "name" else world.get("greeting_at", "#greeting")

    @engine.function(pre_check=Check(where))
    def fill(field, value):
        world.setdefault("filled", []).append((field, value))

    def agent(task, name):
        done = len(muscle_mem.handoff().steps) if muscle_mem.handoff() else 0
        for field, value in [("name", name), ("greeting", f"Hello {name}!")][done:]:
            fill(field, value)
            muscle_mem.report_usage(tokens=100, cost=0.01)

    engine.set_agent(agent)
    return engine


def run(engine, name, **options):
    return engine("fill the form", name, params={"name": name}, tags=["signup"], **options)


def form_tree(store, engine):
    key = engine.task_key("fill the form", "x", params={"name": "x"}, tags=["signup"])
    return store.tree(key)


# -- opening stores ------------------------------------------------------------------------


def test_urls_and_paths_open_the_right_store(tmp_path, monkeypatch):
    from muscle_mem.store.sqlite import SQLiteStore

    assert isinstance(open_store("memory://"), MemoryStore)
    for location in (f"sqlite:///{tmp_path}/a.db", str(tmp_path / "b.sqlite"), tmp_path / "c.db"):
        store = open_store(location)
        assert isinstance(store, SQLiteStore)
        store.close()
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///nested/dir/cache.db")
    assert (tmp_path / "nested" / "dir" / "cache.db").exists()
    relative.close()
    for bad in ("mysql://x", "cache.txt", "sqlite://"):
        with pytest.raises(ConfigurationError, match="sqlite:///"):
            open_store(bad)


def test_engine_without_a_store_uses_the_environment_variable(tmp_path, monkeypatch):
    path = tmp_path / "env.db"
    monkeypatch.setenv("MUSCLE_MEM_STORE", f"sqlite:///{path}")
    with Engine() as engine:
        assert "SQLiteStore" in repr(engine.store)
    monkeypatch.delenv("MUSCLE_MEM_STORE")
    assert isinstance(Engine().store, MemoryStore)


def test_a_file_that_is_not_a_store_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"my notes, not a database" * 100)
    with pytest.raises(StoreError, match=r"notes\.db"):
        open_store(path)
    assert path.read_bytes() == b"my notes, not a database" * 100


@persistent
def test_a_store_of_a_newer_schema_is_refused(store_url, stores):
    store = stores.open(store_url)
    assert isinstance(store, SQLStore)
    store._write(
        lambda cur: cur.execute(
            "UPDATE mm_meta SET value = ? WHERE key = 'schema_version'",
            (str(SCHEMA_VERSION + 1),),
        )
    )
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}.*Upgrade"):
        stores.open(store_url)


@persistent
def test_a_version_1_store_is_migrated_and_keeps_its_runs(store_url, stores):
    engine = form_engine(stores.open(store_url), {"page": "v1"})
    run(engine, "John")
    old = stores.open(store_url)
    assert isinstance(old, SQLStore)

    def downgrade(cur):  # what a store written by muscle-mem 0.2 (schema 1) looks like
        before_schema_6(cur)
        cur.execute("ALTER TABLE mm_nodes DROP COLUMN result")
        cur.execute("ALTER TABLE mm_nodes DROP COLUMN result_sig")
        cur.execute("DROP INDEX mm_runs_about")
        cur.execute("ALTER TABLE mm_runs DROP COLUMN path")
        cur.execute("ALTER TABLE mm_runs DROP COLUMN about")
        cur.execute("ALTER TABLE mm_tasks DROP COLUMN text")  # and schema 5's columns
        cur.execute("ALTER TABLE mm_nodes DROP COLUMN approved")
        cur.execute("ALTER TABLE mm_nodes DROP COLUMN approved_sig")
        cur.execute("UPDATE mm_meta SET value = '1' WHERE key = 'schema_version'")

    old._write(downgrade)
    migrated = stores.open(store_url)
    [logged] = migrated.runs()
    assert (logged.status, logged.recorded, logged.path, logged.about) == ("miss", 2, None, None)
    assert run(form_engine(migrated, {"page": "v1"}), "Jane", about="person:jane").hit
    assert [r.about for r in stores.open(store_url).runs()] == [None, "person:jane"]


# -- what persists ---------------------------------------------------------------------------


@persistent
def test_a_path_recorded_by_one_engine_is_replayed_by_a_new_one(store_url, stores):
    world = {"page": "v1"}
    assert run(form_engine(stores.open(store_url), world), "John").status == "miss"
    later = form_engine(stores.open(store_url), world)  # as a new process would
    outcome = run(later, "Jane")
    assert (outcome.status, outcome.replayed) == ("hit", 2)
    assert world["filled"][-2:] == [("name", "Jane"), ("greeting", "Hello Jane!")]


@persistent
def test_a_handoff_branch_is_stored_and_replayed_after_reopening(store_url, stores):
    world = {"page": "v1"}
    run(form_engine(stores.open(store_url), world), "John")
    world["greeting_at"] = "#welcome"
    handed = run(form_engine(stores.open(store_url), world), "Ann")
    assert (handed.status, handed.diverged_at) == ("handoff", 1)
    reopened = stores.open(store_url)
    assert run(form_engine(reopened, world), "Bob").status == "hit"
    del world["greeting_at"]
    assert run(form_engine(stores.open(store_url), world), "Cy").status == "hit"
    tree = form_tree(stores.open(store_url), form_engine(reopened, world))
    [greeting] = [node for node in tree if node.parent not in (None, tree.root.id)]
    assert len(tree) == 2 and len(greeting.pre) == 2  # one path, two environments


def test_the_run_log_keeps_names_usage_and_outcomes_not_param_values(store_url, stores):
    world = {"page": "v1"}
    engine = form_engine(stores.open(store_url), world)
    run(engine, "John")
    run(engine, "Jane")
    runs = stores.open(store_url).runs() if store_url != "memory://" else engine.store.runs()
    assert [r.status for r in runs] == ["miss", "hit"]
    first, second = runs
    assert first.tags == ("signup",) and first.params == ("name",)
    assert (first.recorded, first.replayed, first.tokens) == (2, 0, 200)
    assert first.cost == pytest.approx(0.02)
    assert (second.recorded, second.replayed, second.tokens) == (0, 2, 0)
    assert "John" not in repr(runs) and "Jane" not in repr(runs)
    assert first.path is not None and second.path == first.path  # the hit replayed that path


def test_the_run_log_says_what_each_run_was_about(store_url, stores):
    class Entity:
        ref = "campaign:summer"

    engine = form_engine(stores.open(store_url), {"page": "v1"})
    run(engine, "John", about=Entity())
    run(engine, "Jane", about="campaign:winter")
    run(engine, "Ann")
    log = engine.store
    assert [r.about for r in log.runs()] == ["campaign:summer", "campaign:winter", None]
    assert [r.about for r in log.runs(about="campaign:winter")] == ["campaign:winter"]
    assert len(log.runs(since=log.runs()[1].started_at)) == 2
    assert log.runs(since=log.runs()[-1].started_at + 1) == []
    for bad in ("summer", ":summer", "campaign:", 42):
        with pytest.raises(ConfigurationError, match="kind:id"):
            run(engine, "Bo", about=bad)
    assert len(log.runs()) == 3


@persistent
def test_snapshot_cap_evicts_the_least_recently_matched_for_good(store_url, stores):
    world = {"page": "p0"}
    engine = form_engine(stores.open(store_url, snapshot_cap=3), world)
    for page in ("p0", "p1", "p2"):
        world["page"] = page
        run(engine, "x")
    world["page"] = "p0"
    assert run(engine, "x").hit  # p0 is now the most recently matched
    world["page"] = "p3"
    run(engine, "x")  # records p3: p1 is the least recently matched, so it goes
    reopened = stores.open(store_url, snapshot_cap=3)
    tree = form_tree(reopened, form_engine(reopened, world))
    [name] = tree.root.children
    stored = name.pre.keys()
    assert sorted(decode(key) for key in stored) == ["p0", "p2", "p3"]


@persistent
def test_a_refreshed_snapshot_is_what_the_next_process_compares_with(store_url, stores):
    clock = {"now": 0.0}
    within_a_second = Check(lambda: clock["now"], lambda now, then: now - then <= 1)

    def engine_on(store):
        engine = Engine(store=store)

        @engine.function(pre_check=within_a_second)
        def ping():
            pass

        engine.set_agent(lambda task: ping())
        return engine

    engine_on(stores.open(store_url))("t")
    for now in (0.8, 1.6, 2.4):  # each hit refreshes the snapshot, in the store too
        clock["now"] = now
        assert engine_on(stores.open(store_url))("t").hit


@persistent
def test_a_stored_snapshot_is_rebuilt_as_the_class_of_the_live_capture(store_url, stores):
    @dataclasses.dataclass
    class Page:  # local: not importable by name, so only the live capture's class fits
        layout: str
        version: int

    page = Page("grid", 3)

    def engine_on(store):
        engine = Engine(store=store)

        @engine.function(pre_check=Check(lambda: page, lambda now, then: now == then))
        def open_page():
            pass

        engine.set_agent(lambda task: open_page())
        return engine

    engine_on(stores.open(store_url))("t")
    assert engine_on(stores.open(store_url))("t").hit
    page.version = 4
    assert not engine_on(stores.open(store_url))("t").hit


# -- reading little, and only when needed -----------------------------------------------------


@persistent
def test_a_fresh_store_reads_only_the_task_key_it_is_asked_for(store_url, stores):
    world = {"page": "v1"}
    engine = form_engine(stores.open(store_url), world)
    for i in range(5):
        engine(f"task {i}", "x", params={"name": "x"})
    fresh = stores.open(store_url)
    loaded = []
    original = fresh._load
    fresh._load = lambda cur, key: loaded.append(key) or original(cur, key)
    again = form_engine(fresh, world)
    assert again("task 3", "y", params={"name": "y"}).hit
    assert again("task 3", "z", params={"name": "z"}).hit
    assert loaded == [again.task_key("task 3", "y", params={"name": "y"})]  # once, that key


@persistent
def test_a_path_recorded_elsewhere_is_seen_on_the_next_run(store_url, stores):
    world = {"page": "v1"}
    worker_a = form_engine(stores.open(store_url), world)
    worker_b = form_engine(stores.open(store_url), world)
    assert run(worker_b, "x").status == "miss"  # b has now read the task's tree
    world["page"] = "v2"
    assert run(worker_a, "y").status == "miss"  # a records the v2 path
    assert run(worker_b, "z").hit  # b sees the new generation and re-reads


# -- integrity and secrets ----------------------------------------------------------------------


def tamper(store, sql):
    store._write(lambda cur: cur.execute(sql))


@persistent
def test_a_tampered_row_is_ignored_with_a_warning_then_replaced(store_url, stores):
    world = {"page": "v1"}
    run(form_engine(stores.open(store_url), world, secret="s3cret"), "John")
    tamper(stores.open(store_url), "UPDATE mm_nodes SET tool = 'os.system'")
    engine = form_engine(stores.open(store_url), world, secret="s3cret")
    with pytest.warns(IntegrityWarning, match="failed signature verification"):
        outcome = run(engine, "Jane")
    assert outcome.status == "miss"  # never replayed; the agent recorded it again
    fresh = form_engine(stores.open(store_url), world, secret="s3cret")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run(fresh, "Bob").hit


@persistent
def test_rows_without_the_secret_are_never_replayed(store_url, stores):
    world = {"page": "v1"}
    run(form_engine(stores.open(store_url), world), "John")  # unsigned
    with pytest.warns(IntegrityWarning):
        assert not run(form_engine(stores.open(store_url), world, secret=b"k"), "Jane").hit
    # Signed with b"k" now: another secret replays none of it, and records nothing
    # over it (tests/faults/test_signed_fleet.py).
    with pytest.warns(IntegrityWarning), pytest.raises(StoreError, match="another secret"):
        run(form_engine(stores.open(store_url), world, secret="other"), "Jo")


@persistent
def test_a_tampered_snapshot_is_ignored(store_url, stores):
    world = {"page": "v1"}
    run(form_engine(stores.open(store_url), world, secret="s3cret"), "John")
    tamper(stores.open(store_url), "UPDATE mm_snapshots SET sig = NULL")
    with pytest.warns(IntegrityWarning):
        assert not run(form_engine(stores.open(store_url), world, secret="s3cret"), "Jane").hit


@persistent
def test_sensitive_arguments_never_reach_the_store(store_url, stores, tmp_path):
    store = stores.open(store_url)
    engine = Engine(store=store)
    typed = []

    @engine.function(sensitive=["password"])
    def log_in(user, password):
        typed.append((user, password))

    engine.set_agent(lambda task, password: log_in("ann", password))
    engine("log in", "hunter2-literal")  # not a param: stored redacted
    engine("log in as", "hunter2-param", params={"pw": "hunter2-param"})
    assert engine("log in as", "new-pass", params={"pw": "new-pass"}).hit
    outcome = engine("log in", "hunter2-literal")
    assert outcome.status == "miss" and "sensitive argument 'password'" in outcome.reason
    dump = repr(store._read(lambda cur: _all_rows(cur)))
    assert "hunter2" not in dump and "new-pass" not in dump
    assert typed[2] == ("ann", "new-pass")


def _all_rows(cur):
    rows = []
    for table in ("mm_nodes", "mm_snapshots", "mm_runs", "mm_tasks"):
        cur.execute(f"SELECT * FROM {table}")
        rows += [
            bytes(v) if isinstance(v, memoryview) else v for row in cur.fetchall() for v in row
        ]
    return rows


def test_sqlite_waits_for_a_busy_writer_instead_of_failing(tmp_path):
    from muscle_mem.store.sqlite import SQLiteStore

    path = tmp_path / "busy.db"
    store = SQLiteStore(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock

    import threading

    world = {"page": "v1"}
    engine = form_engine(store, world)
    results = []
    worker = threading.Thread(target=lambda: results.append(run(engine, "x").status))
    worker.start()
    worker.join(0.3)
    assert worker.is_alive() and not results  # waiting, not failing
    blocker.execute("COMMIT")
    worker.join(10)
    assert results == ["miss"]
    store.close()
    blocker.close()


# -- PostgreSQL connections -----------------------------------------------------------------


@kinds("postgres")
def test_a_dropped_connection_is_retried_once(store_url, stores, postgres_admin):
    # Named, so that only this store's connections are dropped, not those of other tests
    # (or of other runs of this suite) on the same server.
    name = f"mm_dropped_{os.getpid()}"
    world = {"page": "v1"}
    engine = form_engine(stores.open(f"{store_url}&application_name={name}"), world)
    run(engine, "x")
    dropped = postgres_admin.execute(  # what a server restart or a proxy timeout does
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{name}'"
    ).fetchall()
    assert dropped  # there were idle connections to drop
    assert run(engine, "y").hit


def test_an_unreachable_server_is_a_clear_error_without_the_password():
    pytest.importorskip("psycopg", reason="pip install 'muscle-mem[postgres]'")
    # No server is needed: nothing listens on port 1.
    with pytest.raises(StoreError) as raised:
        open_store("postgresql://ann:hunter2@127.0.0.1:1/nowhere")
    message = str(raised.value)
    assert "hunter2" not in message
    assert "postgresql://ann:***@127.0.0.1:1/nowhere" in message


def test_every_store_says_where_its_data_is_without_a_password(store_kind, stores, store_url):
    from muscle_mem.store.postgres import redact

    store = stores.open(store_url)
    # memory://, the sqlite:/// URL it was opened with, the PostgreSQL URL as redacted
    assert store.url == (redact(store_url) if store_kind == "postgres" else store_url)


def test_a_store_url_can_set_the_snapshot_cap(tmp_path):
    assert open_store("memory://?snapshot_cap=7").snapshot_cap == 7
    sqlite_store = open_store(f"sqlite:///{tmp_path}/cap.db?snapshot_cap=9")
    assert sqlite_store.snapshot_cap == 9 and (tmp_path / "cap.db").exists()
    sqlite_store.close()
    for bad in ("memory://?snapshot_cap=many", "memory://?snapshot_cap=0"):
        with pytest.raises(ConfigurationError, match="snapshot_cap"):
            open_store(bad)


@persistent
def test_a_process_keeps_a_bounded_number_of_trees(store_url, stores, monkeypatch):
    from muscle_mem.store import sql

    monkeypatch.setattr(sql, "TREES_KEPT", 3)
    world = {"page": "v1"}
    store = stores.open(store_url)
    engine = form_engine(store, world)
    for i in range(5):
        engine(f"task {i}", "x", params={"name": "x"})
    assert len(store._trees) == 3  # the three most recently used task keys
    assert engine("task 0", "y", params={"name": "y"}).hit  # read again from the store


def test_a_deadline_ends_a_wait_on_a_peer_that_never_answers():
    """store/deadline.py: a socket still waiting past its deadline is shut down, so the
    wait ends as if the peer had closed it; one answered in time is left alone."""
    from muscle_mem.store.deadline import Deadlines

    deadlines = Deadlines(0.2)
    ours, peer = socket.socketpair()
    with ours, peer:
        answered = deadlines.watch(ours)
        peer.sendall(b"ok")
        assert ours.recv(2) == b"ok"
        assert deadlines.done(answered) is False
        stalled = deadlines.watch(ours)
        start = time.monotonic()
        assert ours.recv(2) == b""  # shut down: no answer ever came
        assert 0.2 <= time.monotonic() - start < 5
        assert deadlines.done(stalled) is True
