"""What a store offers to those who look after it: listing, removing, merging, and
moving trees between stores; and the figures that say whether the cache pays.

Runs on every store kind (see conftest). The figures of hand-made run logs, which need
no store, are in ``tests/unit/test_stats.py``.
"""

from __future__ import annotations

import time

import pytest

import muscle_mem
from muscle_mem import Check, Engine
from muscle_mem.errors import ExportFormatError
from muscle_mem.models import Changes, RunRecord
from muscle_mem.portable import export_lines, import_into, read_export


def signup_engine(store, world, **options):
    """Fills a form in three steps; each field is checked against where it is on the page."""
    engine = Engine(store=store, **options)

    def where(field, value):
        return world.get(field, f"#{field}")

    @engine.function(pre_check=Check(where))
    def fill(field, value):
        world.setdefault("filled", []).append((field, value))

    def agent(task, name):
        handoff = muscle_mem.handoff()
        done = len(handoff.steps) if handoff else 0
        for field, value in [
            ("name", name),
            ("greeting", f"Hello {name}!"),
            ("ok", world.get("answer", "yes")),
        ][done:]:
            time.sleep(0.01)  # the model thinking: misses are slower than hits
            muscle_mem.report_usage(tokens=100, cost=0.001)
            fill(field, value)

    engine.set_agent(agent)
    return engine


def signup(engine, name, task="sign up"):
    return engine(task, name, params={"name": name}, tags=["signup"])


def reopened(stores, store_url, engine):
    """The same store as a new process would see it (the memory store is only itself)."""
    return engine.store if store_url == "memory://" else stores.open(store_url)


def test_tasks_lists_what_is_cached_most_recent_first(store_url, stores):
    world: dict = {}
    engine = signup_engine(stores.open(store_url), world)
    signup(engine, "Ann", task="first")
    signup(engine, "Bo", task="second")
    world.update(ok="#moved", answer="sure")
    signup(engine, "Cy", task="second")  # a handoff: a second path, one more node
    first = engine.task_key("first", "x", params={"name": "x"}, tags=["signup"])
    infos = reopened(stores, store_url, engine).tasks()
    assert [i.task_key for i in infos][1] == first
    second = infos[0]
    assert (second.tags, second.nodes, second.paths) == (("signup",), 4, 2)
    assert (infos[1].nodes, infos[1].paths) == (3, 1)
    assert second.last_used >= second.created_at > 0


def test_removing_a_task_key_forgets_its_tree_not_its_history(store_url, stores):
    world: dict = {}
    engine = signup_engine(stores.open(store_url), world)
    signup(engine, "Ann")
    assert signup(engine, "Bo").hit
    other = signup_engine(reopened(stores, store_url, engine), world)
    assert signup(other, "Cy").hit  # this "process" now holds the tree in memory
    key = engine.task_key("sign up", "x", params={"name": "x"}, tags=["signup"])
    assert reopened(stores, store_url, engine).remove(key) == 3
    assert len(engine.store.tree(key)) == 0
    assert signup(other, "Di").status == "miss"  # it saw the removal
    assert signup(engine, "Ed").hit
    statuses = [r.status for r in reopened(stores, store_url, engine).runs()]
    assert statuses == ["miss", "hit", "hit", "miss", "hit"]


def test_removing_a_subtree_keeps_the_other_paths_replayable(store_url, stores):
    world: dict = {}
    engine = signup_engine(stores.open(store_url), world)
    signup(engine, "Ann")
    world.update(ok="#moved", answer="sure")
    assert signup(engine, "Bo").status == "handoff"  # a second "ok" step under greeting
    key = engine.task_key("sign up", "x", params={"name": "x"}, tags=["signup"])
    tree = engine.store.tree(key)
    [moved] = [n for n in tree if n.step and b"sure" in n.step.call]
    doomed = tree.removal_set([moved.id])
    assert doomed == {moved.id}  # its parent still leads to the other path
    engine.store.remove(key, doomed)
    assert signup(engine, "Cy").status == "handoff"  # the #moved path is gone: learned again
    del world["ok"], world["answer"]
    assert signup(engine, "Di").hit


def test_a_subtree_takes_the_ancestors_that_would_end_nowhere(store_url, stores):
    engine = signup_engine(stores.open(store_url), {})
    signup(engine, "Ann")
    key = engine.task_key("sign up", "x", params={"name": "x"}, tags=["signup"])
    tree = engine.store.tree(key)
    name, greeting, ok = [n for n in tree if n.step]
    assert tree.removal_set([ok.id]) == {name.id, greeting.id, ok.id}
    greeting.terminal = True  # had a trajectory ended there, it would stay
    assert tree.removal_set([ok.id]) == {ok.id}
    assert tree.removal_set([tree.root.id, "no such node"]) == set()


def test_a_tree_moves_between_stores_and_merging_twice_adds_nothing(store_url, stores):
    world: dict = {}
    source = signup_engine(stores.open(store_url), world)
    signup(source, "Ann")
    world.update(ok="#moved", answer="sure")
    signup(source, "Bo")
    lines = list(export_lines(source.store))
    target_store = stores.fresh()
    imported = read_export(lines)
    assert (imported.nodes, imported.snapshots, imported.rejected) == (4, 4, 0)
    assert import_into(target_store, imported) == (4, 4)
    assert import_into(target_store, read_export(lines)) == (0, 0)
    assert list(export_lines(target_store)) == lines
    target = signup_engine(target_store, world)
    assert signup(target, "Cy").hit
    del world["ok"]
    assert signup(target, "Di").hit


def test_signed_exports_are_verified_and_unsigned_rows_refused(store_url, stores):
    source = signup_engine(stores.open(store_url), {}, secret="s3cret")
    signup(source, "Ann")
    signed = list(export_lines(source.store, secret="s3cret"))
    assert read_export(signed, secret="s3cret").rejected == 0
    wrong = read_export(signed, secret="another")
    assert (wrong.rejected, wrong.nodes, wrong.snapshots) == (6, 0, 0)  # 3 nodes, 3 snapshots
    unsigned = read_export(list(export_lines(source.store)), secret="s3cret")
    assert unsigned.rejected == 6
    target_store = stores.track(stores.url(), secret="s3cret")  # it signs what it stores
    import_into(target_store, read_export(signed, secret="s3cret"))
    assert signup(signup_engine(target_store, {}, secret="s3cret"), "Bo").hit


def test_an_altered_or_foreign_file_is_refused_before_anything_is_stored(store_url, stores):
    engine = signup_engine(stores.open(store_url), {})
    signup(engine, "Ann")
    lines = list(export_lines(engine.store))
    altered = [line.replace("signup_engine.<locals>.fill", "evil") for line in lines]
    with pytest.raises(ExportFormatError, match=r"line 3: node \w+ does not match its content"):
        read_export(altered)
    with pytest.raises(ExportFormatError, match="line 1: not a muscle-mem export"):
        read_export(['{"hello": 1}'])
    with pytest.raises(ExportFormatError, match="line 2: not JSON"):
        read_export([lines[0], "{oops"])
    with pytest.raises(ExportFormatError, match="comes before its parent"):
        read_export([lines[0], lines[1], lines[3]])
    with pytest.raises(ExportFormatError, match="empty"):
        read_export([])


# -- what the cache saved ------------------------------------------------------------------


def test_engine_stats_counts_and_sets_each_hit_against_the_misses_of_its_path(store_url, stores):
    world: dict = {}
    engine = signup_engine(stores.open(store_url), world)
    signup(engine, "Ann")
    signup(engine, "Bo")
    signup(engine, "Cy")
    world.update(ok="#moved", answer="sure")
    signup(engine, "Di")
    figures = engine.stats()
    [task] = figures.tasks
    assert (task.runs, task.hits, task.misses, task.handoffs, task.errors) == (4, 2, 1, 1, 0)
    assert (task.hit_rate, task.divergence_rate) == (0.5, 0.25)
    assert task.diverged_at == ((2, 1),)
    assert "pre-check" in task.reasons[0][0]
    assert task.tokens_saved == 2 * 300 and task.cost_saved == pytest.approx(2 * 0.003)
    runs = engine.store.runs()
    assert task.time_saved_s == pytest.approx(
        2 * runs[0].duration_s - runs[1].duration_s - runs[2].duration_s
    )
    assert figures.total.runs == 4 and figures.total.tokens == 300 + 100
    assert engine.stats(tags=["other"]).tasks == ()
    assert engine.stats(since=runs[-1].started_at).total.runs == 1


def _record(path, status, duration, tokens, started_at=1000.0, task="t", tags=("a",)):
    return RunRecord(
        task, tags, (), status, 0, 0, None, None, started_at, duration, tokens, 0.0, path
    )


def test_stats_to_dict_carries_the_rates(store_url, stores):
    engine = signup_engine(stores.open(store_url), {})
    signup(engine, "Ann")
    signup(engine, "Bo")
    data = engine.stats().to_dict()
    assert data["total"]["hit_rate"] == 0.5 and data["tasks"][0]["tags"] == ("signup",)
    engine.store.commit(Changes("old"), _record(None, "miss", 1.0, 0, started_at=5.0, task="old"))
    assert [t.task_key for t in engine.stats(since=time.time() - 60).tasks] == [
        engine.task_key("sign up", "x", params={"name": "x"}, tags=["signup"])
    ]


def test_a_path_recorded_while_its_anchor_was_removed_is_dropped_not_orphaned(store_url, stores):
    world: dict = {}
    engine = signup_engine(stores.open(store_url), world)
    signup(engine, "Ann")
    key = engine.task_key("sign up", "x", params={"name": "x"}, tags=["signup"])
    other = reopened(stores, store_url, engine)  # another process, say `muscle-mem rm`
    world["ok"] = "#moved"  # step 2 diverges; the agent takes over from step 2...
    original = engine._agent

    def agent(*args, **kwargs):
        other.remove(key)  # ...while the task key is removed
        return original(*args, **kwargs)

    engine.set_agent(agent)
    assert signup(engine, "Bo").status == "handoff"
    assert other.tasks() == [] and len(other.tree(key)) == 0  # nothing hangs from nothing
    engine.set_agent(original)
    assert signup(engine, "Cy").status == "miss" and len(engine.store.tree(key)) == 3


def test_merged_snapshots_rank_below_those_already_matched(store_url, stores):
    world: dict = {}
    source = signup_engine(stores.open(store_url, snapshot_cap=2), world)
    for where in ("#a", "#b"):
        world["name"] = where
        signup(source, "Ann")
    target = stores.fresh(snapshot_cap=2)
    for where in ("#c", "#d"):
        world["name"] = where
        signup(signup_engine(target, world), "Ann")
    assert import_into(target, read_export(list(export_lines(source.store)))) == (0, 0)
    key = source.task_key("sign up", "x", params={"name": "x"}, tags=["signup"])
    [first] = target.tree(key).root.children
    assert [b"#c" in k or b"#d" in k for k in first.pre] == [True, True]


def test_removing_a_step_takes_what_was_recorded_below_it_since_it_was_chosen(store_url, stores):
    world: dict = {}
    engine = signup_engine(stores.open(store_url), world)
    signup(engine, "Ann")
    key = engine.task_key("sign up", "x", params={"name": "x"}, tags=["signup"])
    tree = engine.store.tree(key)
    greeting = next(n for n in tree if n.step and b"greeting" in n.step.call)
    doomed = tree.removal_set([greeting.id])  # chosen, as `muscle-mem prune` chooses...
    world.update(ok="#moved", answer="sure")
    assert signup(engine, "Bo").status == "handoff"  # ...then a branch grows under it
    engine.store.remove(key, doomed)
    assert reopened(stores, store_url, engine).tasks() == []  # no row hangs from nothing
