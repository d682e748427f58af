"""Task keys and params: which runs count as the same task, and how params are filled in.

Tiers (see conftest): task keys, and the tags and params a run is refused for, are
settled before any store is read, so those tests run once, in memory
(``memory_engine``); recording and replaying with params runs on every store kind.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import muscle_mem
from muscle_mem import Check, Engine


def recorder(engine):
    """A tool that logs every call it gets, arguments exactly as received."""
    calls = []

    @engine.function()
    def tool(*args, **kwargs):
        calls.append((args, kwargs))

    return tool, calls


def typed(value):
    """A value's structure with its types spelled out, so that ``True`` is not ``1``."""
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [typed(v) for v in value])
    if isinstance(value, dict):
        return ("dict", sorted((repr(typed(k)), repr(typed(v))) for k, v in value.items()))
    return (type(value).__name__, repr(value))


# -- the task key ------------------------------------------------------------------


def test_tags_are_an_unordered_set(memory_engine):
    key = memory_engine.task_key
    assert key("t", tags=["a", "b"]) == key("t", tags=["b", "a"])
    assert key("t", tags=["a", "b"]) == key("t", tags=("b", "a", "a"))
    assert key("t", tags=["a", "b"]) == key("t", tags={"a", "b"})
    assert key("t", tags=[]) == key("t")
    assert key("t", tags=["a", "b"]) != key("t", tags=["a"])
    assert key("t", tags=["a", "b"]) != key("t", tags=["a", "c"])
    assert key("t", tags=["a"]) != key("t")


def test_runs_with_the_same_tags_in_another_order_share_the_cache(engine):
    tool, calls = recorder(engine)
    engine.set_agent(lambda task: tool(task))
    assert engine("t", tags=["signup", "eu"]).status == "miss"
    assert engine("t", tags=["eu", "signup"]).status == "hit"
    assert engine("t", tags=["eu"]).status == "miss"
    assert engine("t").status == "miss"
    assert len(calls) == 4


def test_tags_from_a_generator_count(memory_engine):
    assert memory_engine.task_key("t", tags=(t for t in ["a"])) == memory_engine.task_key(
        "t", tags=["a"]
    )


def test_task_arguments_make_the_key(memory_engine):
    key = memory_engine.task_key
    assert key("a") == key("a")
    assert key("a") != key("b")
    assert key("a") != key(task="a")  # positional and keyword arguments differ
    assert key("a", x=1) != key("a", x=2)
    assert key("a", x=1) != key("a", x=True)
    assert key("a", [1, 2]) != key("a", (1, 2))


def test_a_task_is_never_replayed_for_another(engine):
    tool, calls = recorder(engine)
    engine.set_agent(lambda task: tool(task))
    engine("one")
    assert engine("two").status == "miss"
    assert [c[0] for c in calls] == [("one",), ("two",)]


def test_string_param_in_the_task_is_replaced_by_its_name(memory_engine):
    key = memory_engine.task_key
    john = key("fill the form for John", params={"name": "John"})
    assert john == key("fill the form for Jane", params={"name": "Jane"})
    assert john == key("fill the form for Jane Doe", params={"name": "Jane Doe"})
    assert john != key("fill the form for John")  # without the param it is literal text
    assert john != key("fill the form for John", params={"who": "John"})  # the name counts
    assert key("fill for John", params={"name": "Jane"}) != key(
        "fill for Jane", params={"name": "Jane"}
    )


def test_params_in_the_task_are_replaced_inside_nested_arguments_and_kwargs(memory_engine):
    def key(name):
        return memory_engine.task_key(
            ["greet", {"to": f"Hi {name}", "cc": (name,)}],
            who=name,
            params={"name": name},
        )

    assert key("John") == key("Jane")
    assert key("John") != memory_engine.task_key(
        ["greet", {"to": "Hi John", "cc": ("John",)}], who="John"
    )


@pytest.mark.parametrize(
    ("same", "first", "second"),
    [
        (True, ("add 2", {"n": 2}), ("add 1", {"n": 1})),
        (True, ("add 2 and 2", {"n": 2}), ("add 7 and 7", {"n": 7})),
        (True, ("add 2.", {"n": 2}), ("add 1.", {"n": 1})),  # a full stop ends the word
        (True, ("scale by 1.5", {"x": 1.5}), ("scale by 0.25", {"x": 0.25})),
        (True, ("minus -3 now", {"n": -3}), ("minus -4 now", {"n": -4})),
        # Not a whole word: "add 12" with n=2 must not read "add 1{n}" ...
        (False, ("add 12", {"n": 2}), ("add 13", {"n": 3})),
        # ... nor "add {n}2" with n=1.
        (False, ("add 12", {"n": 1}), ("add 52", {"n": 5})),
        (False, ("add 2.5", {"n": 2}), ("add 3.5", {"n": 3})),
        (False, ("v2", {"n": 2}), ("v3", {"n": 3})),
        # The text of a non-matching number is kept as it is.
        (True, ("add 12", {"n": 2}), ("add 12", {})),
        (True, ("add 2.5", {"n": 2}), ("add 2.5", {})),
    ],
)
def test_a_number_param_in_the_task_is_replaced_only_as_a_whole_word(
    memory_engine, same, first, second
):
    key = memory_engine.task_key
    assert (key(first[0], params=first[1]) == key(second[0], params=second[1])) is same


def test_a_whole_task_argument_equal_to_a_number_param_is_its_name(memory_engine):
    key = memory_engine.task_key
    assert key(2, params={"n": 2}) == key(3, params={"n": 3})
    assert key(True, params={"n": 1}) != key(3, params={"n": 3})  # True is not 1
    assert key(1.0, params={"n": 1}) != key(3, params={"n": 3})  # 1.0 is not 1


def test_a_number_param_task_replays_with_the_new_number(engine):
    received = []

    @engine.function()
    def add(n):
        received.append(n)

    engine.set_agent(lambda task: add(int(task.split()[1])))
    assert engine("add 2", params={"n": 2}).status == "miss"
    outcome = engine("add 1", params={"n": 1})
    assert outcome.status == "hit"
    assert engine("add 12", params={"n": 2}).status == "miss"  # another task
    assert received == [2, 1, 12]


def test_match_task_false_keys_by_tags_alone():
    engine = Engine(match_task=False)  # task keys only: in memory, once
    key = engine.task_key
    assert key("a") == key("b", x=1) == key() == key("a", params={"n": 1})
    assert key("a", tags=["t"]) == key("b", tags=["t"])
    assert key("a", tags=["t"]) != key("a")
    assert key("a", tags=["t"]) != key("a", tags=["u"])
    assert Engine().task_key("a") != Engine().task_key("b")


def test_match_task_false_replays_one_task_for_another(engines):
    engine = engines(match_task=False)
    tool, calls = recorder(engine)
    agent_calls = []

    def agent(task):
        agent_calls.append(task)
        tool("fixed")

    engine.set_agent(agent)
    assert engine("first task").status == "miss"
    assert engine("another task entirely").status == "hit"
    assert engine("another task", tags=["x"]).status == "miss"
    assert agent_calls == ["first task", "another task"]
    assert calls == [(("fixed",), {})] * 3


# -- params in tool arguments ----------------------------------------------------


def test_params_match_by_type_and_value_so_true_is_not_one(engine):
    tool, calls = recorder(engine)
    engine.set_agent(lambda task: tool(True, 1, 1.0, flag=True, count=1))
    engine("t", params={"x": 1})
    outcome = engine("t", params={"x": 5})
    assert outcome.status == "hit"
    # Only the int 1 stood for the param; True and 1.0 were recorded literally.
    assert typed(calls[-1]) == typed(((True, 5, 1.0), {"flag": True, "count": 5}))


@pytest.mark.parametrize(
    ("old", "new", "args", "expected"),
    [
        (1.0, 2.5, (1, 1.0, True), (1, 2.5, True)),
        (True, False, (1, True, 1.0), (1, False, 1.0)),
        (0, 9, (False, 0, 0.0), (False, 9, 0.0)),
        ([1, 2], [3], ([1, 2], (1, 2)), ([3], (1, 2))),  # a tuple is not a list
        ((1, 2), (7,), ([1, 2], (1, 2)), ([1, 2], (7,))),
        ({"a": 1}, {"b": 2}, ({"a": 1}, {"a": True}), ({"b": 2}, {"a": True})),
        (None, "given", (None, "None"), ("given", "None")),
    ],
)
def test_params_of_other_types_match_by_type_and_value(engine, old, new, args, expected):
    tool, calls = recorder(engine)
    engine.set_agent(lambda task: tool(*args))
    engine("t", params={"x": old})
    assert engine("t", params={"x": new}).status == "hit"
    assert typed(calls[-1][0]) == typed(expected)


def greeter(engine):
    """An agent that greets the name at the end of its task, and what its tool got."""
    received = []

    @engine.function()
    def send(text):
        received.append(text)

    def agent(task):
        name = task.removeprefix("greet ")
        send(f"Hello {name}! Bye {name}.")

    engine.set_agent(agent)
    return received


def test_replay_fills_a_string_param_inside_a_string(engine):
    received = greeter(engine)
    assert engine("greet John", params={"name": "John"}).status == "miss"
    outcome = engine("greet Jane", params={"name": "Jane"})
    assert (outcome.status, outcome.replayed) == ("hit", 1)
    assert engine("greet John", params={"name": "John"}).status == "hit"
    assert received == ["Hello John! Bye John.", "Hello Jane! Bye Jane.", "Hello John! Bye John."]
    # The cache holds a reference to the param, never its value.
    tree = engine.store.tree(engine.task_key("greet John", params={"name": "John"}))
    assert len(tree) == 1
    assert all(b"John" not in node.step.call for node in tree if node.step is not None)


def test_replay_fills_a_param_given_only_in_params(engine):
    """The task text need not contain the param: it keys alike, and replay fills it."""
    tool, calls = recorder(engine)
    who = ["John"]
    engine.set_agent(lambda task: tool(who[0], to=f"{who[0]}@example.com"))
    engine("send the mail", params={"name": "John"})
    who[0] = "never used"
    outcome = engine("send the mail", params={"name": "Jane"})
    assert outcome.status == "hit"
    assert calls[-1] == (("Jane",), {"to": "Jane@example.com"})


def test_a_string_param_fills_a_string_with_a_value_of_another_type(engine):
    tool, calls = recorder(engine)
    engine.set_agent(lambda task: tool("order #A17 shipped"))
    engine("t", params={"order": "A17"})
    assert engine("t", params={"order": 42}).status == "hit"
    assert calls[-1] == (("order #42 shipped",), {})


def test_a_string_param_glued_into_a_longer_word_stays_literal(engine):
    """As Templater documents: name="Jo" stands in "Hello Jo!" but not in "Join"."""
    tool, calls = recorder(engine)
    engine.set_agent(lambda task: tool("Hello Jo!", "Join", label="Jo-Jo"))
    engine("t", params={"name": "Jo"})
    assert engine("t", params={"name": "Al"}).status == "hit"
    assert calls[-1] == (("Hello Al!", "Join"), {"label": "Al-Al"})


@pytest.mark.parametrize(
    "params",
    [
        {"first": "John", "full": "John Smith"},
        {"full": "John Smith", "first": "John"},
    ],
)
def test_the_longest_param_value_is_replaced_first(engine, params):
    tool, calls = recorder(engine)
    engine.set_agent(lambda task: tool("Dear John Smith, or may I say John?"))
    engine("t", params=params)
    outcome = engine("t", params={"first": "Jo", "full": "Jo Doe"})
    assert outcome.status == "hit"
    assert calls[-1] == (("Dear Jo Doe, or may I say Jo?",), {})


def test_params_are_replaced_in_nested_containers_positional_and_keyword(engine):
    tool, calls = recorder(engine)

    def agent(task):
        tool(
            ["John", ("x", "Hi John")],
            {"who": {"name": "John", "n": [7, "7"]}, 3: ("John",)},
            to=("John", [None, "John!"]),
            meta={"count": 7, "ids": [[7]]},
        )

    engine.set_agent(agent)
    engine("t", params={"name": "John", "count": 7})
    assert engine("t", params={"name": "Jane", "count": 8}).status == "hit"
    expected = (
        (
            ["Jane", ("x", "Hi Jane")],
            {"who": {"name": "Jane", "n": [8, "7"]}, 3: ("Jane",)},
        ),
        {"to": ("Jane", [None, "Jane!"]), "meta": {"count": 8, "ids": [[8]]}},
    )
    assert typed(calls[-1]) == typed(expected)


def test_when_two_params_share_a_value_replay_needs_them_to_agree(engine):
    tool, calls = recorder(engine)
    engine.set_agent(lambda task: tool("x", "<x>", 7))
    engine("t", params={"a": "x", "b": "x", "i": 7, "j": 7})
    # Which of two equal params the agent used can't be known: either will do while
    # they agree, and when they don't, the recorded path says nothing.
    assert engine("t", params={"a": "A", "b": "A", "i": 1, "j": 1}).status == "hit"
    assert calls[-1] == (("A", "<A>", 1), {})
    outcome = engine("t", params={"a": "A", "b": "B", "i": 1, "j": 1})
    assert outcome.status == "miss"
    assert "param 'a' and param 'b'" in outcome.reason and "disagree" in outcome.reason


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (["a", "b", "i", "j"], ("A", "<A>", 1)),
        (["b", "a", "j", "i"], ("B", "<B>", 2)),
    ],
)
def test_without_provenance_the_first_of_two_equal_params_wins(engine, order, expected):
    engine.provenance = False
    tool, calls = recorder(engine)
    engine.set_agent(lambda task: tool("x", "<x>", 7))
    recorded = {"a": "x", "b": "x", "i": 7, "j": 7}
    engine("t", params={name: recorded[name] for name in order})
    replayed = {"a": "A", "b": "B", "i": 1, "j": 2}
    assert engine("t", params=replayed).status == "hit"
    assert calls[-1] == (expected, {})


# One store for the test (store_url), and a new engine on it for each example.
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    old=st.one_of(st.integers(), st.text(max_size=8), st.booleans(), st.floats(allow_nan=False)),
    new=st.one_of(st.integers(), st.text(max_size=8), st.none(), st.lists(st.integers())),
)
def test_any_argument_equal_to_a_param_replays_with_the_new_value(store_url, old, new):
    with Engine() as engine:
        tool, calls = recorder(engine)
        # No task text: a new value that happens to stand in it would change the key.
        engine.set_agent(lambda: tool(old, key=[old]))
        engine(params={"p": old})
        assert engine(params={"p": new}).status == "hit"
        assert typed(calls[-1]) == typed(((new,), {"key": [new]}))


@pytest.mark.parametrize("params", [None, {}, {"other": "x"}])
def test_a_recorded_step_needing_a_missing_param_is_a_miss(engine, params):
    tool, calls = recorder(engine)
    agent_calls = []

    def agent(task):
        agent_calls.append(task)
        tool("Hello John!")

    engine.set_agent(agent)
    engine("greet", params={"name": "John"})
    # The same key (the task does not contain the value), but no "name" to fill in.
    outcome = engine("greet", params=params)
    assert (outcome.status, outcome.replayed, outcome.diverged_at) == ("miss", 0, None)
    # With a param of its own, what stops replay first is that the path has no place
    # for it: nothing was recorded for that request.
    missing = "'other'" if params else "'name'"
    assert missing in outcome.reason and "param" in outcome.reason
    assert agent_calls == ["greet", "greet"]  # the agent ran: nothing was replayed
    assert calls == [(("Hello John!",), {})] * 2


def test_a_later_step_needing_a_missing_param_hands_off(engine):
    calls = []

    @engine.function(pre_check=Check(lambda: "env"))
    def first():
        calls.append("first")

    @engine.function()
    def second(value):
        calls.append(value)

    def agent(task):
        if muscle_mem.handoff() is None:
            first()
        second("secret")

    engine.set_agent(agent)
    engine("t", params={"token": "secret"})
    outcome = engine("t")
    assert (outcome.status, outcome.replayed, outcome.diverged_at) == ("handoff", 1, 1)
    assert "'token'" in outcome.reason
    assert calls == ["first", "secret", "first", "secret"]


# -- misuse --------------------------------------------------------------------------


@pytest.mark.parametrize("params", ["name=John", [("name", "John")], 3, {"John"}])
def test_params_that_are_not_a_dict_say_what_to_pass(memory_engine, params):
    tool, calls = recorder(memory_engine)
    memory_engine.set_agent(lambda task: tool(task))
    with pytest.raises(muscle_mem.ConfigurationError, match=r"params must be a dict"):
        memory_engine("t", params=params)
    assert calls == []


def test_param_names_that_are_not_strings_are_a_configuration_error(memory_engine):
    tool, calls = recorder(memory_engine)
    memory_engine.set_agent(lambda task: tool(task))
    with pytest.raises(muscle_mem.ConfigurationError, match="str"):
        memory_engine("t", params={1: "John"})
    assert calls == []


def test_task_key_checks_params_like_a_run(memory_engine):
    with pytest.raises(muscle_mem.ConfigurationError, match=r"params must be a dict"):
        memory_engine.task_key("t", params="ab")


@pytest.mark.parametrize("tags", ["signup", [1], ["a", None], b"ab", [["a"]]])
def test_tags_that_are_not_strings_say_what_to_pass(memory_engine, tags):
    tool, calls = recorder(memory_engine)
    memory_engine.set_agent(lambda task: tool(task))
    with pytest.raises(muscle_mem.ConfigurationError, match=r"tags=\['signup'\]"):
        memory_engine("t", tags=tags)
    with pytest.raises(muscle_mem.ConfigurationError, match=r"list of strings"):
        memory_engine.task_key("t", tags=tags)
    assert calls == []


def test_tags_that_are_not_iterable_say_what_to_pass(memory_engine):
    memory_engine.set_agent(lambda task: None)
    with pytest.raises(muscle_mem.ConfigurationError, match=r"list of strings"):
        memory_engine("t", tags=123)
