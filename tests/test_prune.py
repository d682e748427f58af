"""The prune policy as a library call: what ``prune.plan`` chooses, and ``prune.apply``.

The store tests run on every store kind; the rules' edges are pinned on trees built by
hand, where each step's counts and last use can be set.
"""

from __future__ import annotations

import time

import pytest

import muscle_mem
from muscle_mem import Check, ConfigurationError, Engine, prune
from muscle_mem.models import Step
from muscle_mem.trie import Tree


def signup_engine(store, world):
    """Fills a form in three steps; each field is checked against where it is on the page."""
    engine = Engine(store=store)

    @engine.function(pre_check=Check(lambda field, value: world.get(field, f"#{field}")))
    def fill(field, value):
        pass

    def agent(task, name):
        handoff = muscle_mem.handoff()
        done = len(handoff.steps) if handoff else 0
        fields = [("name", name), ("greeting", f"Hi {name}"), ("ok", world.get("answer", "yes"))]
        for field, value in fields[done:]:
            fill(field, value)

    engine.set_agent(agent)
    return engine


def signup(engine, name):
    return engine("sign up", name, params={"name": name})


def moved_ok(engine, world):
    """Records a path, then moves its last field: the old last step's check fails once and
    a new last step is recorded beside it, which later runs replay. Returns the task key,
    the old step's id, and a moment after the old step's last use and before the new
    path's."""
    assert signup(engine, "Ann").status == "miss"
    world.update(ok="#moved", answer="sure")
    assert signup(engine, "Bo").status == "handoff"
    time.sleep(0.01)
    between = time.time()
    time.sleep(0.01)
    assert signup(engine, "Cy").status == "hit"
    key = engine.task_key("sign up", "x", params={"name": "x"})
    [old] = [n for n in engine.store.tree(key) if n.step and b'"yes"' in n.step.call]
    return key, old.id, between


def test_a_failing_step_is_planned_and_applied_and_the_rest_still_replays(stores):
    world: dict = {}
    engine = signup_engine(stores.fresh(), world)
    key, old, _ = moved_ok(engine, world)
    [planned] = prune.plan(engine.store, failing=True)
    assert (planned.task_key, planned.nodes, planned.failing) == (key, {old}, {old})
    assert (planned.steps, planned.left, planned.unused) == (4, 3, frozenset())
    assert planned.reasons == ("failing",)
    assert len(engine.store.tree(key)) == 4  # planning removes nothing

    assert prune.apply(engine.store, [planned]) == 1
    assert old not in engine.store.tree(key).nodes
    assert signup(engine, "Dee").status == "hit"
    assert prune.plan(engine.store, failing=True) == []


def test_a_step_unused_since_the_cutoff_goes_and_the_steps_used_since_stay(stores):
    world: dict = {}
    engine = signup_engine(stores.fresh(), world)
    _, old, between = moved_ok(engine, world)
    [planned] = prune.plan(engine.store, unused_since=between)
    assert (planned.nodes, planned.unused, planned.reasons) == ({old}, {old}, ("unused",))
    assert prune.plan(engine.store, unused_since=between - 60) == []

    everything = time.time() + 1
    [planned] = prune.plan(engine.store, unused_since=everything, failing=True)
    assert (planned.left, planned.reasons) == (0, ("unused", "failing"))
    assert prune.apply(engine.store, [planned]) == 4
    assert engine.store.tasks() == []


def test_apply_reports_progress_per_task_key(stores):
    world: dict = {}
    engine = signup_engine(stores.fresh(), world)
    assert signup(engine, "Ann").status == "miss"
    assert engine("log in", "Ann").status == "miss"
    seen: list[tuple[int, int]] = []
    plans = prune.plan(
        engine.store, unused_since=time.time() + 1, progress=lambda *p: seen.append(p)
    )
    assert seen == [(1, 2), (2, 2)] and len(plans) == 2
    seen.clear()
    assert prune.apply(engine.store, plans, progress=lambda *p: seen.append(p)) == 6
    assert seen == [(1, 2), (2, 2)]


def test_a_step_stays_while_a_path_below_it_is_in_use():
    tree = Tree("task1:00")
    opened = tree.insert(tree.root, Step("open", "c", b"1"))
    recent = tree.insert(opened, Step("click", "c", b"new"))
    stale = tree.insert(opened, Step("click", "c", b"old"))
    opened.last_used, recent.last_used, stale.last_used = 100.0, 300.0, 100.0
    planned = prune.plan_tree(tree, unused_since=200.0)
    assert planned is not None and planned.nodes == {stale.id}
    recent.last_used = 150.0
    planned = prune.plan_tree(tree, unused_since=200.0)
    assert planned is not None and planned.nodes == {opened.id, recent.id, stale.id}
    assert prune.plan_tree(tree, unused_since=100.0) is None


def test_a_step_fails_when_its_checks_failed_more_often_than_they_passed():
    tree = Tree("task1:00")
    even = tree.insert(tree.root, Step("open", "c", b"even"))
    worse = tree.insert(tree.root, Step("open", "c", b"worse"))
    even.hits, even.failures, worse.hits, worse.failures = 1, 1, 1, 2
    planned = prune.plan_tree(tree, failing=True)
    assert planned is not None and planned.nodes == planned.failing == {worse.id}


def test_a_plan_needs_a_rule(stores):
    with pytest.raises(ConfigurationError, match="say what to prune"):
        prune.plan(stores.fresh())
