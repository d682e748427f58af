"""Replay with ``approved_only``: only the paths a person approved run, on every store."""

from __future__ import annotations

import pytest

from muscle_mem import Check, ConfigurationError, Engine, ReplayMissError


def form_engine(store, world, **options):
    """Fills the name field, or on page v2 the full-name field and a greeting: one task
    key, one path per page."""
    engine = Engine(store=store, **options)

    @engine.function(pre_check=Check(lambda field, value: world["page"]))
    def fill(field, value):
        world.setdefault("filled", []).append((field, value))

    def agent(task):
        name = task.rsplit(" ", 1)[1]
        if world["page"] == "v2":
            fill("full name", name)
            fill("greeting", f"Hello {name}!")
        else:
            fill("name", name)
        return name

    engine.set_agent(agent)
    return engine


def fill_for(engine, name, **options):
    return engine(f"fill the form for {name}", params={"name": name}, **options)


def ends(engine):
    key = engine.task_key("fill the form for x", params={"name": "x"})
    return key, [n for n in engine.store.tree(key) if n.terminal]


def test_a_strict_replay_runs_approved_paths_only(stores):
    store = stores.fresh()
    world = {"page": "v1"}
    fill_for(form_engine(store, world), "John")
    world["page"] = "v2"
    fill_for(form_engine(store, world), "Ann")
    strict = form_engine(store, world, mode="replay", approved_only=True)
    with pytest.raises(ReplayMissError, match=r"not approved.*muscle-mem approve [0-9a-f]{12}"):
        fill_for(strict, "Bo")

    key, (v1, v2) = ends(strict)
    store.approve(key, [v1.id])
    world["page"] = "v1"
    assert fill_for(strict, "Bo").hit  # approved
    world["page"] = "v2"
    with pytest.raises(ReplayMissError, match="not approved"):
        fill_for(strict, "Cy")  # its own path is not, and the approved one doesn't fit
    assert fill_for(strict, "Cy", approved_only=False).hit  # a call may say otherwise
    store.approve(key, [v2.id])
    assert fill_for(strict, "Di").hit


def test_an_unapproved_path_is_a_miss_the_agent_handles_in_auto_mode(stores):
    store = stores.fresh()
    world = {"page": "v1"}
    fill_for(form_engine(store, world), "John")
    engine = form_engine(store, world, approved_only=True)
    outcome = fill_for(engine, "Ann")
    assert outcome.status == "miss" and "not approved" in outcome.reason
    assert world["filled"][-1] == ("name", "Ann")  # the agent did it
    key, [end] = ends(engine)  # recorded again, the same path: still one, unapproved
    assert not end.approved
    store.approve(key)
    assert fill_for(engine, "Bo").hit


def test_what_an_approved_only_engine_records_starts_unapproved(stores):
    store = stores.fresh()
    world = {"page": "v2"}
    fill_for(form_engine(store, world), "John")
    engine = form_engine(store, world, approved_only=True)
    key, [_] = ends(engine)
    store.approve(key)
    world["page"] = "v3"  # a new page: the agent records a path of its own
    assert fill_for(engine, "Ann").status == "miss"
    key, found = ends(engine)
    assert sorted(n.approved for n in found) == [False, True]
    assert fill_for(engine, "Bo", approved_only=False).hit
    assert fill_for(engine, "Bo").status == "miss"


def test_approved_only_takes_a_bool(memory_engine):
    with pytest.raises(ConfigurationError, match="approved_only= takes True or False"):
        Engine(approved_only="yes")  # type: ignore[arg-type]
    memory_engine.set_agent(lambda task: None)
    with pytest.raises(ConfigurationError, match="approved_only= takes True or False"):
        memory_engine("t", approved_only=1)  # type: ignore[arg-type]
