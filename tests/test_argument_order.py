"""Arguments replay as they were passed: a dict's key order survives the codec and every
store, while identities (node ids, snapshots) stay canonical.

Runs on every store kind (see conftest) where a test asks for one.
"""

from __future__ import annotations

import dataclasses

import pytest

from muscle_mem import Check
from muscle_mem.codec import decode, encode, encode_call
from muscle_mem.models import Step, node_id, root_id
from muscle_mem.portable import export_lines, import_into, read_export


def orders(value):
    """Every dict's key order in ``value``, nested ones too, as a comparable value."""
    if isinstance(value, dict):
        return [(k, orders(v)) for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return [orders(v) for v in value]
    if dataclasses.is_dataclass(value):
        return orders(dataclasses.asdict(value))
    return value


@dataclasses.dataclass
class Ticket:
    fields: dict


ARGUMENTS = {
    "str keys": {"status": "Urgent", "priority": 5},
    "int keys": {3: "c", 1: "a", 2: "b"},
    "mixed keys": {"b": 1, 2: "x", "a": 3, (0, 1): None},
    "nested": {"z": {"y": 1, "x": 2}, "a": [{"d": 1, "c": 2}], "m": ({"q": 0, "p": 1},)},
    "in a dataclass": Ticket({"zeta": 1, "alpha": 2}),
    "sorted": {"a": 1, "b": {"c": 2}},
}


def another(engines, store_url, first):
    """A second engine on ``first``'s store, with a read of its own (a memory store is
    one object, so it is shared)."""
    return engines(store=first.store) if store_url == "memory://" else engines()


def recording_tool(engine, seen):
    @engine.function
    def edit(fields, **options):
        seen.append((orders(fields), list(fields) if isinstance(fields, dict) else None))
        seen.append(list(options.items()))

    return edit


@pytest.mark.parametrize("argument", ARGUMENTS.values(), ids=ARGUMENTS.keys())
def test_a_dict_argument_replays_in_the_order_it_was_passed(engines, store_url, argument):
    seen = []
    recorder = engines()
    edit = recording_tool(recorder, seen)
    recorder.set_agent(lambda task: edit(argument, zulu=1, alpha={"y": 1, "x": 2}))
    assert recorder("t").status == "miss"
    assert recorder("t").hit  # from the process's copy of the tree
    replayer = another(engines, store_url, recorder)
    edit = recording_tool(replayer, seen)
    replayer.set_agent(lambda task: None)
    assert replayer("t").hit
    passed = [
        (orders(argument), list(argument) if isinstance(argument, dict) else None),
        [("zulu", 1), ("alpha", {"y": 1, "x": 2})],
    ]
    assert seen == passed * 3


def test_a_tool_iterating_its_dict_sees_the_recorded_order(engine):
    rows = []

    @engine.function
    def edit(fields):
        rows.append(list(fields.items()))

    engine.set_agent(lambda task: edit({"status": "Urgent", "priority": 5}))
    engine("t")
    assert engine("t").hit
    assert rows == [[("status", "Urgent"), ("priority", 5)]] * 2


def test_calls_differing_only_in_key_order_are_one_step(engines, store_url):
    env = {"page": "one"}
    orders_passed = {"one": {"a": 1, "b": 2}, "two": {"b": 2, "a": 1}}
    seen = []
    engine = engines()

    check = Check(lambda fields: env["page"])

    @engine.function(pre_check=check)
    def edit(fields):
        seen.append(list(fields))

    engine.set_agent(lambda task: edit(orders_passed[env["page"]]))
    engine("t")
    env["page"] = "two"
    assert engine("t").status == "miss"  # the pre-check failed: recorded again, in order b, a
    key = engine.task_key("t")
    assert len(engine.store.tree(key)) == 1  # one node, now with two snapshots
    fresh = another(engines, store_url, engine)
    fresh.function(pre_check=check)(edit.__wrapped__)
    fresh.set_agent(lambda task: None)
    assert len(fresh.store.tree(key)) == 1
    assert fresh("t").hit and engine("t").hit
    assert seen[-1] in (["a", "b"], ["b", "a"])  # an order that was recorded


def test_a_pre_check_capture_matches_whatever_order_its_dicts_were_built_in(engine):
    env = {"fields": {"b": 1, "a": 2}}

    @engine.function(pre_check=Check(lambda: dict(env["fields"])))
    def submit():
        pass

    engine.set_agent(lambda task: submit())
    engine("t")
    env["fields"] = {"a": 2, "b": 1}  # the same page, its keys read in another order
    assert engine("t").hit


def test_export_and_import_keep_the_order_and_the_node_ids(engines, stores):
    seen = []
    source = engines()
    edit = recording_tool(source, seen)
    source.set_agent(lambda task: edit({"z": 1, "a": 2}))
    source("t")
    target = stores.fresh()
    imported = read_export(export_lines(source.store))
    assert import_into(target, imported) == (1, 0)  # its node id checked out on the way in
    target_engine = engines(store=target)
    edit = recording_tool(target_engine, seen)
    target_engine.set_agent(lambda task: None)
    assert target_engine("t").hit
    assert [s[1] for s in seen[::2]] == [["z", "a"], ["z", "a"]]


# -- the codec --------------------------------------------------------------------------


@pytest.mark.parametrize("argument", ARGUMENTS.values(), ids=ARGUMENTS.keys())
def test_a_calls_identity_is_its_canonical_encoding(argument):
    """What stores already hold (canonical bytes) keeps its node ids, and decodes."""
    call = ((argument,), {"alpha": 2, "zulu": 1})
    data = encode_call(call)
    canonical = encode(call)
    assert data.partition(b"\0")[0] == canonical
    assert (b"\0" in data) is (argument is not ARGUMENTS["sorted"])
    assert orders(decode(data)) == orders(call)
    assert decode(canonical) == call  # old rows: sorted, but equal
    step, old = Step("edit", "c", data), Step("edit", "c", canonical)
    assert node_id(root_id("k"), step) == node_id(root_id("k"), old)


def test_a_call_whose_dicts_are_in_canonical_order_is_stored_as_before():
    call = ((1, {"a": [{"b": 1, "c": 2}]}, {1: "x", 2: "y"}), {"a": 1, "b": 2})
    assert encode_call(call) == encode(call)
    assert encode_call(((), {"b": 2, "a": 1})) != encode(((), {"b": 2, "a": 1}))  # kwargs too
