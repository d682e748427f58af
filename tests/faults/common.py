"""What the fault-injection tests share: a small task, a world that logs what its tool
did, and a way to say whether anything was replayed that nobody recorded.

The task pays an amount to a payee in two steps, each checked against the page the
agent sees; what the tool did is logged in the world, so a test compares what ran with
what was recorded.
"""

from __future__ import annotations

import json
import os
from typing import Any

from muscle_mem import Check, Engine, handoff

# Heavier rounds run with MUSCLE_MEM_FAULTS=full (see docs/reliability.md); the default
# rounds keep the suite inside its time budget.
FULL = os.environ.get("MUSCLE_MEM_FAULTS") == "full"


def rounds(quick: int, full: int) -> int:
    return full if FULL else quick


def figures(test: str, **counts: Any) -> None:
    """Add a test's figures to $MUSCLE_MEM_FAULTS_REPORT (JSON lines), when it is set:
    docs/reliability.md quotes those of the last full run."""
    path = os.environ.get("MUSCLE_MEM_FAULTS_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as report:
            report.write(json.dumps({"test": test, **counts}) + "\n")


def pay_engine(store: Any, world: dict[str, Any], compare: Any = None, **options: Any) -> Engine:
    """The payment task's engine; ``compare``: its check's (equality without)."""
    engine = Engine(store=store, **options)

    @engine.function(pre_check=Check(lambda field, value: world["page"], compare))
    def fill(field, value):
        world["log"].append((field, value))

    def agent(task, payee, amount):
        done = len(handoff().steps) if handoff() else 0
        for field, value in [("payee", payee), ("amount", amount)][done:]:
            fill(field, value)
        return f"paid {amount} to {payee}"

    engine.set_agent(agent)
    return engine


def pay(engine: Engine, payee: str, amount: str = "200") -> Any:
    return engine("pay", payee, amount, params={"payee": payee})


def new_world() -> dict[str, Any]:
    return {"page": "v1", "log": []}


def write(store: Any, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Change rows behind the store's back, as a disk, a tool or a person might."""
    store.write(lambda cur: cur.execute(sql, params))


def read(store: Any, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    def work(cur: Any) -> list[Any]:
        cur.execute(sql, params)
        return [tuple(row) for row in cur.fetchall()]

    return store.read(work)


def before_schema_6(cur: Any) -> None:
    """Make a store look as one from before schema 6 does: no end digests, no run uids."""
    cur.execute("DROP INDEX mm_runs_uid")
    cur.execute("ALTER TABLE mm_runs DROP COLUMN uid")
    cur.execute("ALTER TABLE mm_nodes DROP COLUMN end_digest")
    cur.execute("UPDATE mm_meta SET value = '5' WHERE key = 'schema_version'")
