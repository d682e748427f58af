"""What a hit gives back: the result recorded with the path, with the run's params filled
in, and the calls it replayed (``Outcome.steps``), each with its arguments by name.

Runs on every store kind (see conftest).
"""

from __future__ import annotations

import base64
import json
import warnings

import pytest

import muscle_mem
from conftest import kinds
from faults.common import before_schema_6
from muscle_mem import Check, Engine, IntegrityWarning, MuscleMemWarning
from muscle_mem.codec import encode
from muscle_mem.portable import export_lines, import_into, read_export
from muscle_mem.store.sql import SQLStore

persistent = kinds("sqlite", "postgres")


def test_a_hit_lists_the_calls_it_replayed_with_arguments_by_name(engine):
    class Form:
        @engine.method()
        def type_into(self, field, text, delay=0.0):
            return f"typed {text}"

    form = Form()

    @engine.function()
    def submit(form_id, *extra, confirm=False, **headers):
        return {"submitted": form_id}

    def agent(task, name):
        form.type_into("name", name)
        submit("signup", "x", confirm=True, trace="t1")

    engine.set_agent(agent).set_context(form).finalize()
    miss = engine("sign up", "John", params={"name": "John"})
    assert miss.status == "miss" and miss.steps == ()
    hit = engine("sign up", "Ann", params={"name": "Ann"})
    assert hit.hit
    typed, submitted = hit.steps
    assert typed.tool.endswith("Form.type_into")
    assert typed.arguments == {"field": "name", "text": "Ann", "delay": 0.0}  # no self
    assert (typed.args, typed.kwargs, typed.result) == (("name", "Ann"), {}, "typed Ann")
    assert submitted.arguments == {
        "form_id": "signup",
        "extra": ("x",),
        "confirm": True,
        "trace": "t1",
    }
    assert submitted.result == {"submitted": "signup"}


def test_a_handoff_lists_the_calls_replayed_before_it_with_arguments_by_name(engine, world):
    handoffs = []

    @engine.function(pre_check=Check(lambda field, value: "same"))
    def fill(field, value):
        return value.upper()

    @engine.function(pre_check=Check(lambda: world.state["page"]))
    def send():
        return "sent"

    def agent(task, name):
        handoffs.append(muscle_mem.handoff())
        if handoffs[-1] is None:
            fill("name", name)
        send()

    engine.set_agent(agent)
    engine("t", "John", params={"name": "John"})
    world.state["page"] = "v2"
    outcome = engine("t", "Ann", params={"name": "Ann"})
    assert outcome.status == "handoff"
    [step] = outcome.steps
    assert step.arguments == {"field": "name", "value": "Ann"} and step.result == "ANN"
    assert handoffs[-1].steps == outcome.steps


# -- the result a hit returns ------------------------------------------------------------


def signup_engine(store, *, returns=None, **options):
    """An engine whose agent types a name and returns ``returns(name)`` (by default
    ``f"signed up {name}"``); ``typed`` lists what the tool typed, replays included."""
    engine = Engine(store=store, **options)
    typed = []

    @engine.function()
    def type_name(name):
        typed.append(name)

    def agent(task, name):
        type_name(name)
        return returns(name) if returns else f"signed up {name}"

    engine.set_agent(agent)
    engine.typed = typed
    return engine


def sign_up(engine, name):
    return engine("sign up", name, params={"name": name})


def test_a_hit_returns_the_recorded_result_with_its_params_filled_in(stores):
    store = stores.fresh()
    engine = signup_engine(store, returns=lambda name: {"message": f"signed up {name}", "id": 7})
    assert sign_up(engine, "John").result == {"message": "signed up John", "id": 7}
    hit = sign_up(engine, "Ann")
    assert hit.hit and hit.result == {"message": "signed up Ann", "id": 7}
    hit.result["id"] = 8  # the caller's copy: the cache keeps what was recorded
    assert sign_up(engine, "Bo").result == {"message": "signed up Bo", "id": 7}
    assert engine.typed == ["John", "Ann", "Bo"]


def test_a_hit_returns_a_dict_result_in_the_order_the_agent_built_it(stores):
    engine = signup_engine(stores.fresh(), returns=lambda name: {"z": name, "a": 1, 3: "x"})
    sign_up(engine, "John")
    hit = sign_up(engine, "Ann")
    assert hit.hit and list(hit.result.items()) == [("z", "Ann"), ("a", 1), (3, "x")]


@persistent
def test_a_new_process_returns_the_result_the_path_recorded(store_url, stores):
    sign_up(signup_engine(stores.open(store_url)), "John")
    hit = sign_up(signup_engine(stores.open(store_url)), "Ann")
    assert hit.hit and hit.result == "signed up Ann"


def test_the_latest_recording_that_ends_at_a_node_gives_its_result(stores):
    store = stores.fresh()
    sign_up(signup_engine(store), "John")
    again = signup_engine(store, returns=lambda name: f"welcome {name}")
    key = again.task_key("sign up", "x", params={"name": "x"})
    store.remove(key)  # the path is recorded again, ending at the same node
    sign_up(again, "John")
    assert sign_up(signup_engine(store), "Ann").result == "welcome Ann"


def test_a_result_that_is_not_data_keeps_the_path_and_returns_none(stores):
    engine = signup_engine(stores.fresh(), returns=lambda name: object())
    with pytest.warns(MuscleMemWarning, match="returned a object, which cannot be stored"):
        miss = sign_up(engine, "John")
    assert miss.status == "miss" and type(miss.result) is object  # the agent's own result
    hit = sign_up(engine, "Ann")
    assert hit.hit and hit.result is None and hit.replayed == 1


def test_a_path_recorded_without_a_result_returns_none(engine):
    # An agent that returns nothing records None, returned as None.
    @engine.function()
    def step():
        pass

    engine.set_agent(lambda task: step())
    engine("t")
    hit = engine("t")
    assert hit.hit and hit.result is None


@persistent
def test_a_version_2_store_is_migrated_and_its_old_ends_return_none(store_url, stores):
    store = stores.open(store_url)
    sign_up(signup_engine(store), "John")
    assert isinstance(store, SQLStore)

    def downgrade(cur):  # a store written by a muscle-mem that kept no results (schema 2)
        before_schema_6(cur)
        cur.execute("ALTER TABLE mm_nodes DROP COLUMN result")
        cur.execute("ALTER TABLE mm_nodes DROP COLUMN result_sig")
        cur.execute("ALTER TABLE mm_tasks DROP COLUMN text")  # and schema 5's columns
        cur.execute("ALTER TABLE mm_nodes DROP COLUMN approved")
        cur.execute("ALTER TABLE mm_nodes DROP COLUMN approved_sig")
        cur.execute("UPDATE mm_meta SET value = '2' WHERE key = 'schema_version'")

    store._write(downgrade)
    migrated = stores.open(store_url)
    engine = signup_engine(migrated)
    hit = sign_up(engine, "Ann")
    assert hit.hit and hit.result is None  # recorded before results were kept
    engine.store.remove(engine.task_key("sign up", "x", params={"name": "x"}))
    sign_up(engine, "Bo")  # recorded again, now with its result
    assert sign_up(signup_engine(stores.open(store_url)), "Cy").result == "signed up Cy"


def test_export_and_import_keep_results(stores):
    source = stores.fresh()
    sign_up(signup_engine(source, returns=lambda name: ("ok", name)), "John")
    lines = list(export_lines(source))
    target = stores.fresh()
    import_into(target, read_export(lines))
    hit = sign_up(signup_engine(target), "Ann")
    assert hit.hit and hit.result == ("ok", "Ann")


def test_a_signed_export_refuses_a_node_whose_result_was_altered(stores):
    source = stores.fresh()
    sign_up(signup_engine(source), "John")
    lines = list(export_lines(source, secret="s3cret"))
    forged = [
        line.replace(
            json.loads(line)["result"],
            base64.b64encode(encode("wire the money")).decode(),
        )
        if '"node"' in line
        else line
        for line in lines
    ]
    assert read_export(lines, secret="s3cret").rejected == 0
    imported = read_export(forged, secret="s3cret")
    assert (imported.nodes, imported.rejected) == (0, 1)


@persistent
def test_a_signed_store_refuses_a_tampered_result_then_records_it_again(store_url, stores):
    sign_up(signup_engine(stores.open(store_url), secret="s3cret"), "John")
    forged = encode("wire the money")
    stores.open(store_url)._write(
        lambda cur: cur.execute("UPDATE mm_nodes SET result = ?", (forged,))
    )
    engine = signup_engine(stores.open(store_url), secret="s3cret")
    with pytest.warns(IntegrityWarning, match="failed signature verification"):
        outcome = sign_up(engine, "Ann")
    assert outcome.status == "miss" and outcome.result == "signed up Ann"  # the agent ran
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # recorded again, with a good signature
        hit = sign_up(signup_engine(stores.open(store_url), secret="s3cret"), "Bo")
    assert hit.hit and hit.result == "signed up Bo"
