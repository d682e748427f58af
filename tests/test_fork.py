"""A SQLite store carried across fork() (gunicorn --preload, multiprocessing's fork).

A child must not use the connection its parent opened: sqlite.org/howtocorrupt.html §2.6
names that as a way to corrupt the file. The child gets one of its own on first use.
"""

from __future__ import annotations

import os
import traceback
import warnings

import pytest

from muscle_mem.store.sqlite import SQLiteStore

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="this platform has no fork()")


def _connection(store: SQLiteStore) -> object:
    return store._cursor().connection


def _note(store: SQLiteStore, key: str) -> None:
    store.write(lambda cur: cur.execute("INSERT INTO mm_meta VALUES (?, ?)", (key, key)))


def _noted(store: SQLiteStore) -> list[str]:
    def work(cur):
        cur.execute("SELECT key FROM mm_meta WHERE key LIKE 'note %' ORDER BY key")
        return [key for (key,) in cur.fetchall()]

    return store.read(work)


def test_a_forked_child_opens_its_own_connection_and_the_parent_keeps_its(tmp_path):
    store = SQLiteStore(tmp_path / "cache.db")
    _note(store, "note 1 parent, before")
    parents = _connection(store)
    readable, writable = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12 warns when the process has threads (other tests' pools may linger);
        # this store starts none.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report through the pipe, and never return into pytest
        os.close(readable)
        report = "ok"
        try:
            if _connection(store) is parents:
                report = "the child uses its parent's connection"
            else:
                _note(store, "note 2 child")
                store.close()  # its own connection only
        except BaseException:
            report = traceback.format_exc()
        os.write(writable, report.encode())
        os._exit(0)
    os.close(writable)
    with os.fdopen(readable) as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert (report, os.waitstatus_to_exitcode(status)) == ("ok", 0)
    assert _connection(store) is parents
    _note(store, "note 3 parent, after")
    assert _noted(store) == ["note 1 parent, before", "note 2 child", "note 3 parent, after"]
    store.close()
