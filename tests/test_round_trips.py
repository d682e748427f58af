"""What a hit costs in round trips to the database, counted on the wire (see wire.py).

A PostgreSQL hit whose tree is current waits for one round trip, the read of its task's
generation; its bookkeeping is written behind, any number of runs' in one more. A run
that records a path is still one transaction. On SQLite, where a statement is a call
rather than a round trip, a hit's bookkeeping is one transaction.
"""

from __future__ import annotations

import pytest

import muscle_mem.store.behind as behind
from conftest import kinds
from muscle_mem import Check, Engine
from muscle_mem.store.postgres import PostgresStore
from muscle_mem.store.sqlite import SQLiteStore
from wire import RoundTrips

TASK = "fill in the form"
STEPS = 5


def form_engine(store, page):
    engine = Engine(store=store)

    @engine.function(pre_check=Check(lambda i: page["version"]))
    def fill(i):
        return i

    def agent(task):
        for i in range(STEPS):
            fill(i)

    return engine.set_agent(agent).finalize()


def warm_up(engine):
    # psycopg prepares a statement on a connection the sixth time it runs there, which
    # costs a round trip; the pool hands out its (at most four) connections in turn.
    for _ in range(30):
        assert engine(TASK)


@pytest.fixture
def wire(store_url):
    with RoundTrips(store_url) as relay:
        yield relay


@pytest.fixture
def counted(wire, monkeypatch):
    """A PostgreSQL store whose round trips ``wire`` counts; its writer waits for the
    test to say when to write (close, a read), so every round trip is accounted for."""
    monkeypatch.setattr(behind, "FLUSH_EVERY_S", 3600.0)
    store = PostgresStore(wire.url)
    yield store
    store.close()


@kinds("postgres")
def test_a_hit_on_a_current_tree_waits_for_one_round_trip(counted, wire):
    engine = form_engine(counted, {"version": "v1"})
    assert not engine(TASK)
    warm_up(engine)
    counted.runs()  # writes what is pending
    for hits in range(1, 21):
        before = wire.count
        assert engine(TASK)
        assert wire.count - before == 1, f"hit {hits} took {wire.count - before} round trips"


@kinds("postgres")
def test_the_bookkeeping_of_any_number_of_hits_is_one_more_round_trip(counted, wire, store_url):
    engine = form_engine(counted, {"version": "v1"})
    assert not engine(TASK)
    warm_up(engine)
    counted.runs()
    start = wire.count
    for _ in range(25):
        assert engine(TASK)
    hits_done = wire.count
    counted.close()  # writes the 25 runs' bookkeeping
    assert wire.count - hits_done == 1
    assert (wire.count - start) / 25 <= 2  # the bound, with room to spare: 1.04

    store = PostgresStore(store_url)
    try:
        tree = store.tree(engine.task_key(TASK))
        assert sorted(node.hits for node in tree if node.step) == [55] * STEPS
        assert [run.status for run in store.runs()] == ["miss"] + ["hit"] * 55
    finally:
        store.close()


@kinds("postgres")
def test_a_recorded_path_is_one_transaction_after_what_was_pending(counted, wire):
    page = {"version": "v1"}
    engine = form_engine(counted, page)
    assert not engine(TASK)
    assert engine(TASK)  # pending
    queries = len(wire.queries)
    page["version"] = "v2"
    assert not engine(TASK)  # a new path: the pending hit is written first, then it
    assert [q for q in wire.queries[queries:] if q in ("BEGIN", "COMMIT")] == ["BEGIN", "COMMIT"]
    statuses = [run.status for run in counted.runs()]
    assert statuses == ["miss", "hit", "miss"]


@kinds("postgres")
def test_a_hit_on_a_tree_another_worker_changed_reads_it_and_hits(counted, wire, store_url):
    page = {"version": "v1"}
    engine = form_engine(counted, page)
    assert not engine(TASK)
    other = PostgresStore(store_url)
    try:
        page["version"] = "v2"
        assert not form_engine(other, page)(TASK)  # another worker's new path
    finally:
        other.close()
    before = wire.count
    assert engine(TASK)  # on its next run: a hit, after reading the tree again
    assert wire.count - before > 1
    before = wire.count
    assert engine(TASK)
    assert wire.count - before == 1  # current again


def test_a_sqlite_hit_writes_its_bookkeeping_in_one_transaction(tmp_path):
    store = SQLiteStore(tmp_path / "cache.db")
    engine = form_engine(store, {"version": "v1"})
    assert not engine(TASK)
    assert engine(TASK)  # reads the tree the miss wrote
    statements: list[str] = []
    store._cursor().connection.set_trace_callback(statements.append)
    for _ in range(3):
        assert engine(TASK)
    begins = [s for s in statements if s.startswith("BEGIN")]
    assert begins == ["BEGIN IMMEDIATE"] * 3
    assert [s for s in statements if s == "COMMIT"] == ["COMMIT"] * 3
    # Per hit: the generation, then the log line (first: see sql._log), the task's row
    # and the nodes' counts.
    writes = [s.split()[0] for s in statements if not s.startswith(("BEGIN", "COMMIT"))]
    assert writes == ["SELECT", "INSERT", "INSERT", "UPDATE"] * 3
    store.close()
