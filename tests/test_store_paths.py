"""Stores without traps: ``~`` in a store's path, a read-only SQLite file read by the
commands that only read, "permission denied" said plainly, and a bad
``$MUSCLE_MEM_STORE`` named as the variable it came from.

SQLite only (paths and file modes are SQLite's), so these run once. Root ignores file
modes: the tests that need a file this process can't write skip under root, and what
read-only opening means is also checked in a way root can't bypass (SQLite's
``mode=ro`` connection refuses writes, whoever asks).
"""

import os
import sqlite3
import stat
import sys

import pytest

from muscle_mem import Check, ConfigurationError, Engine, StoreError
from muscle_mem.cli import main
from muscle_mem.store import ENV_VAR, open_store

TASK = "fill the form"
as_root = pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0,
    reason="root (or Windows) writes whatever the file modes say",
)


def record(store):
    """One recorded run in ``store`` (a URL or path); the engine closed after."""
    with Engine(store=store) as engine:

        @engine.function(pre_check=Check(lambda name: "#" + name))
        def type_into(name):
            pass

        engine.set_agent(lambda task: type_into("name"))
        assert engine(TASK).status == "miss"
        return engine.task_key(TASK)


def cli(capsys, *args):
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def read_only_store(tmp_path):
    """A recorded store file in a folder, both made read-only; writable again after."""
    folder = tmp_path / "shared"
    path = folder / "cache.db"
    key = record(str(path))
    path.chmod(0o444)
    folder.chmod(0o555)
    yield path, key
    folder.chmod(0o755)
    path.chmod(0o644)


# -- ~ ----------------------------------------------------------------------------------


@pytest.mark.parametrize("store", ["~/cache.db", "sqlite:///~/cache.db"])
def test_a_store_path_starting_with_tilde_is_in_the_home_folder(home, store, capsys):
    key = record(store)
    assert (home / "cache.db").is_file()
    assert not (home / "~").exists()  # not a folder literally named "~"

    code, out, err = cli(capsys, "--store", store, "ls", "--json")
    assert code == 0, err
    assert key in out


def test_tilde_in_muscle_mem_store_is_expanded_too(home, monkeypatch, capsys):
    key = record(str(home / "cache.db"))
    monkeypatch.setenv(ENV_VAR, "~/cache.db")
    code, out, err = cli(capsys, "ls", "--json")
    assert code == 0, err
    assert key in out


# -- read-only files --------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["stats"], ["ls"], ["runs"], ["show", "KEY"], ["export"]],
    ids=["stats", "ls", "runs", "show", "export"],
)
def test_commands_that_only_read_open_the_store_read_only(
    read_only_store, command, capsys, monkeypatch
):
    path, key = read_only_store
    opened = []
    connect = sqlite3.connect

    def spy(database, *args, **kwargs):
        opened.append(str(database))
        return connect(database, *args, **kwargs)

    # Under root the file's mode stops nothing: the connection itself must be read-only.
    monkeypatch.setattr(sqlite3, "connect", spy)
    before = path.read_bytes()
    command = [key if word == "KEY" else word for word in command]

    code, out, err = cli(capsys, "--store", path, *command)

    assert code == 0, err
    assert opened and all("mode=ro" in database for database in opened)
    assert out.strip()  # it read and said something
    assert path.read_bytes() == before


def test_a_read_only_store_refuses_writes_even_from_root(tmp_path):
    path = tmp_path / "cache.db"
    record(str(path))
    store = open_store(str(path), read_only=True)
    try:
        with pytest.raises(StoreError, match="opened read-only"):
            store.write(lambda cur: cur.execute("DELETE FROM mm_runs"))
        # Past our own guard, SQLite itself refuses: the connection is mode=ro.
        with pytest.raises(StoreError, match="readonly database"):
            store.read(lambda cur: cur.execute("DELETE FROM mm_runs"))
        assert len(store.runs()) == 1
    finally:
        store.close()


def test_a_read_only_store_is_never_created(tmp_path):
    with pytest.raises(StoreError, match=r"no store at .*nothing\.db"):
        open_store(str(tmp_path / "nothing.db"), read_only=True)
    assert not (tmp_path / "nothing.db").exists()


@as_root
def test_a_read_only_file_in_a_read_only_folder_is_read_without_writing(read_only_store, capsys):
    path, key = read_only_store
    code, out, err = cli(capsys, "--store", path, "ls", "--json")
    assert code == 0, err
    assert key in out
    assert sorted(p.name for p in path.parent.iterdir()) == ["cache.db"]  # no -wal, -shm


# -- permission denied ------------------------------------------------------------------


@as_root
def test_a_file_that_cannot_be_read_is_permission_denied_in_one_line(tmp_path, capsys):
    path = tmp_path / "cache.db"
    record(str(path))
    path.chmod(0)
    try:
        code, _out, err = cli(capsys, "--store", path, "ls")
    finally:
        path.chmod(0o644)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "permission denied" in err and str(path) in err


@as_root
def test_an_engine_on_a_file_it_cannot_write_says_permission_denied(read_only_store):
    path, _ = read_only_store
    with pytest.raises(StoreError) as raised:
        Engine(store=str(path))
    assert "permission denied" in str(raised.value) and str(path) in str(raised.value)


@as_root
def test_a_folder_that_cannot_be_created_is_permission_denied(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(StoreError) as raised:
            Engine(store=str(locked / "sub" / "cache.db"))
    finally:
        locked.chmod(0o755)
    assert "permission denied" in str(raised.value) and str(locked / "sub") in str(raised.value)


# -- $MUSCLE_MEM_STORE ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [("nonsense", "unknown store"), ("sqlite://", "names no file")],
    ids=["unknown", "no-file"],
)
def test_a_bad_muscle_mem_store_is_named_as_the_variable(value, problem, monkeypatch, capsys):
    monkeypatch.setenv(ENV_VAR, value)
    expected = f"${ENV_VAR}={value!r} is not a store: "

    with pytest.raises(ConfigurationError) as raised:
        Engine()
    assert str(raised.value).startswith(expected) and problem in str(raised.value)

    code, _out, err = cli(capsys, "ls")
    assert code == 2
    assert expected in err and problem in err


def test_a_bad_store_option_is_not_blamed_on_the_variable(monkeypatch, capsys):
    monkeypatch.setenv(ENV_VAR, "sqlite:///fine.db")
    code, _out, err = cli(capsys, "--store", "nonsense", "ls")
    assert code == 2
    assert "unknown store 'nonsense'" in err and ENV_VAR + "=" not in err
