"""What a run returns: status, counts, divergence, result, usage; and what it records.

Runs on every store kind (see conftest).
"""

import pytest

import muscle_mem
from muscle_mem import Check


def make(engine, world, *, post=False):
    """Two tools whose pre-checks read the world's page, and an agent that uses them."""

    @engine.function(pre_check=Check(lambda field: world.state["page"]))
    def open_page(field):
        world.calls.append(("open", field))

    post_check = Check(lambda field, value: world.state.get("saved")) if post else None

    @engine.function(
        pre_check=Check(lambda field, value: world.state["page"]), post_check=post_check
    )
    def fill(field, value):
        world.calls.append(("fill", field, value))
        world.state["saved"] = world.state.get("save_as", value)

    def agent(task, *, who="John"):
        open_page("name")
        fill("name", who)
        return f"done {task}"

    engine.set_agent(agent).finalize()
    return agent


def test_first_run_is_a_miss_and_second_a_hit(engine, world):
    make(engine, world)
    first = engine("fill form")
    assert (first.status, first.hit, bool(first)) == ("miss", False, False)
    assert first.result == "done fill form"
    assert first.replayed == 0 and first.diverged_at is None
    assert first.duration_s > 0
    second = engine("fill form")
    assert (second.status, second.hit, bool(second)) == ("hit", True, True)
    assert second.replayed == 2 and second.diverged_at is None and second.reason is None
    assert second.result == "done fill form"  # what the agent returned when recorded
    assert world.calls == [("open", "name"), ("fill", "name", "John")] * 2


def test_agent_gets_every_argument_but_tags_and_params(engine, world):
    seen = []

    @engine.function()
    def tool():
        pass

    def agent(*args, **kwargs):
        seen.append((args, kwargs))
        tool()

    engine.set_agent(agent)
    engine(1, [2], key={"a": None}, tags=["t"], params={"p": 1})
    assert seen == [((1, [2]), {"key": {"a": None}})]


def test_pre_check_failing_at_step_zero_is_a_plain_miss(engine, world):
    make(engine, world)
    engine("fill form")
    world.state["page"] = "v2"
    outcome = engine("fill form")
    assert outcome.status == "miss" and outcome.diverged_at is None
    assert "pre-check" in outcome.reason and "open_page" in outcome.reason
    assert muscle_mem.handoff() is None


def test_pre_check_failing_later_hands_off_with_what_was_done(engine, world):
    handoffs = []

    @engine.function(pre_check=Check(lambda: "same"))
    def first():
        world.calls.append("first")

    @engine.function(pre_check=Check(lambda: world.state["page"]))
    def second():
        world.calls.append("second")

    def agent(task):
        handoffs.append(muscle_mem.handoff())
        h = muscle_mem.handoff()
        if h is None:
            first()
        second()

    engine.set_agent(agent)
    engine("t")
    world.state["page"] = "v2"
    outcome = engine("t")
    assert (outcome.status, outcome.replayed, outcome.diverged_at) == ("handoff", 1, 1)
    assert "second" in outcome.reason
    h = handoffs[-1]
    assert h.at == 1 and h.reason == outcome.reason
    assert [(s.tool.rsplit(".", 1)[-1], s.args, s.kwargs, s.result) for s in h.steps] == [
        ("first", (), {}, None)
    ]
    # The agent's calls became a branch after the replayed prefix: now a full hit.
    again = engine("t")
    assert (again.status, again.replayed) == ("hit", 2)
    assert muscle_mem.handoff() is None


def test_tool_raising_during_replay_is_a_handoff_at_that_step(engine, world):
    @engine.function()
    def flaky():
        world.calls.append("flaky")
        if world.state.get("broken"):
            raise RuntimeError("element not found")

    def agent(task):
        if muscle_mem.handoff() is None:
            flaky()

    engine.set_agent(agent)
    engine("t")
    world.state["broken"] = True
    outcome = engine("t")
    assert (outcome.status, outcome.diverged_at, outcome.replayed) == ("handoff", 0, 0)
    assert "RuntimeError: element not found" in outcome.reason


def test_post_check_failure_hands_off_after_the_step(engine, world):
    make(engine, world, post=True)
    engine("fill form")
    world.state["save_as"] = "something else"
    outcome = engine("fill form")
    assert (outcome.status, outcome.replayed, outcome.diverged_at) == ("handoff", 2, 1)
    assert "post-check" in outcome.reason


def test_agent_raising_records_nothing_and_propagates(engine, world):
    @engine.function()
    def tool():
        world.calls.append("tool")

    def agent(task):
        tool()
        raise KeyError("model overloaded")

    engine.set_agent(agent)
    with pytest.raises(KeyError):
        engine("t")
    assert len(engine.store.tree(engine.task_key("t"))) == 0
    logged = engine.store.runs()[-1]
    assert logged.status == "error" and "model overloaded" in logged.reason


def test_run_without_tool_calls_records_nothing(engine):
    @engine.function()
    def tool():
        pass

    engine.set_agent(lambda task: "no tools needed")
    assert engine("t").status == "miss"
    assert engine("t").status == "miss"
    assert len(engine.store.tree(engine.task_key("t"))) == 0


def test_tool_outside_a_run_just_runs(engine):
    @engine.function()
    def add(a, b):
        return a + b

    engine.set_agent(lambda: add(1, 2))
    assert add(2, 3) == 5
    assert engine.store.runs() == []


def test_report_usage_attaches_to_the_outcome_and_the_log(engine):
    @engine.function()
    def tool():
        pass

    def agent(task):
        muscle_mem.report_usage(tokens=120, cost=0.002)
        tool()
        muscle_mem.report_usage(tokens=30)

    engine.set_agent(agent)
    outcome = engine("t")
    assert (outcome.tokens, outcome.cost) == (150, 0.002)
    assert engine.store.runs()[-1].tokens == 150
    assert engine("t").tokens == 0
    muscle_mem.report_usage(tokens=5)  # outside a run: nothing to attach it to
    with pytest.raises(ValueError, match="tokens"):
        muscle_mem.report_usage(tokens=-1)


def test_run_log_keeps_param_names_not_values(engine):
    @engine.function()
    def login(user, password):
        pass

    engine.set_agent(lambda task: login("ann", "hunter2"))
    engine("log in", params={"password": "hunter2"})
    record = engine.store.runs()[-1]
    assert record.params == ("password",)
    assert "hunter2" not in repr(record)


def test_nothing_is_printed(engine, world, capsys):
    make(engine, world)
    engine("fill form")
    engine("fill form")
    world.state["page"] = "v9"
    engine("fill form")
    assert capsys.readouterr() == ("", "")


def test_hits_log_at_debug_level(engine, world, caplog):
    make(engine, world)
    with caplog.at_level("DEBUG", logger="muscle_mem"):
        engine("fill form")
        engine("fill form")
    assert [r.getMessage().split()[0] for r in caplog.records] == ["miss", "hit"]


def test_async_agent_and_async_tools(engines):
    import asyncio

    engine = engines()
    calls = []

    @engine.function(pre_check=Check(lambda x: "env"))
    async def fetch(x):
        await asyncio.sleep(0)
        calls.append(x)
        return x * 2

    async def agent(task):
        return await fetch(21)

    engine.set_agent(agent)

    async def main():
        first = await engine.arun("t")
        second = await engine.arun("t")
        return first, second

    first, second = asyncio.run(main())
    assert (first.status, first.result) == ("miss", 42)
    assert (second.status, second.replayed) == ("hit", 1)
    assert calls == [21, 21]
    # A sync engine call replays async tools too.
    assert engine("t").status == "hit" and calls == [21, 21, 21]


def test_sync_call_of_an_async_agent_says_to_use_arun(engines):
    engine = engines()

    @engine.function()
    async def tool():
        pass

    async def agent(task):
        await tool()

    engine.set_agent(agent)
    with pytest.raises(muscle_mem.ConfigurationError, match="arun"):
        engine("t")
