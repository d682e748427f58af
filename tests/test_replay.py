"""Replay through the trie: captures, compares, scores, snapshot sets and terminal nodes.

Runs on every store kind (see conftest), but for the memory store's own limits
(snapshot cap, runs kept), tested once on a ``MemoryStore``.
"""

import pytest

import muscle_mem
from muscle_mem import Check, Engine, MemoryStore


def tree_of(engine, *args, **kwargs):
    return engine.store.tree(engine.task_key(*args, **kwargs))


def only_child(engine, *args, **kwargs):
    (child,) = tree_of(engine, *args, **kwargs).root.children
    return child


def shape(tree):
    """What a run can add to a tree: its nodes, their snapshot counts, where paths end."""
    return sorted((node.id, len(node.pre), len(node.post), node.terminal) for node in tree)


# -- captures and compares ------------------------------------------------------------


def test_capture_is_taken_once_per_distinct_tool_and_arguments_at_a_step(engine):
    # Without provenance: with it, a run given "who" never takes child 1's path, which
    # was recorded for a run without that param.
    engine.provenance = False
    env = {"v": "A", "who": "John"}
    captured = []

    def capture(who):
        captured.append(who)
        return env["v"]

    @engine.function(pre_check=Check(capture))
    def greet(who):
        pass

    engine.set_agent(lambda task: greet(env["who"]))
    assert engine("t").status == "miss"  # child 1: greet("John"), a literal
    env["v"] = "B"
    assert engine("t", params={"who": "John"}).status == "miss"  # child 2: greet({who})
    env.update(v="C", who="Ann")
    assert engine("t", params={"who": "John"}).status == "miss"  # child 3: greet("Ann")
    tree = tree_of(engine, "t")
    assert len(tree.root.children) == 3
    assert sum(child.template()[1] for child in tree.root.children) == 1  # one templated

    for v in ("A", "B", "C"):
        env["v"] = v
        captured.clear()
        outcome = engine("t", params={"who": "John"})
        assert (outcome.status, outcome.replayed) == ("hit", 1)
        # Children 1 and 2 both resolve to greet("John"): one capture serves both.
        assert sorted(captured) == ["Ann", "John"]


def test_identical_snapshot_is_tried_first_so_an_equality_compare_runs_once(engine):
    env = {"v": 0}
    compared = []

    def compare(current, candidate):
        compared.append(candidate)
        return current == candidate

    @engine.function(pre_check=Check(lambda: env["v"], compare))
    def act():
        pass

    engine.set_agent(lambda task: act())
    for v in range(500):
        env["v"] = v
        assert engine("t").status == "miss"
    assert len(only_child(engine, "t").pre) == 500

    for v in (0, 250, 499):  # the oldest, a middle one, the newest
        env["v"] = v
        compared.clear()
        assert engine("t").hit
        assert compared == [v]

    # An environment never seen is compared once with each stored snapshot, no more.
    env["v"] = 10_000
    compared.clear()
    assert engine("t").status == "miss"
    assert sorted(compared) == list(range(500))


# -- scored checks ----------------------------------------------------------------------


def closeness(current, candidate):
    return max(0, 10 - abs(current - candidate))


@pytest.mark.parametrize(
    ("x", "status"),
    [(0, "hit"), (1, "hit"), (2, "hit"), (-2, "hit"), (3, "miss"), (-3, "miss"), (9, "miss")],
)
def test_threshold_passes_at_or_above_it_and_fails_below(engines, x, status):
    engine = engines()
    env = {"x": 0}

    @engine.function(pre_check=Check(lambda: env["x"], closeness, threshold=8))
    def act():
        pass

    engine.set_agent(lambda task: act())
    engine("t")  # recorded at x=0; at x=±2 the score is exactly 8
    env["x"] = x
    assert engine("t").status == status


@pytest.mark.parametrize("threshold", [2, None])
def test_candidates_are_ranked_by_score(engines, threshold):
    engine = engines()
    env = {"x": 0}
    done = []

    @engine.function(pre_check=Check(lambda branch: env["x"], closeness, threshold=threshold))
    def act(branch):
        done.append(branch)

    engine.set_agent(lambda task: act("low" if env["x"] < 5 else "high"))
    assert engine("t").status == "miss"  # "low" recorded at x=0
    env["x"] = 10
    assert engine("t").status == "miss"  # "low" scores 0 there: "high" recorded at x=10
    assert len(tree_of(engine, "t").root.children) == 2

    # Both branches pass at each x below; the one scoring higher is replayed, whichever
    # was recorded or used last.
    for x, branch in [(3, "low"), (7, "high"), (4, "low"), (6, "high"), (1, "low")]:
        env["x"] = x
        done.clear()
        assert engine("t").hit
        assert done == [branch], x


@pytest.mark.parametrize(
    ("result", "hit"),
    [
        (True, True),
        (1, True),
        (0.25, True),
        (False, False),
        (0, False),
        (0.0, False),
    ],
)  # anything but a bool or a number is an error: see test_check_results.py
def test_without_threshold_a_truthy_compare_result_passes(engines, result, hit):
    engine = engines()

    @engine.function(pre_check=Check(lambda: "env", lambda current, candidate: result))
    def act():
        pass

    engine.set_agent(lambda task: act())
    engine("t")
    assert engine("t").hit is hit


# -- the snapshot set -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("compare", "n"),
    # A user's compare scans every stored snapshot on each miss while recording: O(n²).
    [(None, 2_000), (lambda a, b: a == b, 1_000)],
    ids=["equality", "compare"],
)
def test_thousands_of_environments_on_one_path_all_stay_hits(engines, compare, n):
    engine = engines()
    env = {"v": 0}

    @engine.function(pre_check=Check(lambda: env["v"], compare))
    def first():
        pass

    @engine.function(pre_check=Check(lambda: -env["v"], compare))
    def second():
        pass

    def agent(task):
        first()
        second()

    engine.set_agent(agent)
    for v in range(n):
        env["v"] = v
        assert engine("t").status == "miss"
    tree = tree_of(engine, "t")
    assert len(tree) == 2
    assert all(len(node.pre) == n for node in tree if node.step is not None)

    statuses = []
    for v in range(n):
        env["v"] = v
        outcome = engine("t")
        statuses.append((outcome.status, outcome.replayed))
    assert statuses == [("hit", 2)] * n


def test_snapshot_cap_evicts_the_least_recently_matched():
    engine = Engine(store=MemoryStore(snapshot_cap=3))
    env = {"v": ""}

    @engine.function(pre_check=Check(lambda: env["v"]))
    def act():
        pass

    engine.set_agent(lambda task: act())

    def run(v):
        env["v"] = v
        return engine("t").status

    assert [run(v) for v in "abc"] == ["miss"] * 3
    assert run("a") == "hit"  # "a" is now the most recently matched, "b" the least
    assert run("d") == "miss"  # a fourth environment: "b" makes room for it
    assert len(only_child(engine, "t").pre) == 3
    assert [run(v) for v in "acd"] == ["hit"] * 3  # hits record nothing: order is kept
    assert run("b") == "miss"


def window_engine(engines, learn):
    """A README-style time window: a recorded snapshot at most 1 tick old passes."""
    engine = engines()
    clock = {"t": 0}
    check = Check(lambda: clock["t"], lambda now, then: now - then <= 1, learn=learn)

    @engine.function(pre_check=check)
    def act():
        pass

    engine.set_agent(lambda task: act())
    assert engine("t").status == "miss"  # recorded at t=0
    return engine, clock


def test_a_hit_refreshes_the_matched_snapshot_with_its_fresh_capture(engines):
    engine, clock = window_engine(engines, learn=True)
    for t in range(1, 6):
        clock["t"] = t
        # Without the refresh, t=2 would be 2 ticks away from the snapshot of t=0.
        assert engine("t").hit, t
        assert len(only_child(engine, "t").pre) == 1  # replaced, not added


def test_learn_false_keeps_the_recorded_snapshot_unchanged(engines):
    engine, clock = window_engine(engines, learn=False)
    clock["t"] = 1
    assert engine("t").hit
    assert len(only_child(engine, "t").pre) == 1
    clock["t"] = 2  # still compared with t=0, not with the t=1 of the last hit
    assert engine("t").status == "miss"


def test_hits_never_add_nodes_or_snapshots(engine):
    env = {"page": 0}

    @engine.function(pre_check=Check(lambda: env["page"], lambda now, then: abs(now - then) < 99))
    def open_page():
        pass

    @engine.function(
        pre_check=Check(lambda field: env["page"] % 3),
        post_check=Check(lambda field: env["page"] % 5, lambda now, then: True),
    )
    def fill(field):
        pass

    def agent(task):
        if muscle_mem.handoff() is None:
            open_page()
        fill("name")

    engine.set_agent(agent)
    for page in range(3):  # three environments: fill's pre-check learns each of them
        env["page"] = page
        engine("t")
    tree = tree_of(engine, "t")
    before = shape(tree)
    assert len(tree) == 2
    hits = [node.hits for node in tree if node.step is not None]

    for page in range(3, 60):
        env["page"] = page
        outcome = engine("t")
        assert (outcome.status, outcome.replayed) == ("hit", 2)
        assert engine.store.runs()[-1].recorded == 0
    assert shape(tree) == before
    assert [node.hits for node in tree if node.step is not None] == [h + 57 for h in hits]


# -- where a run ends -------------------------------------------------------------------


def test_reaching_a_node_where_a_trajectory_ended_completes_the_run(engine):
    env = {"b": "ok"}
    log = []

    @engine.function()
    def a():
        log.append("a")

    @engine.function(pre_check=Check(lambda: env["b"]))
    def b():
        log.append("b")

    def agent(task):
        if muscle_mem.handoff() is None:
            a()
        if env["b"] == "ok":
            b()

    engine.set_agent(agent)
    engine("t")  # records a, b
    env["b"] = "gone"
    outcome = engine("t")  # b's check fails after a; the agent has nothing more to do
    assert (outcome.status, outcome.replayed, outcome.diverged_at) == ("handoff", 1, 1)
    assert tree_of(engine, "t").root.children[0].terminal

    log.clear()
    outcome = engine("t")  # a trajectory ended at a: replaying a completes the run
    assert (outcome.status, outcome.replayed, outcome.reason) == ("hit", 1, None)
    assert log == ["a"]

    env["b"] = "ok"  # the longer recorded trajectory is still there when it fits
    log.clear()
    assert engine("t").hit
    assert log == ["a", "b"]


def test_a_miss_without_tool_calls_on_a_recorded_task_records_nothing(engine):
    env = {"page": "v1"}

    @engine.function(pre_check=Check(lambda: env["page"]))
    def act():
        pass

    engine.set_agent(lambda task: act() if env["page"] == "v1" else "nothing to do")
    engine("t")
    before = shape(tree_of(engine, "t"))
    env["page"] = "v2"
    for _ in range(2):  # the second run is no zero-step "hit": the root is no path's end
        outcome = engine("t")
        assert (outcome.status, outcome.result, outcome.replayed) == ("miss", "nothing to do", 0)
        assert engine.store.runs()[-1].recorded == 0
    assert shape(tree_of(engine, "t")) == before
    assert not tree_of(engine, "t").root.terminal


def test_a_handoff_at_step_zero_without_tool_calls_records_nothing(engine):
    env = {"broken": False}

    @engine.function()
    def flaky():
        if env["broken"]:
            raise RuntimeError("gone")

    def agent(task):
        if muscle_mem.handoff() is None:
            flaky()
        return "handled"

    engine.set_agent(agent)
    engine("t")
    before = shape(tree_of(engine, "t"))
    env["broken"] = True
    for _ in range(2):
        outcome = engine("t")
        assert (outcome.status, outcome.diverged_at, outcome.result) == ("handoff", 0, "handled")
        assert engine.store.runs()[-1].recorded == 0
    assert shape(tree_of(engine, "t")) == before


def test_a_stored_snapshot_is_not_changed_by_mutating_what_the_capture_returned(engine):
    page = {"title": "v1"}

    @engine.function(pre_check=Check(lambda: page, lambda now, then: now == then))
    def act():
        pass

    engine.set_agent(lambda task: act())
    engine("t")
    page["title"] = "v2"  # the environment changed since the recording
    assert engine("t").status == "miss"


def test_the_memory_store_keeps_only_its_latest_runs():
    engine = muscle_mem.Engine(store=muscle_mem.MemoryStore(keep_runs=3))

    @engine.function()
    def tool(i):
        pass

    engine.set_agent(lambda task: tool(task))
    for i in range(5):
        engine(i)
    assert [run.status for run in engine.store.runs()] == ["miss"] * 3
    assert engine(4).hit and len(engine.store.runs()) == 3


def test_a_numpy_true_is_a_yes_that_ends_the_search(engines):
    np = pytest.importorskip("numpy")
    engine = engines()
    env = {"v": 0}
    calls = []

    def close_enough(now, then):
        calls.append(then)
        return np.bool_(abs(now - then) <= 5)  # what `np.abs(a - b) <= 5` returns

    @engine.function(pre_check=Check(lambda: env["v"], close_enough))
    def act():
        pass

    engine.set_agent(lambda task: act())
    for v in range(0, 100, 10):  # ten environments, none within 5 of another
        env["v"] = v
        engine("t")
    env["v"] = 50
    calls.clear()
    assert engine("t").hit
    assert calls == [50]  # the identical snapshot said yes: no other was compared


def test_a_step_tries_first_what_the_step_before_it_matched(engines):
    engine = engines()
    env = {"v": 0.0}
    compared = []

    def near(now, then):
        compared.append(then)
        return abs(now - then) < 0.5

    check = Check(lambda field: env["v"], near)

    @engine.function(pre_check=check)
    def fill(field):
        pass

    engine.set_agent(lambda task: [fill(f) for f in ("a", "b", "c")])
    for v in range(50):  # fifty environments on one path, each seen by all three steps
        env["v"] = float(v)
        engine("t")
    env["v"] = 20.1  # near 20 only, and identical to no stored snapshot
    compared.clear()
    assert engine("t").hit
    # Step "a" searches; steps "b" and "c" find 20.0 at once from step "a"'s match.
    assert compared.count(20.0) == 3 and len(compared) == compared.index(20.0) + 3


def test_a_path_missing_rows_below_is_never_a_hit(tmp_path):
    # A row deleted by hand (or refused for its signature) leaves a node that no recorded
    # run ended at: replay must not call the two steps above it a complete path.
    import sqlite3

    url = f"sqlite:///{tmp_path / 'c.db'}"
    calls = []
    with Engine(store=url) as engine:

        @engine.function(name="step")
        def step(i):
            calls.append(i)

        engine.set_agent(lambda task: [step(i) for i in range(5)])
        engine("t")
        third = next(n for n in tree_of(engine, "t") if n.step and n.template()[0] == ((2,), {}))
    with sqlite3.connect(tmp_path / "c.db") as db:
        db.execute("DELETE FROM mm_nodes WHERE id = ?", (third.id,))
    calls.clear()
    with Engine(store=url) as engine:

        @engine.function(name="step")  # the same tool, in a new engine
        def step(i):
            calls.append(i)

        engine.set_agent(lambda task: [step(i) for i in range(5)])
        outcome = engine("t")
    assert outcome.status == "miss"
    assert "no recorded path through it reaches a recorded end" in outcome.reason
    assert calls == [0, 1, 2, 3, 4]  # the agent did it all: nothing was half replayed
