"""engine.session(): a run that a framework drives step by step (replay, calls, commit).

Runs on every store kind (see conftest), but for misuse, settled before any store is read.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

import muscle_mem
from muscle_mem import (
    Check,
    ConfigurationError,
    DivergenceError,
    Engine,
    ReplayMissError,
    Session,
)

TASK = "fill the signup form"


class Framework:
    """A stand-in for an agent framework whose hook drives a session: a scripted
    "model" decides the calls; each model turn is counted, as a real one would cost."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.selectors = {"name": "#name", "greeting": "#greeting"}
        self.typed: list[tuple[str, str]] = []
        self.model_calls = 0
        form = self

        def type_into(field: str, value: str) -> str:
            form.typed.append((field, value))
            return f"{field} typed"

        engine.tool(
            type_into,
            name="type_into",
            version="1",
            pre_check=Check(capture=lambda field, value: form.selectors[field]),
        )

    def run(self, name: str) -> muscle_mem.Outcome:
        with self.engine.session(TASK, params={"name": name}) as session:
            so_far = session.replay()
            if so_far:
                return so_far
            handoff = session.handoff
            done = len(handoff.steps) if handoff else 0
            plan = [("name", name), ("greeting", f"Hello {name}!")]
            for field, value in plan[done:]:
                self.model_calls += 1  # the model decides this call
                session.call("type_into", field, value)
            self.model_calls += 1  # and then answers
            session.report_usage(tokens=100 * self.model_calls, cost=0.01)
            return session.commit(f"signed up {name}")


def test_miss_commit_hit_handoff_with_only_the_missing_calls_then_hit(engine):
    framework = Framework(engine)
    miss = framework.run("John")
    assert (miss.status, miss.result, framework.model_calls) == ("miss", "signed up John", 3)
    assert miss.tokens == 300

    framework.model_calls, framework.typed = 0, []
    hit = framework.run("Jane")
    assert (hit.status, hit.replayed, hit.result) == ("hit", 2, "signed up Jane")
    assert framework.model_calls == 0
    assert framework.typed == [("name", "Jane"), ("greeting", "Hello Jane!")]
    assert [s.arguments for s in hit.steps] == [
        {"field": "name", "value": "Jane"},
        {"field": "greeting", "value": "Hello Jane!"},
    ]

    framework.selectors["greeting"] = "#welcome"  # the page changed under step 1
    framework.model_calls, framework.typed = 0, []
    handed = framework.run("Ann")
    assert (handed.status, handed.replayed, handed.diverged_at) == ("handoff", 1, 1)
    assert framework.model_calls == 2  # one call, the missing one, and the answer
    assert framework.typed == [("name", "Ann"), ("greeting", "Hello Ann!")]

    framework.model_calls = 0
    again = framework.run("Bob")
    assert (again.status, again.replayed, framework.model_calls) == ("hit", 2, 0)
    assert [run.status for run in engine.store.runs()] == ["miss", "hit", "handoff", "hit"]
    assert engine.stats().total.tokens_saved > 0  # hits count what the miss spent


def test_the_outcome_so_far_says_what_replay_did_and_why_it_stopped(engine):
    framework = Framework(engine)
    framework.run("John")
    framework.selectors["greeting"] = "#welcome"
    with engine.session(TASK, params={"name": "Ann"}) as session:
        assert session.handoff is None  # nothing replayed yet
        so_far = session.replay()
        assert (so_far.status, so_far.replayed, so_far.diverged_at) == ("handoff", 1, 1)
        assert "pre-check of type_into failed" in so_far.reason
        assert [s.arguments for s in so_far.steps] == [{"field": "name", "value": "Ann"}]
        assert session.handoff is not None
        assert (session.handoff.at, session.handoff.steps) == (1, so_far.steps)
        session.call("type_into", "greeting", "Hello Ann!")
        final = session.commit()
    assert (final.status, final.replayed) == ("handoff", 1)


def test_a_session_and_engine_share_one_cache_entry(engine):
    framework = Framework(engine)
    framework.run("John")
    engine.set_agent(lambda task: pytest.fail("a hit calls no agent"))
    assert engine(TASK, params={"name": "Eve"}).status == "hit"
    with engine.session(TASK, params={"name": "Eve"}) as session:
        assert session.task_key == engine.task_key(TASK, params={"name": "Eve"})


def test_fail_and_an_exception_leaving_the_block_keep_nothing(engine):
    framework = Framework(engine)
    session = engine.session(TASK, params={"name": "John"})
    session.replay()
    session.call("type_into", "name", "John")
    session.fail(RuntimeError("the model gave up"))
    with pytest.raises(RuntimeError, match="boom"), engine.session(TASK) as session:
        session.replay()
        session.call("type_into", "name", "John")
        raise RuntimeError("boom")
    assert engine.store.tasks() == []
    runs = engine.store.runs()
    assert [r.status for r in runs] == ["error", "error"]
    assert [r.reason for r in runs] == [
        "RuntimeError('the model gave up')",
        "RuntimeError('boom')",
    ]
    assert framework.run("John").status == "miss"  # nothing was kept to replay


def test_calls_from_threads_are_recorded_in_the_order_they_started(engine):
    started = [threading.Event() for _ in range(3)]
    release = [threading.Event() for _ in range(3)]
    order: list[int] = []

    def fetch(i: int) -> str:
        order.append(i)
        started[i].set()
        assert release[i].wait(5)  # held until the test lets it end
        return f"page {i}"

    engine.tool(fetch, name="fetch", version="1")
    with engine.session("fetch the pages") as session:
        session.replay()
        threads = []
        for i in range(3):  # each starts before the next
            thread = threading.Thread(target=session.call, args=("fetch", i))
            thread.start()
            threads.append(thread)
            assert started[i].wait(5)
        for i in reversed(range(3)):  # and they end in the opposite order
            release[i].set()
            threads[i].join(5)
        session.commit()

    for event in release:
        event.set()
    order.clear()
    with engine.session("fetch the pages") as session:
        hit = session.replay()
    assert hit.status == "hit" and order == [0, 1, 2]
    assert [s.result for s in hit.steps] == ["page 0", "page 1", "page 2"]


def test_calls_from_asyncio_tasks_are_recorded_in_the_order_they_started(engine):
    ended: list[str] = []

    async def search(query: str, delay: float) -> str:
        await asyncio.sleep(delay)
        ended.append(query)
        return query.upper()

    engine.tool(search, name="search", version="1")

    async def framework() -> muscle_mem.Outcome:
        async with engine.session("research") as session:
            so_far = await session.areplay()
            if so_far:
                return so_far
            calls = [("slow", 0.03), ("mid", 0.02), ("fast", 0.0)]  # one model turn
            results = await asyncio.gather(*(session.acall("search", q, d) for q, d in calls))
            return session.commit(results)

    first = asyncio.run(framework())
    assert (first.status, first.result) == ("miss", ["SLOW", "MID", "FAST"])
    assert ended == ["fast", "mid", "slow"]
    hit = asyncio.run(framework())
    assert hit.status == "hit" and hit.result == ["SLOW", "MID", "FAST"]
    assert [s.arguments["query"] for s in hit.steps] == ["slow", "mid", "fast"]


def test_injected_context_passes_through_calls_and_replay_supplies_the_sessions(engine):
    class RunContext:  # a framework's context: not data
        def __init__(self, user: str) -> None:
            self.user = user

    def lookup(ctx: RunContext, key: str) -> str:
        return f"{ctx.user}:{key}"

    engine.tool(lookup, name="lookup", version="1", inject=["ctx"])

    async def framework(ctx: RunContext) -> muscle_mem.Outcome:
        async with engine.session("look up", inject={"ctx": ctx}) as session:
            if so_far := await session.areplay():
                return so_far
            return session.commit(await session.acall("lookup", ctx, key="plan"))

    first = asyncio.run(framework(RunContext("ann")))
    assert (first.status, first.result) == ("miss", "ann:plan")
    hit = asyncio.run(framework(RunContext("bob")))
    assert (hit.status, hit.steps[0].result) == ("hit", "bob:plan")
    assert hit.steps[0].arguments == {"key": "plan"}


def test_async_tools_replay_from_a_sync_session_and_sync_tools_from_an_async_one(engine):
    async def slow(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    engine.tool(slow, name="slow", version="1")
    engine.tool(lambda x: x + 1, name="fast", version="1")
    with engine.session("compute") as session:
        session.replay()
        assert session.call("slow", 2) == 4  # an async tool, run to completion
        assert session.call("fast", 2) == 3
        session.commit()

    async def replay() -> muscle_mem.Outcome:
        async with engine.session("compute") as session:
            return await session.areplay()

    hit = asyncio.run(replay())
    assert [s.result for s in hit.steps] == [4, 3]


def test_a_hit_needs_no_commit_and_commit_returns_it(engine):
    Framework(engine).run("John")
    with engine.session(TASK, params={"name": "Jo"}) as session:
        hit = session.replay()
        assert session.commit("ignored") is hit  # a no-op returning the hit
        session.fail(RuntimeError("too late"))  # a no-op: the hit stands
        with pytest.raises(ConfigurationError, match=r"over \(it was a cache hit\)"):
            session.call("type_into", "name", "Jo")
        with pytest.raises(ConfigurationError, match=r"over \(it was a cache hit\)"):
            session.report_usage(tokens=1)
    assert [r.status for r in engine.store.runs()] == ["miss", "hit"]


def test_a_hit_held_open_is_logged_at_commit_with_the_usage_of_its_answer(engine):
    Framework(engine).run("John")  # a miss of 300 tokens
    with engine.session(TASK, params={"name": "Jo"}) as session:
        held = session.replay(commit_hit=False)
        assert (held.status, held.result, held.tokens) == ("hit", "signed up Jo", 0)
        assert [r.status for r in engine.store.runs()] == ["miss"]  # not logged yet
        with pytest.raises(ConfigurationError, match="held open"):
            session.call("type_into", "name", "Jo")
        session.report_usage(tokens=40, cost=0.002)  # e.g. one model call, a fresh answer
        hit = session.commit("a fresh answer")
        assert (hit.status, hit.result) == ("hit", "a fresh answer")
        assert (hit.tokens, hit.cost) == (40, 0.002)
        assert session.commit() is hit  # over: commit returns it, fail is a no-op
        session.fail(RuntimeError("too late"))
    [_, logged] = engine.store.runs()
    assert (logged.status, logged.tokens, logged.cost) == ("hit", 40, 0.002)
    assert engine.stats().total.tokens_saved == 300 - 40  # every token counted


def test_a_hit_held_open_fails_as_an_error_run_and_must_be_ended(engine):
    Framework(engine).run("John")
    with engine.session(TASK, params={"name": "Jo"}) as session:
        assert session.replay(commit_hit=False)
        session.report_usage(tokens=7)
        session.fail(TimeoutError("the model did not answer"))
    left = pytest.raises(ConfigurationError, match="held open with commit_hit=False")
    with left, engine.session(TASK, params={"name": "Jo"}) as session:
        assert session.replay(commit_hit=False)
    with pytest.raises(ConfigurationError, match=r"commit_hit=\.\.\.\) takes True or False"):
        engine.session(TASK).replay(commit_hit="no")
    failed, left_open = [r for r in engine.store.runs() if r.status == "error"]
    assert (failed.reason, failed.tokens) == ("TimeoutError('the model did not answer')", 7)
    assert "commit_hit=False" in left_open.reason and engine.stats().total.hits == 0


def test_a_held_hit_in_async_code(engine):
    Framework(engine).run("John")

    async def run() -> muscle_mem.Outcome:
        async with engine.session(TASK, params={"name": "Al"}) as session:
            held = await session.areplay(commit_hit=False)
            assert held.hit and held.replayed == 2
            session.report_usage(tokens=5)
            return session.commit()

    hit = asyncio.run(run())
    assert (hit.result, hit.tokens) == ("signed up Al", 5)
    assert engine.store.runs()[-1].tokens == 5


# -- modes and divergence policies ------------------------------------------------------


def test_mode_record_replays_nothing_and_records_a_path_from_the_start(engine):
    framework = Framework(engine)
    framework.run("John")
    with engine.session(TASK, params={"name": "Jo"}, mode="record") as session:
        so_far = session.replay()
        assert (so_far.status, so_far.replayed, session.handoff) == ("miss", 0, None)
        session.call("type_into", "name", "Jo")
        assert session.commit().status == "miss"
    [task] = engine.store.tasks()
    assert task.paths == 2  # the one-call path beside the two-call one


def test_mode_replay_raises_on_a_miss_and_logs_an_error(engine):
    Framework(engine)
    with engine.session(TASK, mode="replay") as session:
        with pytest.raises(ReplayMissError, match="nothing has been recorded"):
            session.replay()
        with pytest.raises(ConfigurationError, match=r"over \(failed\)"):
            session.call("type_into", "name", "x")
    assert [r.status for r in engine.store.runs()] == ["error"]


def test_mode_off_runs_the_calls_and_records_and_logs_nothing(engine):
    framework = Framework(engine)
    with engine.session(TASK, mode="off") as session:
        assert session.replay().status == "miss"
        assert session.call("type_into", "name", "x") == "name typed"
        assert session.commit("r").result == "r"
    assert framework.typed == [("name", "x")]
    assert engine.store.tasks() == [] and engine.store.runs() == []


def test_on_divergence_raise_and_restart(engines):
    raising = engines(on_divergence="raise")
    framework = Framework(raising)
    framework.run("John")
    framework.selectors["greeting"] = "#welcome"
    with raising.session(TASK, params={"name": "Jo"}) as session, pytest.raises(DivergenceError):
        session.replay()
    assert raising.store.runs()[-1].status == "error"

    restarting = engines(on_divergence="restart")
    framework = Framework(restarting)
    restarting.clear()
    framework.run("John")
    framework.selectors["greeting"] = "#welcome"
    framework.model_calls = 0
    restarted = framework.run("Ann")  # no handoff: the framework does the whole task
    assert (restarted.status, framework.model_calls) == ("handoff", 3)
    framework.model_calls = 0
    assert framework.run("Bob").status == "hit"  # what it did was learned, from the start
    [task] = restarting.store.tasks()
    assert (task.nodes, task.paths) == (2, 1)  # the same two steps: the same nodes


# -- misuse ------------------------------------------------------------------------------


def test_misuse_is_a_configuration_error_that_says_what_to_do(memory_engine):
    memory_engine.tool(lambda x: x, name="echo", version="1")
    session = memory_engine.session("task")
    assert isinstance(session, Session) and "new" in repr(session)
    with pytest.raises(ConfigurationError, match=r"call session\.replay\(\) .*first"):
        session.call("echo", 1)
    with pytest.raises(ConfigurationError, match=r"commit\(\).*call session\.replay\(\)"):
        session.commit()
    session.replay()
    with pytest.raises(ConfigurationError, match=r"replay\(\) runs once"):
        session.replay()
    with pytest.raises(ConfigurationError, match=r"no tool named 'ech'.*'echo'.*engine\.tool"):
        session.call("ech", 1)
    with pytest.raises(ConfigurationError, match=r"tokens=\.\.\.\) takes a non-negative int"):
        session.report_usage(tokens=-1)
    with pytest.raises(ConfigurationError, match=r"takes the exception"):
        session.fail("gave up")  # type: ignore[arg-type]
    assert session.call("echo", 1) == 1
    session.commit()
    with pytest.raises(ConfigurationError, match=r"over \(committed\)"):
        session.call("echo", 2)
    with pytest.raises(ConfigurationError, match=r"over \(committed\)"):
        session.commit()
    with pytest.raises(ConfigurationError, match=r"over \(committed\)"):
        session.fail(RuntimeError("late"))


def test_leaving_the_block_without_commit_fails_the_run_and_says_so(memory_engine):
    memory_engine.tool(lambda x: x, name="echo", version="1")
    with (
        pytest.raises(ConfigurationError, match=r"without session\.commit"),
        memory_engine.session("task") as session,
    ):
        session.replay()
        session.call("echo", 1)
    [run] = memory_engine.store.runs()
    assert run.status == "error" and memory_engine.store.tasks() == []
    with memory_engine.session("task"):
        pass  # never replayed: nothing happened, nothing to say
    assert len(memory_engine.store.runs()) == 1


def test_commit_while_a_call_is_running_is_refused(memory_engine):
    entered, release = threading.Event(), threading.Event()

    def wait() -> str:
        entered.set()
        assert release.wait(5)
        return "done"

    memory_engine.tool(wait, name="wait", version="1")
    with memory_engine.session("task") as session:
        session.replay()
        thread = threading.Thread(target=session.call, args=("wait",))
        thread.start()
        assert entered.wait(5)
        with pytest.raises(ConfigurationError, match=r"1 call\(s\) of this session are still"):
            session.commit()
        release.set()
        thread.join(5)
        assert session.commit().status == "miss"
    [task] = memory_engine.store.tasks()
    assert task.nodes == 1


def test_a_session_needs_no_agent_but_engine_still_does(memory_engine):
    with memory_engine.session("task") as session:
        session.replay()
        session.commit()
    with pytest.raises(ConfigurationError, match=r"set_agent"):
        memory_engine("task")
