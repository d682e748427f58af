"""Several processes on one store: nothing lost, no node written twice, paths shared.

Runs on SQLite and PostgreSQL (see conftest): a memory store lives in one process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import kinds
from muscle_mem.store import open_store

pytestmark = kinds("sqlite", "postgres")

WORKERS = 4
ROUNDS = 5

WORKER = textwrap.dedent(
    """
    import json, sys
    from muscle_mem import Check, Engine

    url, me, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    engine = Engine(store=url)
    page = {"version": "v1"}

    @engine.function(pre_check=Check(lambda field, value: page["version"]))
    def fill(field, value):
        pass

    def agent(task, name):
        fill("name", name)
        fill("greeting", "Hello " + name)

    engine.set_agent(agent)
    statuses = {"shared": [], "own": []}
    for r in range(rounds):
        name = f"w{me}r{r}"
        statuses["shared"].append(engine("shared task", name, params={"name": name}).status)
        statuses["own"].append(engine(f"task of {me}", name, params={"name": name}).status)
    engine.store.close()
    print(json.dumps(statuses))
    """
)


@pytest.fixture
def shared_url(store_url):
    return store_url


def test_processes_share_paths_and_never_duplicate_nodes(shared_url, stores, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), shared_url, str(i), str(ROUNDS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(WORKERS)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        results.append(json.loads(out))

    for statuses in results:
        # Each worker's own task: recorded once, then replayed from the store.
        assert statuses["own"] == ["miss"] + ["hit"] * (ROUNDS - 1)
        # The shared task may be recorded by several workers at once in round one,
        # never after it: by then every worker sees the path another one wrote.
        assert statuses["shared"][1:] == ["hit"] * (ROUNDS - 1)

    store = stores.open(shared_url)
    rows = store._read(lambda cur: _rows(cur))
    nodes, tasks, runs = rows
    assert runs == WORKERS * ROUNDS * 2  # nothing lost
    assert nodes == 2 * (1 + WORKERS)  # one two-step path per task key, written once
    assert tasks == 1 + WORKERS


def _rows(cur):
    counts = []
    for table in ("mm_nodes", "mm_tasks", "mm_runs"):
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        counts.append(cur.fetchone()[0])
    cur.execute(
        "SELECT COUNT(*) FROM (SELECT parent, tool, call FROM mm_nodes "
        "GROUP BY parent, tool, call HAVING COUNT(*) > 1) AS d"
    )
    assert cur.fetchone()[0] == 0
    return counts[0], counts[1], counts[2]


def test_open_store_in_many_processes_at_once_creates_the_schema_once(shared_url, tmp_path):
    code = "import sys; from muscle_mem.store import open_store; open_store(sys.argv[1]).close()"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", code, shared_url], stderr=subprocess.PIPE, text=True
        )
        for _ in range(WORKERS)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
    store = open_store(shared_url)
    assert store.runs() == []
    store.close()
