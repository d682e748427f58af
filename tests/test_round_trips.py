"""What a hit costs the database.

On SQLite, where a statement is a call rather than a round trip, a hit's bookkeeping is
one transaction that writes the task's row, the nodes' counts and the log line.
"""

from __future__ import annotations

from muscle_mem import Check, Engine
from muscle_mem.store.sqlite import SQLiteStore

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
    # Per hit: the generation, then the task's row, the nodes' counts and the log line.
    writes = [s.split()[0] for s in statements if not s.startswith(("BEGIN", "COMMIT"))]
    assert writes == ["SELECT", "INSERT", "UPDATE", "INSERT"] * 3
    store.close()
