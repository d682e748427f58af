"""Divergence: the handoff, restart and raise policies, and what each run records.

Runs on every store kind (see conftest), but for the policy's name, checked once.
"""

import logging

import pytest

import muscle_mem
from muscle_mem import Check, ConfigurationError, DivergenceError, Engine, Handoff

TASK = "buy shoes for John"
PARAMS = {"who": "John"}


def short(name):
    return name.rsplit(".", 1)[-1]


def shape(tree):
    return sorted((node.id, len(node.pre), len(node.post), node.terminal) for node in tree)


class Shop:
    """Three steps (log in, search, buy); buy's pre-check reads the page, which can change,
    and a new page has a popup to close first.

    ``agent_steps`` says what the agent does once replay has stopped (under a handoff);
    on a fresh start it does the three steps in order.
    """

    def __init__(self, engine, agent_steps=None):
        self.engine = engine
        self.page = "v1"
        self.log = []
        self.handoffs = []
        self.agent_steps = agent_steps
        shop = self

        @engine.function(pre_check=Check(lambda name, *, remember: "login page"))
        def login(name, *, remember):
            shop.log.append(("login", name))
            return f"token-{name}"

        @engine.function(pre_check=Check(lambda query: "search page"))
        def search(query):
            shop.log.append(("search", query))
            return [query, 2]

        @engine.function(pre_check=Check(lambda item: shop.page))
        def buy(item):
            shop.log.append(("buy", item))
            return "bought"

        @engine.function(pre_check=Check(lambda: shop.page))
        def close_popup():
            shop.log.append(("close_popup",))

        self.login, self.search, self.buy, self.close_popup = login, search, buy, close_popup
        engine.set_agent(self.agent)

    def agent(self, task, who="John"):
        handoff = muscle_mem.handoff()
        self.handoffs.append(handoff)
        if handoff is not None and self.agent_steps is not None:
            return self.agent_steps(self, handoff)
        self.login(who, remember=True)
        self.search(f"shoes for {who}")
        if self.page != "v1":
            self.close_popup()
        self.buy(1)
        return "agent"

    def run(self, who="John"):
        return self.engine(f"buy shoes for {who}", who=who, params={"who": who})

    def tree(self):
        return self.engine.store.tree(self.engine.task_key(TASK, who="John", params=PARAMS))


# -- handoff ----------------------------------------------------------------------------


def carry_on(shop, handoff):
    shop.close_popup()
    shop.buy(1)
    return "carried on"


def test_handoff_gives_the_agent_the_executed_steps_and_where_and_why_replay_stopped(engines):
    shop = Shop(engines(), agent_steps=carry_on)
    assert shop.run().status == "miss"
    assert shop.handoffs == [None]  # a plain miss is no handoff
    shop.page = "v2"
    shop.log.clear()
    outcome = shop.run()
    assert (outcome.status, outcome.replayed, outcome.diverged_at) == ("handoff", 2, 2)
    assert outcome.result == "carried on"
    handoff = shop.handoffs[-1]
    assert isinstance(handoff, Handoff)
    assert [(short(s.tool), s.args, s.kwargs, s.result) for s in handoff.steps] == [
        ("login", ("John",), {"remember": True}, "token-John"),
        ("search", ("shoes for John",), {}, ["shoes for John", 2]),
    ]
    assert handoff.at == 2
    assert isinstance(handoff.reason, str) and handoff.reason == outcome.reason
    assert "buy" in handoff.reason and "pre-check" in handoff.reason
    assert shop.log == [
        ("login", "John"),
        ("search", "shoes for John"),
        ("close_popup",),
        ("buy", 1),
    ]
    assert muscle_mem.handoff() is None  # outside the agent


def test_the_agent_steps_after_a_handoff_become_a_branch_after_the_replayed_prefix(engines):
    shop = Shop(engines(), agent_steps=carry_on)
    shop.run()
    shop.page = "v2"
    shop.run()
    assert len(shop.tree()) == 5  # login, search, buy; and close_popup, buy after search

    shop.log.clear()
    outcome = shop.run()
    assert (outcome.status, outcome.replayed, outcome.diverged_at) == ("hit", 4, None)
    assert shop.log == [
        ("login", "John"),
        ("search", "shoes for John"),
        ("close_popup",),
        ("buy", 1),
    ]
    # The branch is templated like the rest: another customer replays it too.
    shop.log.clear()
    assert shop.run("Ann").replayed == 4
    assert shop.log[:2] == [("login", "Ann"), ("search", "shoes for Ann")]
    # And the old branch is still there for the old page.
    shop.page = "v1"
    outcome = shop.run()
    assert (outcome.status, outcome.replayed) == ("hit", 3)


def test_handoff_steps_include_a_step_whose_post_check_failed(engines):
    engine = engines()
    saved = {"as": "John"}
    seen = []

    @engine.function(post_check=Check(lambda name: saved["as"]))
    def save(name):
        return f"saved {name}"

    @engine.function()
    def fix():
        pass

    def agent(task):
        seen.append(muscle_mem.handoff())
        if seen[-1] is None:
            save("John")
        else:
            fix()

    engine.set_agent(agent)
    engine("t")
    saved["as"] = "Jon"
    outcome = engine("t")
    assert (outcome.status, outcome.replayed, outcome.diverged_at) == ("handoff", 1, 0)
    handoff = seen[-1]
    assert [(short(s.tool), s.args, s.result) for s in handoff.steps] == [
        ("save", ("John",), "saved John")
    ]
    assert handoff.at == 0 and "post-check" in handoff.reason
    assert engine("t").replayed == 2  # save, then the agent's fix: a full hit


# -- restart ----------------------------------------------------------------------------


def test_restart_calls_the_agent_from_scratch_and_records_its_own_path(engines):
    shop = Shop(engines(on_divergence="restart"), agent_steps=carry_on)
    shop.run()
    shop.page = "v2"
    shop.log.clear()
    outcome = shop.run()
    assert (outcome.status, outcome.replayed, outcome.diverged_at) == ("handoff", 2, 2)
    assert outcome.result == "agent"  # the from-scratch agent, not carry_on
    assert shop.handoffs[-1] is None
    assert shop.log == [
        ("login", "John"),  # replayed
        ("search", "shoes for John"),
        ("login", "John"),  # the agent, from the start
        ("search", "shoes for John"),
        ("close_popup",),
        ("buy", 1),
    ]
    # A path from the root (sharing login and search), not appended to the prefix.
    assert len(shop.tree()) == 5

    shop.log.clear()
    outcome = shop.run()
    assert (outcome.status, outcome.replayed) == ("hit", 4)
    assert shop.log[2:] == [("close_popup",), ("buy", 1)]


def test_restart_after_a_tool_raised_at_step_zero_records_a_path_from_the_root(engines):
    engine = engines(on_divergence="restart")
    env = {"broken": False}
    seen = []

    @engine.function()
    def flaky():
        if env["broken"]:
            raise RuntimeError("down")

    @engine.function()
    def fallback():
        pass

    def agent(task):
        seen.append(muscle_mem.handoff())
        if env["broken"]:
            fallback()
        else:
            flaky()

    engine.set_agent(agent)
    engine("t")
    env["broken"] = True
    outcome = engine("t")
    assert (outcome.status, outcome.replayed, outcome.diverged_at) == ("handoff", 0, 0)
    assert "RuntimeError: down" in outcome.reason
    assert seen == [None, None]
    root = engine.store.tree(engine.task_key("t")).root
    assert [short(child.step.tool) for child in root.children] == ["flaky", "fallback"]
    assert all(child.terminal and not child.children for child in root.children)


# -- raise ------------------------------------------------------------------------------


def test_raise_raises_divergence_error_with_the_handoff_and_records_nothing(engines):
    shop = Shop(engines(on_divergence="raise"))
    shop.run()
    before = shape(shop.tree())
    shop.page = "v2"
    for _ in range(2):  # nothing learned: the second run diverges the same way
        shop.handoffs.clear()
        with pytest.raises(DivergenceError) as info:
            shop.run()
        handoff = info.value.handoff
        assert isinstance(handoff, Handoff)
        assert [short(s.tool) for s in handoff.steps] == ["login", "search"]
        assert handoff.at == 2 and "buy" in handoff.reason
        assert shop.handoffs == []  # the agent was not called
        assert shape(shop.tree()) == before
        assert shop.engine.store.runs()[-1].status == "error"
        assert shop.engine.store.runs()[-1].recorded == 0
    assert isinstance(info.value, muscle_mem.MuscleMemError)
    assert "step 2" in str(info.value)


def test_raise_still_calls_the_agent_on_a_plain_miss(engines):
    engine = engines(on_divergence="raise")
    env = {"page": "v1"}

    @engine.function(pre_check=Check(lambda: env["page"]))
    def act():
        pass

    engine.set_agent(lambda task: act() or "agent")
    engine("t")
    env["page"] = "v2"  # a pre-check failing at step 0 is a miss, not a divergence
    outcome = engine("t")
    assert (outcome.status, outcome.result, outcome.diverged_at) == ("miss", "agent", None)
    assert engine("t").hit


def test_raise_when_a_replayed_tool_raises_at_step_zero(engines):
    engine = engines(on_divergence="raise")
    env = {"broken": False}

    @engine.function()
    def flaky():
        if env["broken"]:
            raise RuntimeError("down")

    engine.set_agent(lambda task: flaky())
    engine("t")
    env["broken"] = True
    with pytest.raises(DivergenceError) as info:
        engine("t")
    assert (info.value.handoff.at, info.value.handoff.steps) == (0, ())
    assert "RuntimeError: down" in info.value.handoff.reason


def test_an_unknown_policy_is_a_configuration_error_listing_the_valid_ones():
    with pytest.raises(ConfigurationError) as info:
        Engine(on_divergence="retry")
    message = str(info.value)
    assert "retry" in message
    for policy in ("'handoff'", "'restart'", "'raise'"):
        assert policy in message
    assert isinstance(info.value, ValueError)
    for policy in ("handoff", "restart", "raise", muscle_mem.OnDivergence.RAISE):
        Engine(on_divergence=policy)
    assert Engine().on_divergence == "handoff"


# -- never a splice; failures record nothing --------------------------------------------


def test_two_recorded_paths_are_never_spliced(engine):
    env = {"a": True, "b": True, "c": False, "d": False}
    log = []

    def gate(name):
        return Check(lambda: env[name])

    @engine.function(pre_check=gate("a"))
    def a():
        log.append("a")

    @engine.function(pre_check=gate("b"))
    def b():
        log.append("b")

    @engine.function(pre_check=gate("c"))
    def c():
        log.append("c")

    @engine.function(pre_check=gate("d"))
    def d():
        log.append("d")

    def agent(task):
        if muscle_mem.handoff() is not None:
            return "agent"
        if env["a"]:
            a()
            b()
        else:
            c()
            d()

    engine.set_agent(agent)
    engine("t")  # A -> B
    env.update(a=False, b=False, c=True, d=True)
    assert engine("t").status == "miss"  # C -> D
    assert len(engine.store.tree(engine.task_key("t")).root.children) == 2

    env.update(a=True, b=False, c=False, d=True)  # A passes, then only D's check would
    log.clear()
    outcome = engine("t")
    assert outcome.status == "handoff" and not outcome
    assert (outcome.replayed, outcome.diverged_at) == (1, 1)
    assert log == ["a"]


def test_agent_raising_during_a_handoff_records_nothing_and_propagates(engines):
    def fail(shop, handoff):
        shop.close_popup()
        raise RuntimeError("model timed out")

    shop = Shop(engines(), agent_steps=fail)
    shop.run()
    before = shape(shop.tree())
    shop.page = "v2"
    with pytest.raises(RuntimeError, match="model timed out"):
        shop.run()
    assert shape(shop.tree()) == before
    assert muscle_mem.handoff() is None
    assert shop.engine.store.runs()[-1].status == "error"
    # Nothing was learned: the next run diverges at the same place.
    shop.agent_steps = carry_on
    outcome = shop.run()
    assert (outcome.status, outcome.diverged_at) == ("handoff", 2)
    assert shop.run().hit


def test_agent_raising_after_a_failed_post_check_learns_nothing(engines):
    engine = engines()
    saved = {"as": "John", "fail": False}

    @engine.function(post_check=Check(lambda name: saved["as"]))
    def save(name):
        pass

    def agent(task):
        if saved["fail"]:
            raise RuntimeError("no")
        if muscle_mem.handoff() is None:
            save("John")

    engine.set_agent(agent)
    engine("t")
    tree = engine.store.tree(engine.task_key("t"))
    saved.update({"as": "Jon", "fail": True})
    with pytest.raises(RuntimeError):
        engine("t")
    assert len(tree.root.children[0].post) == 1
    saved["fail"] = False
    assert engine("t").status == "handoff"  # learns "Jon" after save, as a handed-over path
    assert len(tree.root.children[0].post) == 2
    assert engine("t").hit


# -- an agent that never reads handoff() ------------------------------------------------


class Form:
    """The README's form filler. Written for the original API (``reads_handoff=False``)
    it knows nothing of handoff() and always types the name, then the greeting; each
    field is typed into only where it was seen."""

    def __init__(self, engine, reads_handoff=False):
        self.engine = engine
        self.selectors = {"name": "#name", "greeting": "#greeting"}
        self.typed = []
        form = self

        @engine.function(pre_check=Check(capture=lambda field, value: form.selectors[field]))
        def type_into(field, value):
            form.typed.append((field, value))

        def agent(task, name):
            handoff = muscle_mem.handoff() if reads_handoff else None
            done = len(handoff.steps) if handoff else 0  # the README's way to carry on
            for field, value in [("name", name), ("greeting", f"Hello {name}!")][done:]:
                type_into(field, value)

        engine.set_agent(agent)

    def run(self, name):
        self.typed.clear()
        return self.engine("fill the signup form", name, params={"name": name})


def test_an_agent_that_ignores_handoff_is_recorded_from_the_root_and_warned_once(engines, caplog):
    form = Form(engines())
    form.run("John")
    form.selectors["greeting"] = "#welcome"  # the greeting field moved
    with caplog.at_level(logging.WARNING, logger="muscle_mem"):
        outcome = form.run("Jane")
    assert (outcome.status, outcome.replayed, outcome.diverged_at) == ("handoff", 1, 1)
    # Replay typed the name, then the agent started over: the name twice, this once.
    assert form.typed == [("name", "Jane"), ("name", "Jane"), ("greeting", "Hello Jane!")]
    [warning] = [r for r in caplog.records if r.name == "muscle_mem"]
    assert warning.levelno == logging.WARNING
    assert "muscle_mem.handoff()" in warning.getMessage() and ".steps" in warning.getMessage()

    # Learned as the path it took (name, greeting), not as (name, name, greeting).
    outcome = form.run("Ann")
    assert (outcome.status, outcome.replayed) == ("hit", 2)
    assert form.typed == [("name", "Ann"), ("greeting", "Hello Ann!")]

    # Another divergence of the same engine is not warned about again.
    form.selectors["name"] = "#full-name"
    form.selectors["greeting"] = "#hello"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="muscle_mem"):
        form.run("Bob")  # the name's check fails at step 0: a plain miss, nothing to warn
        form.selectors["greeting"] = "#greeting-v3"
        assert form.run("Bob").status == "handoff"
    assert [r for r in caplog.records if r.name == "muscle_mem"] == []
    assert form.run("Eve").replayed == 2 and form.typed == [
        ("name", "Eve"),
        ("greeting", "Hello Eve!"),
    ]


def test_an_agent_that_reads_handoff_still_carries_on_after_the_replayed_prefix(engines, caplog):
    form = Form(engines(), reads_handoff=True)
    form.run("John")
    form.selectors["greeting"] = "#welcome"
    with caplog.at_level(logging.WARNING, logger="muscle_mem"):
        assert form.run("Jane").status == "handoff"
    assert form.typed == [("name", "Jane"), ("greeting", "Hello Jane!")]
    assert [r for r in caplog.records if r.name == "muscle_mem"] == []
    root = form.engine.store.tree(
        form.engine.task_key("fill the signup form", "x", params={"name": "x"})
    ).root
    [name] = root.children
    [greeting] = name.children  # the agent's call grafted after the replayed name
    assert len(greeting.pre) == 2
    assert form.run("Ann").replayed == 2
