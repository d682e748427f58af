"""Tools: code identity, nameless tools, nesting, outside a run, async, and silence.

Runs on every store kind (see conftest), but for code identity across "processes",
which builds its engines on one shared ``MemoryStore`` and runs once.
"""

import asyncio
import importlib.util
import textwrap

import pytest

import muscle_mem
from muscle_mem import Check, ConfigurationError, Engine, MemoryStore

MODULE = "mm_tool_under_test"

V1 = """
LOG = []


def act(x):
    LOG.append(("v1", x))
    return x + 1
"""

V1_REFORMATTED = """
LOG = []
def act( x ):   # the same tool, laid out differently
    # with a comment
    LOG.append(
        ("v1", x)
    )
    return (x + 1)
"""

V2 = """
LOG = []


def act(x):
    LOG.append(("v2", x))
    return x + 1
"""


def load(tmp_path, version, source):
    """A module named MODULE from a source file of its own, so `act` has readable source."""
    path = tmp_path / version / f"{MODULE}.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(MODULE, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def execute(source):
    """A module-like namespace whose functions have no readable source (like a REPL's)."""
    namespace = {"__name__": MODULE}
    exec(compile(textwrap.dedent(source), "<input>", "exec"), namespace)
    return namespace


def engine_with(store, act):
    engine = Engine(store=store)
    tool = engine.function(act)
    engine.set_agent(lambda task: tool(1))
    return engine, tool


def short(name):
    return name.rsplit(".", 1)[-1]


# -- code identity ----------------------------------------------------------------------


@pytest.mark.parametrize("source", ["file", "exec"])
def test_a_tool_whose_code_changed_is_not_replayed(tmp_path, source):
    if source == "file":
        old, new = load(tmp_path, "v1", V1), load(tmp_path, "v2", V2)
        old_act, new_act, old_log, new_log = old.act, new.act, old.LOG, new.LOG
    else:
        old, new = execute(V1), execute(V2)
        old_act, new_act, old_log, new_log = old["act"], new["act"], old["LOG"], new["LOG"]
    store = MemoryStore()
    engine, old_tool = engine_with(store, old_act)
    engine("t")
    assert engine("t").hit
    assert old_log == [("v1", 1)] * 2

    engine, new_tool = engine_with(store, new_act)  # a new process with the new code
    assert new_tool.__muscle_mem_tool__.name == old_tool.__muscle_mem_tool__.name
    assert new_tool.__muscle_mem_tool__.code != old_tool.__muscle_mem_tool__.code
    outcome = engine("t")
    assert (outcome.status, outcome.result) == ("miss", 2)
    assert "changed" in outcome.reason and "act" in outcome.reason
    assert old_log == [("v1", 1)] * 2  # the old code was not run
    assert new_log == [("v2", 1)]
    assert engine("t").hit  # the new code's own recording
    assert new_log == [("v2", 1)] * 2


def test_a_tool_redefined_in_the_same_engine_is_not_replayed(engines):
    engine = engines()
    current = {}

    def register(source):
        current["tool"] = engine.function(execute(source)["act"])

    register(V1)
    engine.set_agent(lambda task: current["tool"](1))
    engine("t")
    assert engine("t").hit
    register(V2)  # a notebook cell run again with new code
    outcome = engine("t")
    assert outcome.status == "miss" and "changed" in outcome.reason


def test_a_changed_tool_after_the_first_step_hands_off_there(tmp_path):
    old, new = load(tmp_path, "v1", V1), load(tmp_path, "v2", V2)
    store = MemoryStore()

    def build(act):
        engine = Engine(store=store)

        @engine.function()
        def first():
            pass

        tool = engine.function(act)

        def agent(task):
            if muscle_mem.handoff() is None:
                first()
            tool(1)

        engine.set_agent(agent)
        return engine

    build(old.act)("t")
    engine = build(new.act)
    outcome = engine("t")
    assert (outcome.status, outcome.replayed, outcome.diverged_at) == ("handoff", 1, 1)
    assert "changed" in outcome.reason
    assert new.LOG == [("v2", 1)] and old.LOG == [("v1", 1)]
    assert engine("t").replayed == 2


def test_formatting_and_comments_do_not_change_a_tools_code(tmp_path):
    old, same = load(tmp_path, "v1", V1), load(tmp_path, "v1b", V1_REFORMATTED)
    store = MemoryStore()
    engine, old_tool = engine_with(store, old.act)
    engine("t")
    engine, same_tool = engine_with(store, same.act)
    assert same_tool.__muscle_mem_tool__.code == old_tool.__muscle_mem_tool__.code
    assert engine("t").hit
    assert same.LOG == [("v1", 1)]  # replayed with the reformatted (equivalent) code


def build_checked(store, check, log):
    engine = Engine(store=store)

    @engine.function(pre_check=check)
    def act():
        log.append("act")

    engine.set_agent(lambda task: act())
    return engine, act


ENV = {"page": "v1"}


@pytest.mark.parametrize(
    ("old", "new", "hit"),
    [
        (Check(lambda: ENV["page"]), Check(lambda: ENV["page"]), True),
        (Check(lambda: ENV["page"]), Check(lambda: str(ENV["page"])), False),
        (Check(lambda: ENV["page"]), Check(lambda: ENV["page"], lambda a, b: a == b), False),
        (
            Check(lambda: ENV["page"], lambda a, b: a == b),
            Check(lambda: ENV["page"], lambda a, b: b == a),
            False,
        ),
        (
            Check(lambda: ENV["page"], lambda a, b: 1.0, threshold=0.5),
            Check(lambda: ENV["page"], lambda a, b: 1.0, threshold=0.9),
            False,
        ),
    ],
    ids=["same code", "capture", "compare added", "compare", "threshold"],
)
def test_changing_a_checks_code_invalidates_its_steps(old, new, hit):
    store, log = MemoryStore(), []
    build_checked(store, old, log)[0]("t")
    engine, _ = build_checked(store, new, log)
    outcome = engine("t")
    assert outcome.hit is hit
    if not hit:
        assert outcome.status == "miss" and "changed" in outcome.reason


CHECK_ON_THE_DECORATOR_LINE = """
from muscle_mem import Check

ENV = {"a": 1, "b": 1}


def register(engine):
    @engine.function(name="act", pre_check=Check(lambda: ENV["%s"]))
    def act():
        return None

    return act
"""


def test_a_check_written_on_the_decorator_line_counts_as_its_own_code(tmp_path):
    # Its lambda's source reads as the whole decorated function, whose fingerprint
    # leaves decorators out: the check's own code must be what is hashed.
    store = MemoryStore()
    for version, key in (("v1", "a"), ("v2", "b")):
        engine = Engine(store=store)
        act = load(tmp_path, version, CHECK_ON_THE_DECORATOR_LINE % key).register(engine)
        engine.set_agent(lambda task, act=act: act())
        outcome = engine("t")
    assert outcome.status == "miss" and "changed" in outcome.reason


def test_a_capture_reading_another_variable_invalidates_its_steps():
    class Page:
        def __init__(self, title):
            self.title = title

    live, staging = Page("home"), Page("home")
    store, log = MemoryStore(), []
    build_checked(store, Check(lambda: live.title), log)[0]("t")
    engine, _ = build_checked(store, Check(lambda: staging.title), log)
    assert engine("t").status == "miss"


def test_lambda_and_builtin_tools_work_keyed_by_name(engine):
    env = {"page": "v1"}
    seen = []
    double = engine.function(lambda x: x * 2)
    length = engine.function(len)
    assert "<lambda>" in double.__muscle_mem_tool__.name
    assert length.__muscle_mem_tool__.name == "builtins.len"

    @engine.function(pre_check=Check(lambda a, b: env["page"]))
    def report(a, b):
        pass

    def agent(task):
        seen.append(muscle_mem.handoff())
        if seen[-1] is None:
            report(double(21), length("abc"))

    engine.set_agent(agent)
    engine("t")
    assert engine("t").replayed == 3
    env["page"] = "v2"
    outcome = engine("t")  # double and len are replayed; report's check fails
    assert (outcome.status, outcome.replayed, outcome.diverged_at) == ("handoff", 2, 2)
    steps = seen[-1].steps
    assert [(s.tool, s.args, s.result) for s in steps] == [
        (double.__muscle_mem_tool__.name, (21,), 42),
        ("builtins.len", ("abc",), 3),
    ]


def test_a_tool_from_source_that_cannot_be_read_works(engines):
    engine = engines()
    namespace = execute(V1)
    tool = engine.function(namespace["act"])
    assert engine.function(eval("lambda s: s.upper()")).__muscle_mem_tool__.code
    engine.set_agent(lambda task: tool(1))
    engine("t")
    assert engine("t").hit
    assert namespace["LOG"] == [("v1", 1)] * 2


def test_two_lambda_tools_in_one_engine_both_replay(engine):
    double = engine.function(lambda x: x * 2)
    shout = engine.function(lambda s: s.upper())
    engine.set_agent(lambda task: (double(1), shout("a")))
    engine("t")
    assert engine("t").hit


# -- nesting, and calls outside a run ---------------------------------------------------


def test_a_tool_called_inside_another_tool_is_part_of_the_outer_call(engine):
    log, captured = [], []

    @engine.function(pre_check=Check(lambda x: captured.append(("inner", x)) or "env"))
    def inner(x):
        log.append(("inner", x))
        return x + 1

    @engine.function(pre_check=Check(lambda x: captured.append(("outer", x)) or "env"))
    def outer(x):
        log.append(("outer", x))
        return inner(x) * 10

    engine.set_agent(lambda task: outer(1))
    assert engine("t").result == 20
    tree = engine.store.tree(engine.task_key("t"))
    assert [short(node.step.tool) for node in tree if node.step is not None] == ["outer"]
    outcome = engine("t")
    assert (outcome.status, outcome.replayed) == ("hit", 1)
    assert log == [("outer", 1), ("inner", 1)] * 2  # replaying outer ran inner once
    assert captured == [("outer", 1)] * 2  # inner's check is not taken inside outer


def test_an_async_tool_awaited_inside_another_is_part_of_the_outer_call(engine):
    log = []

    @engine.function()
    async def inner():
        log.append("inner")

    @engine.function()
    async def outer():
        await inner()
        log.append("outer")

    async def agent(task):
        await outer()

    engine.set_agent(agent)

    async def main():
        return [await engine.arun("t"), await engine.arun("t")]

    first, second = asyncio.run(main())
    assert (first.status, second.status, second.replayed) == ("miss", "hit", 1)
    assert log == ["inner", "outer"] * 2


def test_a_tool_called_by_a_capture_is_not_a_step(engine):
    @engine.function()
    def read_page():
        return "page"

    @engine.function(pre_check=Check(lambda: read_page()))
    def act():
        pass

    engine.set_agent(lambda task: act())
    engine("t")
    tree = engine.store.tree(engine.task_key("t"))
    assert [short(node.step.tool) for node in tree if node.step is not None] == ["act"]
    assert engine("t").replayed == 1


def test_a_tool_outside_a_run_just_runs_without_its_checks(engine):
    captured = []

    @engine.function(pre_check=Check(lambda x: captured.append(x)))
    def sync_tool(x):
        return x + 1

    @engine.function(pre_check=Check(lambda x: captured.append(x)))
    async def async_tool(x):
        return x * 2

    engine.set_agent(lambda task: sync_tool(1))
    assert sync_tool(1) == 2
    assert asyncio.run(async_tool(3)) == 6
    assert captured == [] and engine.store.runs() == []


def test_a_tool_of_another_engine_is_not_recorded_by_this_one(engines):
    mine, theirs = engines(), engines(store="memory://")  # two caches, not one shared
    log = []

    @theirs.function()
    def foreign():
        log.append("foreign")

    @mine.function()
    def own():
        pass

    mine.set_agent(lambda task: (foreign(), own()))
    theirs.set_agent(lambda task: None)
    mine("t")
    tree = mine.store.tree(mine.task_key("t"))
    assert [short(node.step.tool) for node in tree if node.step is not None] == ["own"]
    assert mine("t").hit
    assert log == ["foreign"]  # replay runs only what was recorded
    assert theirs.store.runs() == []


# -- async ------------------------------------------------------------------------------


def async_fetcher(engine, calls):
    @engine.function(pre_check=Check(lambda x: "env"))
    async def fetch(x):
        await asyncio.sleep(0)
        calls.append(x)
        return x * 2

    return fetch


def test_sync_engine_records_and_replays_async_tools(engine):
    calls = []
    fetch = async_fetcher(engine, calls)
    engine.set_agent(lambda task: asyncio.run(fetch(21)))
    assert (engine("t").status, calls) == ("miss", [21])
    assert (engine("t").status, calls) == ("hit", [21, 21])

    async def main():
        return await engine.arun("t")

    assert asyncio.run(main()).hit and calls == [21] * 3


def test_sync_engine_replays_async_tools_while_an_event_loop_runs(engine):
    calls = []
    fetch = async_fetcher(engine, calls)

    async def agent(task):
        return await fetch(1)

    engine.set_agent(agent)

    async def main():
        first = await engine.arun("t")
        second = engine("t")  # sync call from async code: the engine must not deadlock
        return first, second

    first, second = asyncio.run(main())
    assert (first.status, first.result, second.status) == ("miss", 2, "hit")
    assert calls == [1, 1]


def test_async_agent_handoff_with_async_tools(engine):
    env = {"page": "v1"}
    seen = []

    @engine.function()
    async def login():
        await asyncio.sleep(0)

    @engine.function(pre_check=Check(lambda: env["page"]))
    async def buy():
        await asyncio.sleep(0)
        return "bought"

    @engine.function()
    def close_popup():  # a sync tool in an async agent
        pass

    async def agent(task):
        handoff = muscle_mem.handoff()
        seen.append(handoff)
        if handoff is None:
            await login()
        if env["page"] != "v1":
            close_popup()
        return await buy()

    engine.set_agent(agent)

    async def main():
        outcomes = [await engine.arun("t")]
        env["page"] = "v2"
        outcomes += [await engine.arun("t"), await engine.arun("t")]
        return outcomes

    first, handed, again = asyncio.run(main())
    assert (first.status, first.result) == ("miss", "bought")
    assert (handed.status, handed.replayed, handed.diverged_at) == ("handoff", 1, 1)
    assert [short(s.tool) for s in seen[-1].steps] == ["login"]
    assert (again.status, again.replayed) == ("hit", 3)


def test_sync_engine_with_an_async_agent_runs_and_records_nothing(engine):
    ran = []

    @engine.function()
    async def tool():
        pass

    async def agent(task):
        ran.append(task)
        await tool()

    engine.set_agent(agent)
    with pytest.raises(ConfigurationError, match="arun"):
        engine("t")
    assert ran == []
    assert len(engine.store.tree(engine.task_key("t"))) == 0


def test_nothing_is_printed(engines, engine, capsys):
    calls = []
    fetch = async_fetcher(engine, calls)
    env = {"page": "v1"}

    @engine.function(pre_check=Check(lambda: env["page"]))
    def act():
        pass

    async def agent(task):
        if muscle_mem.handoff() is None:
            await fetch(1)
        act()

    engine.set_agent(agent)

    async def main():
        statuses = []
        for page in ("v1", "v1", "v2", "v2"):
            env["page"] = page
            statuses.append((await engine.arun("t")).status)
        return statuses

    assert asyncio.run(main()) == ["miss", "hit", "handoff", "hit"]
    strict = engines(on_divergence="raise")
    strict_act = strict.function(pre_check=Check(lambda: env["page"]))(lambda: None)
    first = strict.function(len)
    strict.set_agent(lambda task: (first("x"), strict_act()))
    strict("t")
    env["page"] = "v3"
    with pytest.raises(muscle_mem.DivergenceError):
        strict("t")
    assert capsys.readouterr() == ("", "")


def test_sensitive_names_are_read_once_and_checked(engine):
    @engine.function(sensitive=(name for name in ["password"]))  # a generator: read once
    def log_in(user, password):
        pass

    assert log_in.__muscle_mem_tool__.sensitive == ("password",)
    with pytest.raises(muscle_mem.ConfigurationError, match="list of argument names"):
        engine.function(sensitive="password")
    with pytest.raises(muscle_mem.ConfigurationError, match="'pwd', not arguments of"):

        @engine.function(sensitive=["pwd"])
        def other(password):
            pass


def test_fingerprints_do_not_keep_a_tool_or_its_closure_alive():
    import gc
    import weakref

    class Big:
        pass

    refs = []

    def make() -> None:
        engine = Engine()
        big = Big()
        refs.append(weakref.ref(big))

        @engine.function(pre_check=Check(lambda: big))
        def tool() -> None:
            return None

        engine.close()

    for _ in range(20):
        make()
    gc.collect()
    assert sum(ref() is not None for ref in refs) == 0
