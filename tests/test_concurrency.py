"""One Engine, many runs at once: threads and asyncio tasks each record their own run.

Runs on every store kind (see conftest): the runs commit to it side by side.
"""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import muscle_mem
from muscle_mem import Check

THREADS = 8
STEPS = 3


def recorded_args(engine, *args, **kwargs):
    """The (args, kwargs) of each step of a task's tree, in the order they were added."""
    tree = engine.store.tree(engine.task_key(*args, **kwargs))
    return [node.template()[0] for node in tree if node.step is not None]


def test_threads_sharing_an_engine_each_record_their_own_run(engines):
    engine = engines()
    # Every run waits for all the others between its steps, so all of them are half-way
    # through recording at once. The timeout only turns a hang into a failure.
    barrier = threading.Barrier(THREADS, timeout=30)
    local = threading.local()
    log = []

    @engine.function(pre_check=Check(lambda task, i: f"page of {task}"))
    def step(task, i):
        log.append((local.task, task, i))
        return f"{task}:{i}"

    def agent(task):
        results = []
        for i in range(STEPS):
            results.append(step(task, i))
            barrier.wait()
        return results

    engine.set_agent(agent)

    def run(n):
        local.task = f"task {n}"
        return engine(local.task)

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(run, range(THREADS)))
    for n, outcome in enumerate(outcomes):
        assert outcome.status == "miss"
        assert outcome.result == [f"task {n}:{i}" for i in range(STEPS)]
        assert recorded_args(engine, f"task {n}") == [((f"task {n}", i), {}) for i in range(STEPS)]
    assert all(mine == task for mine, task, _ in log)

    log.clear()
    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(run, range(THREADS)))
    assert [(o.status, o.replayed) for o in outcomes] == [("hit", STEPS)] * THREADS
    assert len(log) == THREADS * STEPS
    assert all(mine == task for mine, task, _ in log)  # each thread replayed its own task


def test_threads_recording_one_task_key_with_different_params_share_one_path(engines):
    engine = engines()
    barrier = threading.Barrier(THREADS, timeout=30)
    local = threading.local()
    log = []

    @engine.function(pre_check=Check(lambda text: "form"))
    def type_text(text):
        log.append((local.who, text))

    def agent(task, who):
        type_text(f"Dear {who},")
        barrier.wait()
        type_text(f"regards from {who}")

    engine.set_agent(agent)
    names = [f"user{n}" for n in range(THREADS)]

    def run(who):
        local.who = who
        return engine(f"write to {who}", who, params={"who": who})

    with ThreadPoolExecutor(THREADS) as pool:
        assert {o.status for o in pool.map(run, names)} == {"miss"}
    tree = engine.store.tree(engine.task_key("write to x", "x", params={"who": "x"}))
    assert len(tree) == 2  # everyone recorded the same templated path

    log.clear()
    with ThreadPoolExecutor(THREADS) as pool:
        assert {(o.status, o.replayed) for o in pool.map(run, names)} == {("hit", 2)}
    assert sorted(log) == sorted(
        (who, text) for who in names for text in (f"Dear {who},", f"regards from {who}")
    )


def test_threads_each_see_their_own_handoff(engines):
    engine = engines()
    env = {}
    barrier = threading.Barrier(THREADS, timeout=30)
    seen = {}

    @engine.function(pre_check=Check(lambda task, i: env[(task, i)]))
    def step(task, i):
        pass

    def agent(task):
        handoff = muscle_mem.handoff()
        if handoff is not None:
            seen[task] = handoff
            barrier.wait()  # every handoff is live at once
        for i in range(handoff.at if handoff else 0, STEPS):
            step(task, i)

    engine.set_agent(agent)
    tasks = [f"task {n}" for n in range(THREADS)]
    for task in tasks:
        env.update({(task, i): "v1" for i in range(STEPS)})
        engine(task)

    # Each task's check now fails at a step of its own (never step 0: that is a miss).
    wrong = {task: 1 + n % (STEPS - 1) for n, task in enumerate(tasks)}
    for task, at in wrong.items():
        env[(task, at)] = "v2"
    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(engine, tasks))
    for task, outcome in zip(tasks, outcomes, strict=True):
        assert (outcome.status, outcome.diverged_at) == ("handoff", wrong[task])
        assert seen[task].at == wrong[task]
        assert [s.args for s in seen[task].steps] == [(task, i) for i in range(wrong[task])]
    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(engine, tasks))
    assert [(o.status, o.replayed) for o in outcomes] == [("hit", STEPS)] * THREADS


def test_asyncio_tasks_sharing_an_engine_each_record_their_own_run(engines):
    engine = engines()
    log = []

    @engine.function(pre_check=Check(lambda task, i: f"page of {task}"))
    async def step(task, i):
        await asyncio.sleep(0)
        log.append((task, i))
        await asyncio.sleep(0)
        return i

    async def agent(task):
        total = 0
        for i in range(STEPS):
            total += await step(task, i)
            await asyncio.sleep(0)
        return total

    engine.set_agent(agent)
    tasks = [f"task {n}" for n in range(6)]

    async def all_at_once():
        return await asyncio.gather(*(engine.arun(task) for task in tasks))

    outcomes = asyncio.run(all_at_once())
    assert [(o.status, o.result) for o in outcomes] == [("miss", 3)] * len(tasks)
    assert log[0][0] != log[1][0]  # the runs did interleave
    for task in tasks:
        assert recorded_args(engine, task) == [((task, i), {}) for i in range(STEPS)]

    log.clear()
    outcomes = asyncio.run(all_at_once())
    assert [(o.status, o.replayed) for o in outcomes] == [("hit", STEPS)] * len(tasks)
    assert sorted(log) == sorted((task, i) for task in tasks for i in range(STEPS))


def test_asyncio_tasks_each_see_their_own_handoff(engines):
    engine = engines()
    env = {}
    seen = {}

    @engine.function(pre_check=Check(lambda task, i: env[(task, i)]))
    async def step(task, i):
        await asyncio.sleep(0)

    async def agent(task):
        handoff = muscle_mem.handoff()
        await asyncio.sleep(0)  # let the other runs go on meanwhile
        seen[task] = handoff
        for i in range(handoff.at if handoff else 0, STEPS):
            await step(task, i)

    engine.set_agent(agent)
    tasks = [f"task {n}" for n in range(6)]
    for task in tasks:
        env.update({(task, i): "v1" for i in range(STEPS)})

    async def all_at_once():
        return await asyncio.gather(*(engine.arun(task) for task in tasks))

    asyncio.run(all_at_once())
    wrong = {task: 1 + n % (STEPS - 1) for n, task in enumerate(tasks)}
    for task, at in wrong.items():
        env[(task, at)] = "v2"
    outcomes = asyncio.run(all_at_once())
    for task, outcome in zip(tasks, outcomes, strict=True):
        assert (outcome.status, outcome.diverged_at) == ("handoff", wrong[task])
        assert [s.args for s in seen[task].steps] == [(task, i) for i in range(wrong[task])]
    outcomes = asyncio.run(all_at_once())
    assert [(o.status, o.replayed) for o in outcomes] == [("hit", STEPS)] * len(tasks)
