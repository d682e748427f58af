"""The original muscle-mem README as an API contract: each of its examples, run unchanged.

Every test below is one README example (or one README section), with the README's code
kept as written. What the README says happens is asserted: ``assert engine(...)`` is a
cache hit, ``assert not engine(...)`` a miss; prints are checked through ``capsys``.
Where an example is a fragment (``your_agent``, ``T``, ``time``), the minimal surrounding
definitions are supplied and marked as such. The README's sleeps are replaced by a fake
clock that only this module's ``time`` name sees, so no test sleeps or measures time.

The README's ``Engine()`` is written ``engines()`` here: the same engine, on this test's
store (``$MUSCLE_MEM_STORE``), closed at the end of the test. So each example runs on
every store kind (see conftest); those refused before any store is read run once.

The README is the one in /work/shared/seeds/001_a36596c8374187b0.txt; the "Top Level
Parameters" example comes from the later revision of the same upstream README
(pig-dot-dev/muscle-mem), which the seed predates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest

import muscle_mem
from muscle_mem import Check, Engine


class FakeTime:
    """Stands in for the ``time`` module inside the README's code: ``sleep`` moves the
    clock forward instantly, ``time`` reads it."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


@pytest.fixture
def fake_time(monkeypatch) -> FakeTime:
    """Swap this module's ``time`` (used only by the README's code) for a fake clock."""
    fake = FakeTime()
    monkeypatch.setitem(globals(), "time", fake)
    return fake


# -- Engine -------------------------------------------------------------------------------


def test_engine_section_example(engines, capsys):
    engine = engines()

    # Supplied: the README leaves `your_agent` to the reader. A minimal agent with one
    # instrumented tool (finalize() requires at least one tool, see the finalize tests).
    @engine.function()
    def act(task: str):
        print(f"acting on {task}")

    def your_agent(task: str):
        act(task)

    # README, as written:
    engine.set_agent(your_agent).finalize()

    # your agent is independently callable
    your_agent("do some task")

    # the engine gives you the same interface, but with muscle memory
    assert not engine("do some task")
    assert engine("do some task")  # cache hit

    # The agent ran twice (directly, then on the miss); the hit replayed its tool call.
    assert capsys.readouterr().out == "acting on do some task\n" * 3


# -- Tool Instrumentation: Functions ------------------------------------------------------


def test_functions_section_example(engines, capsys):
    engine = engines()

    @engine.function()
    def hello(name: str):
        print(f"hello {name}!")

    hello("world")  # invocation of hello is stored, with arg name="world"
    assert capsys.readouterr().out == "hello world!\n"

    # Supplied: an agent making the same invocation inside an engine run, where tool
    # calls are recorded. The replay on the hit calls hello again with name="world".
    engine.set_agent(lambda task: hello("world")).finalize()
    assert not engine("greet the world")
    assert engine("greet the world")
    assert capsys.readouterr().out == "hello world!\n" * 2


# -- Tool Instrumentation: Methods --------------------------------------------------------


def test_methods_section_example_with_set_context(engines, capsys):
    engine = engines()

    class SomeClient:
        @engine.method()
        def hello(self, name: str):
            print(f"hello {name}!")

    client = SomeClient()

    client.hello("world")  # invocation of SomeClient.hello is stored, with arg name="world"
    assert capsys.readouterr().out == "hello world!\n"

    # Supplied: the README leaves `your_agent` to the reader.
    def your_agent(task: str):
        client.hello("world")

    engine = (
        engine.set_agent(your_agent)
        .set_context(client)  # your client object will be injected as self into SomeClient.hello
        .finalize()
    )
    assert isinstance(engine, Engine)  # the builder chain hands back the engine
    assert not engine("say hello world!")
    assert engine("say hello world!")  # replayed: SomeClient.hello(client, "world")
    assert capsys.readouterr().out == "hello world!\n" * 2


def test_method_replay_injects_the_set_context_object_as_self(engines):
    """README: `self` is omitted from the trajectory, and replay re-injects the object
    given to set_context(); checks attach to @engine.method as to @engine.function."""
    engine = engines()

    class Database:
        def __init__(self, label: str) -> None:
            self.label = label
            self.users = {7: "ann"}
            self.lookups: list[int] = []

        # A capture of a method tool receives `self`, like the method.
        @engine.method(pre_check=Check(lambda self, id: self.users.get(id), lambda a, b: a == b))
        def get_user(self, id: int):
            self.lookups.append(id)
            return self.users[id]

    recording_db = Database("recording")
    engine.set_agent(lambda task: recording_db.get_user(7))
    assert not engine("look up user 7")
    assert recording_db.lookups == [7]

    # A different instance, which was never serialised into the trajectory (nor could
    # be: a plain object is not data), is what the replay calls the method on.
    live_db = Database("live")
    engine.set_context(live_db)
    assert engine("look up user 7")
    assert live_db.lookups == [7]
    assert recording_db.lookups == [7]

    # The method's pre-check reads the injected object's state.
    live_db.users[7] = "bob"
    assert not engine("look up user 7")


# -- finalize -----------------------------------------------------------------------------


def test_finalize_is_optional(engines):
    engine = engines()

    @engine.function()
    def tool():
        pass

    engine.set_agent(lambda task: tool())  # no finalize()
    assert not engine("t")
    assert engine("t")


def test_finalize_without_an_agent_is_a_configuration_error():
    engine = Engine()  # refused before any store is read: in memory, once

    @engine.function()
    def tool():
        pass

    with pytest.raises(muscle_mem.ConfigurationError, match=r"set_agent") as info:
        engine.finalize()
    assert isinstance(info.value, ValueError)
    # Running without an agent fails the same clear way.
    with pytest.raises(muscle_mem.ConfigurationError, match=r"set_agent"):
        engine("t")


def test_finalize_without_tools_is_a_configuration_error():
    engine = Engine().set_agent(lambda task: None)
    with pytest.raises(muscle_mem.ConfigurationError, match=r"@engine\.function") as info:
        engine.finalize()
    assert isinstance(info.value, ValueError)
    assert "no tools" in str(info.value)


def test_finalize_with_method_tools_but_no_context_is_a_configuration_error():
    engine = Engine()

    class SomeClient:
        @engine.method()
        def hello(self, name: str):
            pass

    client = SomeClient()
    engine.set_agent(lambda task: client.hello("world"))
    with pytest.raises(muscle_mem.ConfigurationError, match=r"set_context") as info:
        engine.finalize()
    assert isinstance(info.value, ValueError)
    assert "SomeClient" in str(info.value)
    # Providing the context is exactly what was missing.
    assert engine.set_context(client).finalize() is engine


# -- Check --------------------------------------------------------------------------------


def test_check_takes_capture_then_compare_and_compare_may_return_a_float(engines):
    """README: Check(capture: Callable[P, T], compare: Callable[[T, T], Union[bool, float]])."""
    engine = engines()
    env = {"page": "home", "score": 1.0}

    def capture(name: str) -> str:
        return env["page"]

    def compare(current: str, candidate: str) -> float:
        return env["score"] if current == candidate else 0.0

    check = Check(capture, compare)
    assert (check.capture, check.compare) == (capture, compare)

    @engine.function(pre_check=check)
    def hello(name: str):
        pass

    engine.set_agent(lambda task: hello(task)).finalize()
    assert not engine("erik")
    assert engine("erik")  # a truthy score passes
    env["score"] = 0.0
    assert not engine("erik")  # a zero score fails
    env["score"] = 0.5
    env["page"] = "elsewhere"
    assert not engine("erik")  # compare returns 0.0 for a changed page: fails


def test_check_section_example(engines, fake_time, capsys):
    # Supplied: the README fragment relies on names defined in its combined script.
    engine = engines()

    @dataclass
    class T:
        name: str
        time: float

    # README, as written:
    # our capture implementation, taking params and returning T
    def capture(name: str) -> T:
        now = time.time()
        return T(name=name, time=now)

    # our compare implementation, taking current and candidate T
    def compare(current: T, candidate: T) -> bool:
        # cache is valid if happened within the last 1 second
        diff = current.time - candidate.time
        passed = diff <= 1
        return passed

    # decorate our tool with a precheck
    @engine.function(pre_check=Check(capture, compare))
    def hello(name: str):
        time.sleep(0.1)
        print(f"hello {name}")

    # Supplied: an agent using the tool once, to show the precheck at query time.
    engine.set_agent(lambda name: hello(name)).finalize()
    assert not engine("erik")
    assert engine("erik")  # recorded 0.1s ago: within the second
    time.sleep(1.5)
    assert not engine("erik")  # the precheck rejects the expired snapshot: agent mode
    assert capsys.readouterr().out == "hello erik\n" * 3


def test_post_check_validates_the_environment_after_the_tool_call(engines):
    """README: a Check can run after a tool call as a postcheck."""
    engine = engines()
    env: dict[str, str] = {}

    def capture(value: str) -> str:
        return env["saved"]  # only exists once the tool has run

    def compare(current: str, candidate: str) -> bool:
        return current == candidate

    @engine.function(post_check=Check(capture, compare))
    def save(value: str):
        env["saved"] = env.get("override", value)

    engine.set_agent(lambda task: save("draft")).finalize()
    assert not engine("save it")
    assert engine("save it")
    env["override"] = "something else"  # the tool now leaves a different environment
    outcome = engine("save it")
    assert not outcome
    assert "post-check" in outcome.reason


# -- Putting it all together --------------------------------------------------------------


def test_putting_it_all_together(engines, fake_time, capsys):
    # The README script, as written. Its imports (dataclass, Check, Engine, time) are at
    # the top of this module; `time` is the fake clock, so its sleeps take no time.
    engine = engines()

    # our "environment" features, stored in DB
    @dataclass
    class T:
        name: str
        time: float

    # our capture implementation, taking params and returning T
    def capture(name: str) -> T:
        now = time.time()
        return T(name=name, time=now)

    # our compare implementation, taking current and candidate T
    def compare(current: T, candidate: T) -> bool:
        # cache is valid if happened within the last 1 second
        diff = current.time - candidate.time
        passed = diff <= 1
        return passed

    # decorate our tool with a precheck
    @engine.function(pre_check=Check(capture, compare))
    def hello(name: str):
        time.sleep(0.1)
        print(f"hello {name}")

    # pretend this is your agent
    def agent(name: str):
        for i in range(9):
            hello(name + " + " + str(i))

    engine.set_agent(agent).finalize()

    # Run once
    cache_hit = engine("erik")
    assert not cache_hit

    # Run again
    cache_hit = engine("erik")
    assert cache_hit

    # Break cache with a sleep, then run again
    time.sleep(3)
    cache_hit = engine("erik")
    assert not cache_hit

    # Every run, hit or miss, greeted all nine times; the clock really moved.
    assert capsys.readouterr().out == "".join(f"hello erik + {i}\n" for i in range(9)) * 3
    assert fake_time.slept == pytest.approx(0.9 * 3 + 3)


def test_time_window_hits_refresh_the_matched_snapshot(engines, fake_time):
    """A hit refreshes the snapshot it matched, so back-to-back hits keep hitting long
    after the original recording's second has passed, without growing the cache."""
    engine = engines()

    @dataclass
    class T:
        name: str
        time: float

    def capture(name: str) -> T:
        now = time.time()
        return T(name=name, time=now)

    def compare(current: T, candidate: T) -> bool:
        diff = current.time - candidate.time
        passed = diff <= 1
        return passed

    @engine.function(pre_check=Check(capture, compare))
    def hello(name: str):
        time.sleep(0.1)

    def agent(name: str):
        for i in range(9):
            hello(name + " + " + str(i))

    engine.set_agent(agent).finalize()
    assert not engine("erik")
    recorded_at = time.time()
    # Each run takes 0.9s, so from the third run on, every step is more than a second
    # after its original recording: only the refreshed snapshots can match.
    for _ in range(5):
        assert engine("erik")
    assert time.time() - recorded_at > 4
    tree = engine.store.tree(engine.task_key("erik"))
    assert len(tree) == 9
    assert all(len(node.pre) == 1 for node in tree if node.step is not None)
    # The window still closes: a gap longer than a second after the last hit is a miss.
    time.sleep(3)
    assert not engine("erik")


# -- Top Level Parameters (later revision of the README) ----------------------------------


def test_top_level_parameters_example(engines, capsys):
    # Supplied: an engine, and an agent that types the name it reads from the task.
    engine = engines()

    # README, as written (the tool is called `type`, shadowing the builtin here):
    @engine.function()
    def type(text: str):
        print(text)

    def agent(task: str):
        type(task.split(": ")[1])

    engine.set_agent(agent).finalize()

    # first run stores invocation of type("John"), with dynamic arg `text` mapped to top
    # level param `name`
    assert not engine("fill the form with name: John", params={"name": "John"})

    # second run is a cache hit, using Jane instead of John
    assert engine("fill the form with name: Jane", params={"name": "Jane"})

    assert capsys.readouterr().out == "John\nJane\n"


def test_params_are_the_only_dynamic_arguments(engines, capsys):
    """Arguments not matching a param are static: without params, another name is
    another task, and the recorded call is never replayed with a stale value."""
    engine = engines()

    @engine.function()
    def type(text: str):
        print(text)

    engine.set_agent(lambda task: type(task.split(": ")[1]))
    assert not engine("fill the form with name: John")
    assert not engine("fill the form with name: Jane")
    assert engine("fill the form with name: Jane")
    assert capsys.readouterr().out == "John\nJane\nJane\n"


def test_arguments_merely_containing_a_param_value_inside_a_word_stay_static(engines):
    """README: "Muscle Mem, by default, stores all arguments to a tool call as static
    values", and marks dynamic the arguments that directly match a top level param."""
    engine = engines()
    typed: list[str] = []
    clicked: list[str] = []

    @engine.function()
    def type(text: str):
        typed.append(text)

    @engine.function()
    def click(label: str):
        clicked.append(label)

    def agent(task: str):
        type(task.split(": ")[1])
        click("Join now")  # a fixed button label, unrelated to the name

    engine.set_agent(agent).finalize()
    assert not engine("fill the form with name: Jo", params={"name": "Jo"})
    assert engine("fill the form with name: Al", params={"name": "Al"})
    assert typed == ["Jo", "Al"]
    assert clicked == ["Join now", "Join now"]


# -- engine(task, tags=..., params=...) ---------------------------------------------------


def test_engine_call_is_truthy_exactly_on_a_full_cache_hit(engines):
    engine = engines()
    env = {"step2": "ready"}

    @engine.function(pre_check=Check(lambda field, value: "form", lambda a, b: a == b))
    def fill(field: str, value: str):
        pass

    @engine.function(pre_check=Check(lambda: env["step2"], lambda a, b: a == b))
    def submit():
        pass

    def agent(task: str):
        fill("name", "John")
        submit()

    engine.set_agent(agent).finalize()
    kwargs = {"tags": ["signup"], "params": {"name": "John"}}

    miss = engine("sign up John", **kwargs)
    assert (bool(miss), miss.status) == (False, "miss")

    hit = engine("sign up John", **kwargs)
    assert (bool(hit), hit.status, hit.replayed) == (True, "hit", 2)

    # Replay runs the first step, then the second step's pre-check fails: the agent
    # finishes the task. Something came from cache, but it was no full hit.
    env["step2"] = "changed"
    partial = engine("sign up John", **kwargs)
    assert partial.replayed == 1
    assert (bool(partial), partial.status) == (False, "handoff")


def test_tags_are_part_of_the_cache_key(engines):
    engine = engines()

    @engine.function()
    def tool():
        pass

    engine.set_agent(lambda task: tool()).finalize()
    assert not engine("task", tags=["a", "b"])
    assert engine("task", tags=["b", "a"])  # a set of tags: order does not matter
    assert not engine("task", tags=["c"])
    assert not engine("task")
