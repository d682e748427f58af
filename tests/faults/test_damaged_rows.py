"""Rows a store never wrote: whatever a disk, a tool or a person leaves in its tables,
nothing unrecorded is replayed, and no TypeError, ValueError or JSONDecodeError escapes
from deep inside, in the library or the command line.

A damaged row is left out with one DamagedRowWarning naming its table and row; where
nothing sensible can be read (the schema version), the store is refused with a
StoreError naming it. PostgreSQL's column types refuse most damage, so the type cases
run on SQLite; content damage (bytes that are not what their id hashes, encodings that
are not ones) runs on both.
"""

from __future__ import annotations

import base64
import json
import re
import warnings

import pytest

from conftest import kinds
from muscle_mem import DamagedRowWarning, Mode, StoreError
from muscle_mem.cli import main
from muscle_mem.codec import encode
from muscle_mem.models import Step, node_id
from muscle_mem.portable import export_lines
from muscle_mem.store.sql import _digest

from .common import before_schema_6, new_world, pay, pay_engine, read, write

persistent = kinds("sqlite", "postgres")


def recorded(stores, url):
    """A store holding one recorded payment, its engine's world, and the task key."""
    world = new_world()
    engine = pay_engine(stores.open(url), world)
    assert pay(engine, "ann").status == "miss"
    return world, engine.task_key("pay", "ann", "200", params={"payee": "ann"})


def nodes(store):
    return read(store, "SELECT id, parent, tool, code, call FROM mm_nodes ORDER BY created_at")


def one_warning(caught, *patterns):
    damaged = [w for w in caught if issubclass(w.category, DamagedRowWarning)]
    assert len(damaged) == 1, [str(w.message) for w in caught]
    message = str(damaged[0].message)
    for pattern in patterns:
        assert re.search(pattern, message), message
    return message


def fresh_run(stores, url, world, payee="bob"):
    """A run of a new engine (so it reads the rows), its warnings caught."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = pay(pay_engine(stores.open(url), world), payee)
    return outcome, caught


@persistent
def test_a_flipped_byte_in_a_call_is_left_out_and_then_recorded_again(store_url, stores):
    world, _ = recorded(stores, store_url)
    store = stores.open(store_url)
    first = nodes(store)[0]
    write(store, "UPDATE mm_nodes SET call = ? WHERE id = ?", (_flip(first[4]), first[0]))
    outcome, caught = fresh_run(stores, store_url, world)
    one_warning(caught, rf"mm_nodes row {first[0]}: its content does not match its id")
    assert outcome.status == "miss"  # nothing replayed: the agent did the payment
    assert world["log"][-2:] == [("payee", "bob"), ("amount", "200")]
    # The agent's recording has the row's id, so it put the right content back.
    again, caught = fresh_run(stores, store_url, world, "cy")
    assert again.hit and not caught


@persistent
def test_a_flipped_digit_deeper_in_a_path_is_never_replayed(store_url, stores):
    world, _ = recorded(stores, store_url)
    store = stores.open(store_url)
    second = nodes(store)[1]
    assert b'"200"' in second[4]
    flipped = second[4].replace(b'"200"', b'"300"')
    write(store, "UPDATE mm_nodes SET call = ? WHERE id = ?", (flipped, second[0]))
    _, caught = fresh_run(stores, store_url, world)
    one_warning(caught, rf"mm_nodes row {second[0]}")
    assert ("amount", "300") not in world["log"]


def _flip(call: bytes) -> bytes:
    assert b'"payee"' in call
    return call.replace(b'"payee"', b'"payez"', 1)


def _crafted_node(store, call: bytes) -> str:
    """Give the first node ``call`` and the id that content hashes to, as someone who
    knows the scheme would: the id check passes, the content is still not a call."""
    nid, parent, tool, code, _ = nodes(store)[0]
    crafted = node_id(parent, Step(tool, code, call))
    write(store, "UPDATE mm_nodes SET id = ?, call = ? WHERE id = ?", (crafted, call, nid))
    return crafted


@persistent
@pytest.mark.parametrize("call", [b"5", b"[1,2,3]", encode(((1,), {"k": "v"}))[:-3] + b"}"])
def test_a_call_whose_id_matches_but_that_is_not_a_call_is_left_out(store_url, stores, call):
    world, _ = recorded(stores, store_url)
    crafted = _crafted_node(stores.open(store_url), call)
    outcome, caught = fresh_run(stores, store_url, world)
    one_warning(caught, rf"mm_nodes row {crafted}: call: ")
    assert outcome.status == "miss"


@persistent
@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b'{"t":5}', "a list was expected"),
        (b'{"dt":"nope"}', "Invalid isoformat"),
        (b'{"zz":1}', "not a muscle-mem encoding"),
        (b"\xff\xfe", "malformed"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
    ids=["tuple-of-5", "bad-datetime", "unknown-tag", "not-utf8", "deep"],
)
def test_a_snapshot_that_is_not_an_encoding_is_left_out(store_url, stores, data, why):
    """Such a snapshot is found when it is first decoded (a compare) or listed (an
    export); an equality check never decodes, and can't match bytes no capture makes."""

    def same(now, then):
        return now == then

    world = new_world()
    assert pay(pay_engine(stores.open(store_url), world, same), "ann").status == "miss"
    store = stores.open(store_url)
    first = nodes(store)[0][0]
    write(
        store,
        "UPDATE mm_snapshots SET data = ?, digest = ? WHERE node = ?",
        (data, _digest(data), first),
    )
    warning = rf"mm_snapshots row \({first}, pre\): data: .*{why}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = pay(pay_engine(stores.open(store_url), world, same), "bob")
    one_warning(caught, warning)
    assert outcome.status == "miss"  # no environment left to match at the first step
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exported = list(export_lines(stores.open(store_url)))
    one_warning(caught, warning)
    stored = [json.loads(line)["data"] for line in exported if '"snapshot"' in line]
    assert stored and base64.b64encode(data).decode() not in stored


@persistent
def test_a_snapshot_whose_data_does_not_match_its_digest_is_left_out(store_url, stores):
    world, _ = recorded(stores, store_url)
    store = stores.open(store_url)
    first = nodes(store)[0][0]
    write(store, "UPDATE mm_snapshots SET data = ? WHERE node = ?", (encode("v2"), first))
    world["page"] = "v2"  # what the altered row now says: it must not match
    outcome, caught = fresh_run(stores, store_url, world)
    one_warning(caught, "does not match its digest")
    assert outcome.status == "miss"


@persistent
def test_a_snapshot_of_an_unknown_slot_is_left_out(store_url, stores):
    world, _ = recorded(stores, store_url)
    store = stores.open(store_url)
    write(store, "UPDATE mm_snapshots SET which = 'sideways'")
    _, caught = fresh_run(stores, store_url, world)
    one_warning(caught, "which is 'sideways', not one of end, post, pre")


@persistent
def test_a_result_that_is_not_an_encoding_is_left_out_with_its_node(store_url, stores):
    world, _ = recorded(stores, store_url)
    store = stores.open(store_url)
    write(store, "UPDATE mm_nodes SET result = ? WHERE result IS NOT NULL", (b'{"t":5}',))
    outcome, caught = fresh_run(stores, store_url, world)
    one_warning(caught, "result: not a muscle-mem encoding")
    # The agent's result, or none; never one read from the damaged row. (Whether a run
    # that replays up to an end that is gone is a hit is replay's to say.)
    assert outcome.result in ("paid 200 to bob", None)


@persistent
@pytest.mark.parametrize("flipped", [b"paid 200 to ", b"paid 900 to "], ids=["same", "flipped"])
def test_a_result_changed_into_another_value_is_never_returned(store_url, stores, flipped):
    """A result is not part of its node's id: its end digest catches a change that
    leaves a value which still decodes, with no secret."""
    world, _ = recorded(stores, store_url)
    store = stores.open(store_url)
    [(end, result)] = read(store, "SELECT id, result FROM mm_nodes WHERE terminal = 1")
    write(
        store,
        "UPDATE mm_nodes SET result = ? WHERE id = ?",
        (result.replace(b"paid 200 to ", flipped), end),
    )
    outcome, caught = fresh_run(stores, store_url, world)
    if flipped == b"paid 200 to ":  # the row as it was: the control
        assert outcome.hit and outcome.result == "paid 200 to bob" and not caught
        return
    one_warning(caught, rf"mm_nodes row {end}: it is an end whose result .* its digest")
    # Not a hit returning what nobody recorded: with the end gone no path is whole, so
    # nothing is replayed, the reason says why, and the agent records the path again.
    assert outcome.status == "miss" and "rows may be missing" in outcome.reason
    assert outcome.result == "paid 200 to bob"
    again, caught = fresh_run(stores, store_url, world, "cy")
    assert again.hit and again.result == "paid 200 to cy" and not caught


@persistent
def test_a_step_turned_into_an_end_is_never_a_hit(store_url, stores):
    world, _ = recorded(stores, store_url)
    store = stores.open(store_url)
    first = nodes(store)[0][0]
    write(store, "UPDATE mm_nodes SET terminal = 1 WHERE id = ?", (first,))
    outcome, caught = fresh_run(stores, store_url, world)
    one_warning(caught, rf"mm_nodes row {first}: it is an end whose result .* its digest")
    assert outcome.status == "miss"  # nothing replayed, nothing returned from a half path
    assert world["log"][-2:] == [("payee", "bob"), ("amount", "200")]


@persistent
def test_the_ends_of_a_store_from_before_end_digests_still_replay(store_url, stores):
    world, _ = recorded(stores, store_url)
    stores.open(store_url).write(before_schema_6)
    # This version upgrades the store and gives its ends their digests: they replay and
    # return what they recorded, and no row is taken for damaged.
    outcome, caught = fresh_run(stores, store_url, world)
    assert outcome.hit and outcome.result == "paid 200 to bob" and not caught
    store = stores.open(store_url)
    assert read(
        store, "SELECT count(*) FROM mm_nodes WHERE terminal = 1 AND end_digest IS NULL"
    ) == [(0,)]
    # The run log it held is kept, the first line without a uid.
    assert [run.status for run in store.runs()] == ["miss", "hit"]


@persistent
def test_a_damaged_param_entry_at_an_end_is_left_out(store_url, stores):
    """The values of params no call was passed are kept at the end as digests (the
    "end" slot); a damaged entry is left out, and a run with those values is a miss."""
    world = new_world()
    engine = pay_engine(stores.open(store_url), world)

    def pay_noted(engine, payee):
        return engine("pay", payee, "200", params={"payee": payee, "note": "n1"})

    assert pay_noted(engine, "ann").status == "miss"
    assert pay_noted(engine, "bob").hit  # the control
    store = stores.open(store_url)
    [(end, data)] = read(store, "SELECT node, data FROM mm_snapshots WHERE which = 'end'")
    write(
        store, "UPDATE mm_snapshots SET data = ? WHERE which = 'end'", (data.replace(b"5", b"6"),)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exported = list(export_lines(stores.open(store_url)))
    one_warning(caught, rf"mm_snapshots row \({end}, end\): its data does not match its digest")
    assert base64.b64encode(data.replace(b"5", b"6")).decode() not in "".join(exported)
    # A run looks entries up by what its values encode to, so it never finds the damaged
    # one: with no entry for its values, the recorded path is not its.
    outcome = pay_noted(pay_engine(stores.open(store_url), world), "cy")
    assert outcome.status == "miss" and "note" in outcome.reason


# -- damage of the column types (SQLite keeps whatever is written) ----------------------------


@kinds("sqlite")
@pytest.mark.parametrize(
    ("column", "value", "why"),
    [
        ("call", "CAST(call AS TEXT)", "call is str .*, not a blob"),
        ("hits", "'many'", "hits is str 'many', not a count"),
        ("failures", "-1", "failures is int -1, not a count"),
        ("terminal", "'yes'", "terminal is str 'yes', not a count"),
        ("terminal", "7", "terminal is 7, not 0 or 1"),
        ("last_used", "'yesterday'", "last_used is str 'yesterday', not a number"),
        ("tool", "x'00'", "tool is bytes .*, not text"),
        ("tool", "CAST(x'ff' AS TEXT)", "tool is bytes .*, not text"),  # not UTF-8
        ("sig", "'forged'", "sig is str 'forged', not a blob"),
        ("result", "'paid'", "result is str 'paid', not a blob"),
    ],
)
def test_a_node_column_of_the_wrong_type_leaves_the_row_out(store_url, stores, column, value, why):
    world, _ = recorded(stores, store_url)
    store = stores.open(store_url)
    first = nodes(store)[0][0]
    where = "result IS NOT NULL" if column == "result" else f"id = '{first}'"
    write(store, f"UPDATE mm_nodes SET {column} = {value} WHERE {where}")
    _, caught = fresh_run(stores, store_url, world)
    one_warning(caught, rf"mm_nodes row \w+: {why}")
    assert set(world["log"]) <= {("payee", "ann"), ("payee", "bob"), ("amount", "200")}


@kinds("sqlite")
@pytest.mark.parametrize(
    ("column", "value", "why"),
    [
        ("data", "CAST(data AS TEXT)", "data is str .*, not a blob"),
        ("digest", "'d'", "digest is str 'd', not a blob"),
        ("sig", "42", "sig is int 42, not a blob"),
    ],
)
def test_a_snapshot_column_of_the_wrong_type_leaves_the_row_out(
    store_url, stores, column, value, why
):
    world, _ = recorded(stores, store_url)
    write(stores.open(store_url), f"UPDATE mm_snapshots SET {column} = {value}")
    _, caught = fresh_run(stores, store_url, world)
    one_warning(caught, rf"mm_snapshots row \(\w+, pre\): {why}")


@kinds("sqlite")
def test_an_id_that_is_not_utf8_is_left_out_and_removed(store_url, stores):
    """Text that is not UTF-8 fails a whole read in sqlite3: the read is made again with
    such values as their bytes, which the checks leave out, in a read and in a write."""
    world, key = recorded(stores, store_url)
    store = stores.open(store_url)
    first = nodes(store)[0][0]
    write(store, "UPDATE mm_nodes SET id = CAST(x'ff' AS TEXT) || id WHERE id = ?", (first,))
    outcome, caught = fresh_run(stores, store_url, world)
    one_warning(caught, r"mm_nodes row b'\\xff.*: id is bytes")
    assert outcome.status == "miss"
    assert store.remove(key) == 3  # the path (recorded again) and the damaged row
    assert read(store, "SELECT count(*) FROM mm_nodes") == [(0,)]


@kinds("sqlite")
def test_a_generation_that_is_not_a_number_is_read_past_and_repaired(store_url, stores):
    world, key = recorded(stores, store_url)
    store = stores.open(store_url)
    write(store, "UPDATE mm_tasks SET generation = 'many'")
    outcome, caught = fresh_run(stores, store_url, world)
    one_warning(caught, f"mm_tasks row {key}: generation is str 'many', not a whole number")
    assert outcome.hit  # the rows themselves are whole
    # A hit writes only its bookkeeping (issue #17): the next run that records repairs it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedRowWarning)  # said once, above
        recorder = pay_engine(stores.open(store_url), world)
        recorder.mode = Mode.RECORD
        assert pay(recorder, "cy").status == "miss"
    assert read(store, "SELECT typeof(generation) FROM mm_tasks") == [("integer",)]


@persistent
def test_damaged_task_and_run_rows_are_named_and_the_rest_listed(store_url, stores):
    world, key = recorded(stores, store_url)
    pay(pay_engine(stores.open(store_url), world), "bob")
    store = stores.open(store_url)
    write(store, "UPDATE mm_tasks SET tags = '[oops'")
    write(store, "UPDATE mm_runs SET params = 'nope' WHERE id = (SELECT MIN(id) FROM mm_runs)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tasks = store.tasks()
    one_warning(caught, f"mm_tasks row {key}: tags is not JSON")
    assert [(t.task_key, t.tags, t.nodes) for t in tasks] == [(key, (), 2)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = store.runs()
    one_warning(caught, r"mm_runs row \d+: params is not JSON")
    assert [run.status for run in runs] == ["hit"]


@kinds("sqlite")
@pytest.mark.parametrize(
    ("column", "value", "why"),
    [
        ("status", "'bogus'", "status is 'bogus', not a run status"),
        ("tags", "'[1, 2]'", "tags is not a JSON list of strings"),
        ("started_at", "'yesterday'", "started_at is str 'yesterday', not a number"),
        ("tokens", "1.5", "tokens is float 1.5, not a count"),
        ("about", "x'01'", "about is bytes .*, not text"),
        ("reason", "CAST(x'ff' AS TEXT)", "reason is bytes .*, not text"),  # not UTF-8
    ],
)
def test_a_run_row_of_the_wrong_type_is_left_out(store_url, stores, column, value, why):
    recorded(stores, store_url)
    store = stores.open(store_url)
    write(store, f"UPDATE mm_runs SET {column} = {value}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert store.runs() == []
    one_warning(caught, rf"mm_runs row 1: {why}")


@kinds("sqlite")
@pytest.mark.parametrize("value", ["'three'", "NULL", "'3.0'", "x'33'"])
def test_a_schema_version_that_is_not_a_number_refuses_the_store(store_url, stores, value):
    store = stores.open(store_url)
    write(store, f"UPDATE mm_meta SET value = {value} WHERE key = 'schema_version'")
    store.close()
    with pytest.raises(StoreError, match=rf"{re.escape(store_url)} is damaged: .*schema_version"):
        stores.open(store_url)


# -- the command line -----------------------------------------------------------------------


@kinds("sqlite")
def test_the_command_line_names_damaged_rows_and_never_shows_a_traceback(store_url, stores, capsys):
    _, key = recorded(stores, store_url)
    store = stores.open(store_url)
    write(store, "UPDATE mm_nodes SET hits = 'many'")
    write(store, "UPDATE mm_tasks SET tags = '{'")
    write(store, "UPDATE mm_runs SET status = 'bogus'")
    for command in (
        ["ls"],
        ["show", key[6:14]],
        ["runs"],
        ["stats"],
        ["export"],
        ["prune", "--failing", "--dry-run"],
    ):
        code = main(["--store", store_url, *command])
        out, err = capsys.readouterr()
        assert code == 1, (command, out, err)
        assert "Traceback" not in err and "Error" not in err, err
        assert re.search(r"damaged row\(s\) .* were ignored \(mm_", err), (command, err)
    write(store, "UPDATE mm_meta SET value = 'x' WHERE key = 'schema_version'")
    assert main(["--store", store_url, "ls"]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "is damaged" in err, err


@kinds("sqlite")
def test_export_leaves_damaged_rows_out(store_url, stores, capsys):
    recorded(stores, store_url)
    store = stores.open(store_url)
    second = nodes(store)[1][0]
    write(store, "UPDATE mm_nodes SET call = ? WHERE id = ?", (b"5", second))
    assert main(["--store", store_url, "export"]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert second not in {line.get("node") for line in lines}
