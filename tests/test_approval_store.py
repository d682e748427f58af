"""What a store keeps for review: each task key's own words, and which paths a person
approved (schema 5), on every store kind."""

from __future__ import annotations

import pytest

from conftest import kinds
from faults.common import before_schema_6
from muscle_mem import Check, ConfigurationError, Engine
from muscle_mem.errors import StoreError
from muscle_mem.keys import task_text
from muscle_mem.store.sql import SQLStore

persistent = kinds("sqlite", "postgres")


def signup_engine(store, world, **options):
    """An engine whose agent fills the name field, then one field more when the page has
    one: two pages, two paths of the one task key."""
    engine = Engine(store=store, **options)

    @engine.function(pre_check=Check(lambda field, value: world["page"]))
    def fill(field, value):
        world.setdefault("filled", []).append((field, value))

    def agent(task):
        name = task.rsplit(" ", 1)[1]
        fill("name", name)
        if world["page"] == "v2":
            fill("greeting", f"Hello {name}!")
        return f"signed up {name}"

    engine.set_agent(agent)
    return engine


def sign_up(engine, name, **options):
    return engine(
        f"fill the signup form for {name}", params={"name": name}, tags=["signup"], **options
    )


def key_of(engine):
    return engine.task_key("fill the signup form for x", params={"name": "x"}, tags=["signup"])


def ends(store, key):
    return {node.id: node.approved for node in store.tree(key) if node.terminal}


def test_a_recorded_run_keeps_the_tasks_own_words(stores):
    store = stores.fresh()
    engine = signup_engine(store, {"page": "v1"})
    sign_up(engine, "John")
    [info] = store.tasks()
    assert (info.text, info.tags, info.paths, info.approved) == (
        "fill the signup form for {name}",
        ("signup",),
        1,
        0,
    )


def test_the_task_text_reads_as_the_key_templates_it():
    assert task_text({"name": "John"}, ("fill the form for John",), {}) == (
        "fill the form for {name}"
    )
    assert task_text({"n": 2}, ("add 2",), {}) == "add {n}"
    assert task_text({"q": "all of it"}, ("all of it",), {}) == "{q}"
    assert task_text({}, (), {"task": "audit", "depth": 3}) == "audit"
    assert task_text({}, (3,), {"task": "audit"}) == ""  # no words to keep
    assert task_text({}, ("a\0b\ud800",), {}) == "a\ufffdb?"  # what no store can hold
    assert len(task_text({}, ("x" * 5000,), {})) == 2000


def test_only_the_task_words_are_kept_never_the_agents_other_arguments(stores):
    store = stores.fresh()
    engine = Engine(store=store)

    @engine.function
    def log_in(user, password):
        pass

    engine.set_agent(lambda task, password: log_in("ann", password))
    engine("log in", "hunter2")
    assert store.tasks()[0].text == "log in"


def test_paths_start_unapproved_and_approve_marks_them(stores):
    store = stores.fresh()
    world = {"page": "v1"}
    engine = signup_engine(store, world)
    sign_up(engine, "John")
    world["page"] = "v2"
    sign_up(engine, "Ann")
    key = key_of(engine)
    assert list(ends(store, key).values()) == [False, False]
    ids_before = set(store.tree(key).nodes)

    first, second = ends(store, key)
    assert store.approve(key, [first]) == 1
    assert store.approve(key, [first]) == 0  # already: nothing changes
    assert ends(store, key) == {first: True, second: False}
    assert store.tasks()[0].approved == 1
    assert store.approve(key) == 1  # every end; only the second changes
    assert store.approve(key, [first], approved=False) == 1
    assert ends(store, key) == {first: False, second: True}
    assert set(store.tree(key).nodes) == ids_before  # approval changes no node's id


def test_only_a_recorded_end_can_be_approved(stores):
    store = stores.fresh()
    world = {"page": "v2"}
    engine = signup_engine(store, world)
    sign_up(engine, "John")
    key = key_of(engine)
    middle = next(n.id for n in store.tree(key) if n.step is not None and not n.terminal)
    with pytest.raises(ConfigurationError, match=f"{middle!r} is not a recorded end"):
        store.approve(key, [middle])
    with pytest.raises(ConfigurationError, match="'nope' is not a recorded end"):
        store.approve(key, ["nope"])
    with pytest.raises(ConfigurationError, match="collection of node ids"):
        store.approve(key, middle)
    assert not any(ends(store, key).values())  # a refused call changes nothing
    assert store.approve("task1:none") == 0  # a key with nothing recorded has no ends


def test_recording_an_approved_path_again_keeps_it_approved(stores):
    store = stores.fresh()
    world = {"page": "v1"}
    engine = signup_engine(store, world)
    sign_up(engine, "John")
    key = key_of(engine)
    store.approve(key)
    sign_up(engine, "Ann", mode="record")  # the same path, recorded again
    world["page"] = "v2"
    sign_up(engine, "Bo")  # a new path beside it starts unapproved
    assert sorted(ends(store, key).values()) == [False, True]


@persistent
def test_approval_and_text_persist_and_other_processes_see_them(store_url, stores):
    writer = stores.open(store_url)
    engine = signup_engine(writer, {"page": "v1"})
    sign_up(engine, "John")
    key = key_of(engine)
    reader = stores.open(store_url)
    assert not any(ends(reader, key).values())  # read, and kept by the reader
    writer.approve(key)
    assert all(ends(reader, key).values())  # the generation moved: read again
    [info] = stores.open(store_url).tasks()
    assert (info.text, info.approved) == ("fill the signup form for {name}", 1)


@persistent
def test_an_approval_the_secret_did_not_sign_is_no_approval(store_url, stores):
    store = stores.track(store_url, secret="s3cret")
    engine = signup_engine(store, {"page": "v1"})
    sign_up(engine, "John")
    key = key_of(engine)
    assert isinstance(store, SQLStore)
    # A writer of the database without the secret sets the flag by hand: refused.
    store._write(lambda cur: cur.execute("UPDATE mm_nodes SET approved = 1"))
    assert not any(ends(stores.track(store_url, secret="s3cret"), key).values())
    # Through the store with the secret, approval is signed and holds.
    assert store.approve(key) == 1
    assert all(ends(stores.track(store_url, secret="s3cret"), key).values())
    # ...and with another secret it does not (nor do the rows it approves).
    with pytest.warns(Warning):
        assert not any(ends(stores.track(store_url, secret="other"), key).values())
    # A worker without the secret cannot approve in a signed store, but may revoke.
    unsigned = stores.track(store_url)
    assert unsigned.approve(key, approved=False) == 1
    with pytest.raises(StoreError, match="signed with a secret"):
        unsigned.approve(key)
    assert not any(ends(store, key).values())


@persistent
def test_a_version_4_store_is_migrated_and_learns_its_text_on_the_next_recording(store_url, stores):
    store = stores.open(store_url)
    world = {"page": "v1"}
    sign_up(signup_engine(store, world), "John")
    assert isinstance(store, SQLStore)

    def downgrade(cur):  # a store written before tasks kept their words (schema 4)
        before_schema_6(cur)
        cur.execute("ALTER TABLE mm_tasks DROP COLUMN text")
        cur.execute("ALTER TABLE mm_nodes DROP COLUMN approved")
        cur.execute("ALTER TABLE mm_nodes DROP COLUMN approved_sig")
        cur.execute("UPDATE mm_meta SET value = '4' WHERE key = 'schema_version'")

    store._write(downgrade)
    migrated = stores.open(store_url)
    engine = signup_engine(migrated, world)
    [info] = migrated.tasks()
    assert (info.text, info.approved, info.paths) == ("", 0, 1)
    assert sign_up(engine, "Ann").hit  # a hit records nothing: the text waits
    assert migrated.tasks()[0].text == ""
    world["page"] = "v2"
    sign_up(engine, "Bo")
    assert stores.open(store_url).tasks()[0].text == "fill the signup form for {name}"


def test_merge_keeps_approval_and_fills_in_missing_text(stores):
    source = stores.fresh()
    engine = signup_engine(source, {"page": "v1"})
    sign_up(engine, "John")
    key = key_of(engine)
    source.approve(key)
    target = stores.fresh()
    assert target.merge(source.tree(key), ("signup",), "the words") == (1, 1)
    assert all(ends(target, key).values())
    assert target.tasks()[0].text == "the words"
    target.merge(source.tree(key), ("signup",), "other words")  # the store's own stay
    assert target.tasks()[0].text == "the words"
