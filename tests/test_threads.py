"""Tools an agent calls from threads it starts (a pool, a framework's parallel calls).

Context variables don't reach those threads, so the run is found another way: while the
agent runs, a tool call with no run in its context belongs to the one run of its engine
in progress, in the order the calls started. With several runs in progress it can't be
known which: the call is not recorded, and a warning names the tool, once.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from muscle_mem import Check, UnrecordedCallWarning


def test_tools_called_from_a_thread_pool_are_recorded_in_the_order_they_started(engine):
    pages = {0: "alpha", 1: "beta", 2: "gamma"}
    started = [threading.Event() for _ in pages]
    release = [threading.Event() for _ in pages]
    calls: list[int] = []

    @engine.function(pre_check=Check(lambda i: pages[i]))
    def fetch(i: int) -> str:
        calls.append(i)
        started[i].set()
        release[i].wait(5)  # held until the test lets it end
        return pages[i]

    def agent(task: str) -> list[str]:
        with ThreadPoolExecutor(max_workers=len(pages)) as pool:
            futures = []
            for i in pages:  # each starts before the next is submitted
                futures.append(pool.submit(fetch, i))
                assert started[i].wait(5)
            for i in reversed(pages):  # and they end in the opposite order
                release[i].set()
                futures[i].result(5)
            return [future.result() for future in futures]

    engine.set_agent(agent).finalize()
    first = engine("fetch the pages")
    assert (first.status, first.result) == ("miss", ["alpha", "beta", "gamma"])
    calls.clear()
    again = engine("fetch the pages")
    assert (again.status, again.replayed) == ("hit", 3)
    assert calls == [0, 1, 2]  # replayed in the order the calls started
    pages[1] = "changed"
    assert engine("fetch the pages").status == "handoff"  # their checks were recorded too


def test_a_tool_a_threaded_tool_calls_is_part_of_it(engine):
    log: list[str] = []

    @engine.function
    def inner() -> None:
        log.append("inner")

    @engine.function
    def outer() -> None:
        log.append("outer")
        inner()

    def agent(task: str) -> None:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(outer).result()

    engine.set_agent(agent).finalize()
    assert engine("t").status == "miss"
    log.clear()
    assert (engine("t").status, log) == ("hit", ["outer", "inner"])  # one step: outer


def test_with_two_runs_in_progress_a_threaded_call_is_not_recorded_and_warned_once(engine):
    in_progress = threading.Barrier(2, timeout=5)
    called = threading.Barrier(2, timeout=5)

    @engine.function
    def work(who: str) -> str:
        return who

    def agent(task: str) -> None:
        in_progress.wait()  # both runs' agents are running from here...
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(work, task).result()
        called.wait()  # ...to here

    engine.set_agent(agent).finalize()
    outcomes = {}

    def run(task: str) -> None:
        outcomes[task] = engine(task)

    with pytest.warns(
        UnrecordedCallWarning, match=r"tool \S*work was called from a thread"
    ) as seen:
        threads = [threading.Thread(target=run, args=(task,)) for task in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert len([w for w in seen if w.category is UnrecordedCallWarning]) == 1
    for outcome in outcomes.values():
        assert outcome.status == "miss"
        assert "the agent called no tool of this engine" in outcome.reason


def test_a_run_whose_agent_called_no_decorated_tool_says_so(engine):
    def list_dir(folder: str) -> list[str]:
        return []

    # The agent (or its framework) holds the function from before it was decorated.
    engine.function(list_dir)
    engine.set_agent(lambda task: list_dir("inbox")).finalize()
    for _ in range(2):
        outcome = engine("file the inbox")
        assert outcome.status == "miss"
        assert outcome.reason.startswith("step 0: nothing has been recorded for this task yet")
        assert "the agent called no tool of this engine" in outcome.reason
