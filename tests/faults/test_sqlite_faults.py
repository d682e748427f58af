"""A SQLite file under faults: a full disk (RLIMIT_FSIZE, which needs no root), a file
truncated to nothing, bytes flipped and rows overwritten with garbage at random.

What is asserted each time: the exact error (a StoreError naming the store, or a
warning naming the rows left out), nothing committed before the fault lost, and
nothing replayed that was not recorded.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import warnings

import pytest

from muscle_mem import (
    IntegrityWarning,
    Mode,
    ReplayMissError,
    StoreError,
)
from muscle_mem.cli import main
from muscle_mem.store import open_store
from muscle_mem.store.sqlite import SQLiteStore

from .common import figures, new_world, pay, pay_engine, rounds

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file limits")


# -- a full disk ----------------------------------------------------------------------------

FULL_DISK = textwrap.dedent(
    """
    import json, os, resource, sys
    from muscle_mem import Engine, StoreError

    path = sys.argv[1]
    engine = Engine(store=path)

    @engine.function()
    def write(text):
        pass

    engine.set_agent(lambda task, n: write("x" * 4000))
    report = {"committed": [], "errors": []}
    for n in range(5):
        engine(f"task {n}", n)
        report["committed"].append(n)
    folder = os.path.dirname(path)
    largest = max(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    resource.setrlimit(resource.RLIMIT_FSIZE, (largest + 65536, resource.RLIM_INFINITY))
    n = 5
    while len(report["errors"]) < 3 and n < 500:
        try:
            engine(f"task {n}", n)
            report["committed"].append(n)
        except StoreError as error:
            report["errors"].append(str(error))
        except BaseException as error:
            report["errors"].append(f"{type(error).__name__}: {error}")
        n += 1
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    engine(f"task {n}", n)  # the same process goes on once there is room again
    report["committed"].append(n)
    engine.close()
    print(json.dumps(report))
    """
)


def test_a_full_disk_is_a_store_error_and_loses_nothing_committed(tmp_path):
    script = tmp_path / "full.py"
    script.write_text(FULL_DISK)
    path = tmp_path / "store" / "cache.db"
    path.parent.mkdir()
    done = subprocess.run(
        [sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert len(report["errors"]) == 3
    for error in report["errors"]:
        # StoreError, naming the store; never a raw sqlite3 error or an OSError.
        assert error.startswith(f"cannot write to sqlite:///{path}: "), error
        assert "disk" in error, error
    store = SQLiteStore(path)
    try:
        logged = {run.task_key for run in store.runs()}
        assert len(logged) == len(report["committed"])  # every committed run, and no other
        assert store.read(lambda cur: cur.execute("PRAGMA integrity_check").fetchall()) == [("ok",)]
        for info in store.tasks():
            assert len(store.tree(info.task_key)) == 1
    finally:
        store.close()
    figures("full disk", committed_runs=len(report["committed"]), store_errors=3, lost=0)


# -- a file truncated to nothing ------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1])
def test_a_store_truncated_to_nothing_is_reported_and_left_as_it_is(tmp_path, capsys, size):
    path = tmp_path / "cache.db"
    engine = pay_engine(open_store(path), new_world())
    pay(engine, "ann")
    engine.store.close()
    with open(path, "r+b") as f:
        f.truncate(size)
    for opening in (lambda: open_store(path), lambda: open_store(path, read_only=True)):
        with pytest.raises(StoreError, match=rf"is {size} bytes? long: a store truncated"):
            opening()
    assert main(["ls", "--store", str(path)]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "truncated" in err
    assert os.path.getsize(path) == size  # not made a new, empty database


def test_a_store_file_removed_while_open_is_not_silently_made_anew(tmp_path):
    import threading

    path = tmp_path / "cache.db"
    store = open_store(path)
    os.remove(path)
    failed = []
    # A thread opens its own connection: it must not create an empty file in its place.
    thread = threading.Thread(target=lambda: failed.append(_error_of(store.tasks)))
    thread.start()
    thread.join()
    assert "was removed while it was open" in failed[0]
    assert not path.exists()
    store.close()


def _error_of(call):
    try:
        call()
    except StoreError as error:
        return str(error)
    return None


# -- bytes flipped, rows overwritten ----------------------------------------------------------


def _recorded_file(folder):
    """A store with three paths of two task keys, checkpointed into its main file, and
    the calls each recorded path makes (with the payee a param)."""
    path = folder / "recorded.db"
    world = new_world()
    engine = pay_engine(SQLiteStore(path), world)
    pay(engine, "ann")
    world["page"] = "v2"
    pay(engine, "bob", "300")
    world["page"] = "v1"
    engine("other", "ann", "7", params={"payee": "ann"})
    engine.store.close()  # the last connection checkpoints the log into the file
    assert not os.path.exists(f"{path}-wal")
    return path


RECORDED_CALLS = {
    # what a replay of each task may call, in order, for the payee "zed"
    "pay": [[("payee", "zed"), ("amount", "200")], [("payee", "zed"), ("amount", "300")]],
    "other": [[("payee", "zed"), ("amount", "7")]],
}


def _replay_everything(path, page, warned=None):
    """Replay both tasks in mode "replay" (no agent: every call in the log is replay's);
    return what was called, and the errors raised. The IntegrityWarnings (damaged rows,
    left out) go into ``warned``."""
    world = {"page": page, "log": []}
    calls, errors = {}, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IntegrityWarning)
        try:
            store = SQLiteStore(path)
        except StoreError as error:
            return calls, [error]
        engine = pay_engine(store, world, mode=Mode.REPLAY)
        try:
            for task, amount in (("pay", "200"), ("other", "7")):
                world["log"] = []
                try:
                    engine(task, "zed", amount, params={"payee": "zed"})
                except (StoreError, ReplayMissError) as error:
                    errors.append(error)
                calls[task] = list(world["log"])
        finally:
            store.close()
    unexpected = [w for w in caught if not issubclass(w.category, IntegrityWarning)]
    assert not unexpected, [str(w.message) for w in unexpected]
    if warned is not None:
        warned.extend(caught)
    return calls, errors


def _safe(calls):
    """Whether every replay called a prefix of a recorded path, and nothing else."""
    return all(
        any(made == path[: len(made)] for path in RECORDED_CALLS[task])
        for task, made in calls.items()
    )


CORRUPTIONS = rounds(40, 400)


@pytest.mark.parametrize("kind", ["flip", "truncate", "garbage"])
def test_a_corrupted_file_fails_cleanly_and_never_replays_what_was_not_recorded(tmp_path, kind):
    original = _recorded_file(tmp_path)
    good, errors = _replay_everything(original, "v1")
    assert not errors and good["pay"] == RECORDED_CALLS["pay"][0]
    size = os.path.getsize(original)
    chance = random.Random(f"{kind}-{os.environ.get('MUSCLE_MEM_FAULTS_SEED', 16)}")
    outcomes = {"store_errors": 0, "replay_misses": 0, "rows_left_out": 0, "replayed": 0}
    for number in range(CORRUPTIONS):
        path = tmp_path / f"{kind}{number}.db"
        shutil.copyfile(original, path)
        if kind == "flip":
            with open(path, "r+b") as f:
                for _ in range(chance.randint(1, 8)):
                    f.seek(chance.randrange(size))
                    f.write(bytes([chance.randrange(256)]))
        elif kind == "truncate":
            with open(path, "r+b") as f:
                f.truncate(chance.choice([0, 1, 2, 99, 100, 4096, chance.randrange(size)]))
        else:
            # The first round damages the schema version (the damage that refuses the
            # store), so both outcomes are met whatever the seed; the rest pick at random.
            _overwrite_a_value(path, chance, "schema_version" if number == 0 else None)
        warned: list = []
        calls, errors = _replay_everything(path, chance.choice(["v1", "v2"]), warned)
        assert _safe(calls), (number, calls)
        outcomes["store_errors"] += any(isinstance(e, StoreError) for e in errors)
        outcomes["replay_misses"] += any(isinstance(e, ReplayMissError) for e in errors)
        outcomes["rows_left_out"] += bool(warned)
        outcomes["replayed"] += any(calls.values())
        path.unlink()
    # Both kinds were met (a file cut short is never read far enough to replay).
    assert outcomes["store_errors"], outcomes
    assert outcomes["replayed"] or kind == "truncate", outcomes
    figures(f"corruptions[{kind}]", corruptions=CORRUPTIONS, **outcomes, unsafe=0)


_TABLES = {
    "mm_nodes": ["call", "tool", "code", "parent", "hits", "terminal", "last_used", "result"],
    "mm_snapshots": ["data", "digest", "which", "node"],
    "mm_tasks": ["tags", "generation", "created_at"],
    "mm_runs": ["tags", "params", "status", "started_at", "tokens"],
    "mm_meta": ["value"],
}
_GARBAGE = [None, 5, -1, 2.5, "many", "", "[", '{"t":5}', b'{"t":5}', b"5", b"\xff", "x" * 300]


def _overwrite_a_value(path, chance, meta_key=None):
    """Garbage in one value of a random row, or in ``mm_meta``'s ``meta_key``."""
    table = chance.choice(sorted(_TABLES))
    column = chance.choice(_TABLES[table])
    value = chance.choice(_GARBAGE)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        if meta_key is not None:
            connection.execute("UPDATE mm_meta SET value = 'many' WHERE key = ?", (meta_key,))
            return
        # The row is the seed's choice too (not SQLite's random()), so a failure replays.
        (count,) = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
        connection.execute(
            f"UPDATE {table} SET {column} = ? WHERE rowid = "
            f"(SELECT rowid FROM {table} ORDER BY rowid LIMIT 1 OFFSET ?)",
            (value, chance.randrange(max(count, 1))),
        )
    except sqlite3.IntegrityError:
        pass  # NOT NULL: the database itself refuses that damage
    finally:
        connection.close()
