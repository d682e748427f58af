"""Unit tier: ``muscle_mem.stats``. The figures ``compute`` makes of hand-made run logs:
counts and rates, what hits saved (set against the misses of the same path), the tags
filter. No engine, no store."""

import pytest

from muscle_mem import Status
from muscle_mem.models import RunRecord
from muscle_mem.stats import compute


def record(status, *, task="t", path="p", duration=1.0, tokens=0, cost=0.0, at=1000.0, **more):
    """One run-log line; what a test leaves out does not matter to it."""
    fields = dict(tags=("a",), params=(), replayed=0, recorded=0, diverged_at=None, reason=None)
    fields.update(more)
    return RunRecord(
        task_key=task,
        status=Status(status),
        started_at=at,
        duration_s=duration,
        tokens=tokens,
        cost=cost,
        path=path,
        **fields,
    )


def test_runs_are_counted_by_status_per_task_key_and_in_total():
    runs = [
        record("miss"),
        record("hit"),
        record("hit"),
        record("handoff", diverged_at=1, reason="step 1: the pre-check failed"),
        record("error", path=None),
        record("miss", task="u"),
    ]
    figures = compute(runs)
    t, u = figures.tasks  # most runs first
    assert (t.task_key, t.runs, t.hits, t.misses, t.handoffs, t.errors) == ("t", 5, 2, 1, 1, 1)
    assert t.hit_rate == pytest.approx(2 / 5)
    assert (t.divergences, t.diverged_at) == (1, ((1, 1),))
    assert t.reasons == (("step 1: the pre-check failed", 1),)
    assert (u.runs, u.misses, u.hit_rate) == (1, 1, 0.0)
    total = figures.total
    assert (total.task_key, total.runs, total.hits, total.errors) == ("total", 6, 2, 1)
    assert total.hit_rate == pytest.approx(2 / 6) and total.tags == ()


def test_tasks_with_as_many_runs_are_ordered_by_task_key():
    runs = [record("miss", task="b"), record("miss", task="a"), record("hit", task="c")] * 2
    assert [t.task_key for t in compute(runs).tasks] == ["a", "b", "c"]


def test_the_last_run_tokens_and_cost_are_what_the_runs_spent():
    runs = [record("miss", tokens=300, cost=0.03, at=5.0), record("hit", tokens=7, at=9.0)]
    [t] = compute(runs).tasks
    assert (t.tokens, t.cost, t.last_run) == (307, pytest.approx(0.03), 9.0)


# -- what hits saved ---------------------------------------------------------------------------


def test_a_hit_saves_the_mean_of_the_misses_that_recorded_its_path():
    runs = [
        record("miss", path="p", duration=2.0, tokens=100, cost=0.10),
        record("miss", path="p", duration=4.0, tokens=300, cost=0.30),
        record("miss", path="q", duration=60.0, tokens=9000, cost=9.0),  # another path
        record("hit", path="p", duration=0.5, tokens=1, cost=0.01),
    ]
    [t] = compute(runs).tasks
    assert t.time_saved_s == pytest.approx(3.0 - 0.5)
    assert t.tokens_saved == 200 - 1
    assert t.cost_saved == pytest.approx(0.20 - 0.01)


def test_without_a_miss_of_its_path_a_hit_is_set_against_the_task_keys_misses():
    runs = [
        record("miss", path="p", duration=2.0, tokens=100),
        record("miss", path="q", duration=6.0, tokens=500),
        record("hit", path="r", duration=1.0),  # r's miss is older than the log
    ]
    [t] = compute(runs).tasks
    assert (t.time_saved_s, t.tokens_saved) == (pytest.approx(4.0 - 1.0), 300)


def test_a_hit_with_no_miss_at_all_saves_nothing():
    [t] = compute([record("hit", duration=0.1), record("handoff", duration=9.0)]).tasks
    assert (t.time_saved_s, t.tokens_saved, t.cost_saved) == (0, 0, 0)


def test_a_miss_that_recorded_nothing_is_no_baseline():
    # An agent that called no tool records no path: nothing of it is ever replayed.
    runs = [record("miss", path=None, duration=50.0), record("hit", path="p", duration=1.0)]
    assert compute(runs).tasks[0].time_saved_s == 0


def test_only_hits_save_and_misses_of_one_task_key_never_count_for_another():
    runs = [
        record("miss", task="t", path="p", duration=5.0),
        record("handoff", task="t", path="p", duration=1.0),
        record("hit", task="u", path="p", duration=1.0),
    ]
    figures = compute(runs)
    assert [(s.task_key, s.time_saved_s) for s in figures.tasks] == [("t", 0), ("u", 0)]
    assert figures.total.time_saved_s == 0


def test_the_total_saved_is_the_sum_over_task_keys():
    runs = [
        record("miss", task="t", duration=3.0, tokens=30),
        record("hit", task="t", duration=1.0),
        record("miss", task="u", duration=10.0, tokens=100),
        record("hit", task="u", duration=2.0),
    ]
    total = compute(runs).total
    assert (total.time_saved_s, total.tokens_saved) == (pytest.approx(2.0 + 8.0), 130)


# -- the tags filter ---------------------------------------------------------------------------


def test_tags_keep_the_runs_that_carry_all_of_them():
    runs = [
        record("miss", task="t", tags=("signup", "eu")),
        record("hit", task="t", tags=("signup", "eu")),
        record("miss", task="u", tags=("signup",)),
        record("miss", task="v", tags=()),
    ]
    assert [t.task_key for t in compute(runs, tags=["signup"]).tasks] == ["t", "u"]
    [t] = compute(runs, tags=["eu", "signup"]).tasks
    assert (t.task_key, t.runs, t.tags) == ("t", 2, ("signup", "eu"))
    assert compute(runs, tags=["eu", "us"]).tasks == ()
    assert compute(runs).total.runs == 4  # no tags: every run


def test_an_empty_log_has_zero_figures_and_rates():
    figures = compute([])
    assert figures.tasks == ()
    assert (figures.total.runs, figures.total.hit_rate, figures.total.divergence_rate) == (0, 0, 0)
    assert figures.total.last_run == 0.0
    assert figures.to_dict()["total"]["hit_rate"] == 0.0


def test_to_dict_names_the_rates_and_the_divergence_steps():
    runs = [record("miss"), record("handoff", diverged_at=2, reason="changed")]
    data = compute(runs).to_dict()
    [t] = data["tasks"]
    assert (t["hit_rate"], t["divergence_rate"]) == (0.0, 0.5)
    assert t["diverged_at"] == [{"step": 2, "runs": 1}]
    assert t["reasons"] == [{"reason": "changed", "runs": 1}]
