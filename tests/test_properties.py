"""Properties of the cache over random agents, environments and run sequences.

A small simulated world: three numbers ``a`` (0-2), ``b`` (0-1) and a clock ``t`` that
every tool call advances, plus ``noise`` that no check reads and the agent never looks
at, but that changes what ``inc`` and ``put`` do (the environment reacting differently
to the same call, so replay can diverge half-way). The agent is a closed-loop policy
drawn by hypothesis: a table from ``(a, b, t)`` to the next action (a tool call or
stop), so it is deterministic given the world and carries on naturally from wherever a
handoff leaves it. Each tool's checks read a random subset of the world's numbers.

Every tool logs, as it runs, whether the agent or replay called it, the call, and its
pre-check capture at that moment. A model of what the agent recorded (the captures
seen at each path of calls, and the complete paths) is then compared with what replay
does. Every example gets a new, empty store of the test's kind (see conftest.py),
with a snapshot cap drawn too, so eviction is exercised. Every property runs on every
store kind, but for what one engine leaves for another, which needs a shared store.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import muscle_mem
from conftest import kinds
from muscle_mem import Check, Engine

FEATURES = ("a", "b", "t")
TOOLS = ("inc", "flip", "put")
ACTIONS: tuple[tuple[Any, ...] | None, ...] = (
    None,  # stop
    ("inc",),
    ("flip",),
    ("put", 0),
    ("put", 1),
    ("put", 2),
)
T_MAX = 4  # the agent stops once the clock reaches this
STATES = list(itertools.product(range(3), range(2), range(T_MAX)))
TASK = "tidy the world"

Call = tuple[str, tuple[Any, ...]]
Path = tuple[Call, ...]


# -- the simulated world and agent -------------------------------------------------------


def _near(current: tuple[int, ...], candidate: tuple[int, ...]) -> bool:
    return all(abs(x - y) <= 1 for x, y in zip(current, candidate, strict=True))


def _score(current: tuple[int, ...], candidate: tuple[int, ...]) -> float:
    return 1.0 - sum(abs(x - y) for x, y in zip(current, candidate, strict=True)) / 10


def _compare(mode: str | None) -> dict[str, Any]:
    """Check keyword arguments for a compare mode: equality, a bool or a scored compare."""
    if mode is None:
        return {}
    if mode == "near":
        return {"compare": _near}
    return {"compare": _score, "threshold": 0.85}


class Sim:
    """An engine around three tools and a table-driven agent acting on one world."""

    def __init__(
        self,
        engine: Engine,
        table: dict[tuple[int, int, int], int],
        pre: dict[str, tuple[str, ...] | None],
        post: dict[str, tuple[str, ...] | None],
        compare: str | None = None,
    ) -> None:
        self.engine = engine
        self.table = table
        self.pre = pre
        self.state: dict[str, int] = {}
        self.log: list[tuple[bool, Call, Any]] = []  # (by the agent?, call, pre capture)
        self.in_agent = False
        self.agent_runs = 0
        self.handoffs: list[muscle_mem.Handoff | None] = []
        kwargs = _compare(compare)

        def check(features: tuple[str, ...] | None) -> Check | None:
            if features is None:
                return None

            def capture(*args: Any) -> tuple[int, ...]:
                return tuple(self.state[f] for f in features)

            return Check(capture, **kwargs)

        @engine.function(pre_check=check(pre["inc"]), post_check=check(post["inc"]))
        def inc() -> None:
            self._note("inc", ())
            self.state["a"] = (self.state["a"] + 1 + self.state["noise"]) % 3
            self.state["t"] += 1

        @engine.function(pre_check=check(pre["flip"]), post_check=check(post["flip"]))
        def flip() -> str:
            self._note("flip", ())
            self.state["b"] = 1 - self.state["b"]
            self.state["t"] += 1
            return "flipped"

        @engine.function(pre_check=check(pre["put"]), post_check=check(post["put"]))
        def put(x: int) -> int:
            self._note("put", (x,))
            self.state["a"] = (x + self.state["noise"]) % 3
            self.state["t"] += 1
            return x

        self.tools = {"inc": inc, "flip": flip, "put": put}
        engine.set_agent(self.agent).finalize()

    def _note(self, name: str, args: tuple[Any, ...]) -> None:
        features = self.pre[name]
        capture = None if features is None else tuple(self.state[f] for f in features)
        self.log.append((self.in_agent, (name, args), capture))

    def policy(self) -> tuple[Any, ...] | None:
        s = self.state
        if s["t"] >= T_MAX:
            return None
        return ACTIONS[self.table[(s["a"], s["b"], s["t"])]]

    def agent(self, task: str) -> str:
        assert task == TASK
        self.agent_runs += 1
        self.handoffs.append(muscle_mem.handoff())
        self.in_agent = True
        try:
            while (action := self.policy()) is not None:
                self.tools[action[0]](*action[1:])
        finally:
            self.in_agent = False
        return f"done at t={self.state['t']}"

    def run(self, env: tuple[int, int, int, int]) -> muscle_mem.Outcome:
        a, b, t, noise = env
        self.state = {"a": a, "b": b, "t": t, "noise": noise}
        self.log = []
        return self.engine(TASK)

    def tree(self) -> Any:
        return self.engine.store.tree(self.engine.task_key(TASK))


def check_outcome(sim: Sim, outcome: muscle_mem.Outcome, agent_runs_before: int) -> None:
    """What holds of every run: replay first, then (unless it hit) the agent."""
    by_agent = [from_agent for from_agent, _, _ in sim.log]
    replayed = by_agent.count(False)
    assert by_agent == [False] * replayed + [True] * (len(by_agent) - replayed)
    assert outcome.replayed == replayed
    called = sim.agent_runs - agent_runs_before
    if outcome.status == "hit":
        assert called == 0 and outcome.diverged_at is None
        return
    assert called == 1
    handoff = sim.handoffs[-1]
    if outcome.status == "miss":
        assert replayed == 0 and outcome.diverged_at is None and handoff is None
        return
    assert outcome.status == "handoff" and replayed > 0
    assert handoff is not None
    assert [(s.tool.rsplit(".", 1)[-1], s.args) for s in handoff.steps] == [
        call for _, call, _ in sim.log[:replayed]
    ]
    assert handoff.at == outcome.diverged_at and handoff.reason == outcome.reason
    assert outcome.diverged_at in (replayed, replayed - 1)  # a pre- or a post-check failed


# -- strategies --------------------------------------------------------------------------

tables = st.lists(st.integers(0, len(ACTIONS) - 1), min_size=len(STATES), max_size=len(STATES)).map(
    lambda actions: dict(zip(STATES, actions, strict=True))
)
feature_sets = st.lists(st.sampled_from(FEATURES), unique=True).map(tuple)
partial_checks = st.fixed_dictionaries({name: st.none() | feature_sets for name in TOOLS})
post_checks = st.fixed_dictionaries({name: st.none() | feature_sets for name in TOOLS})
caps = st.sampled_from([None, 1, 2])  # the store's snapshot cap (None: the default)


@st.composite
def envs(draw: st.DrawFn) -> list[tuple[int, int, int, int]]:
    """A run sequence over a few worlds, so that worlds come back, and worlds that look
    the same to the checks (they differ in noise alone) are common."""
    looks = draw(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1), st.integers(0, 1))))
    pool = [(a, b, t, noise) for a, b, t in looks[:2] for noise in (0, 1)] or [(0, 0, 0, 0)]
    return draw(st.lists(st.sampled_from(pool), min_size=3, max_size=12))


# -- 1. safety ---------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_engine(stores: Any, cap: int | None = None) -> Iterator[Engine]:
    """An engine on a new, empty store of the test's kind, for one hypothesis example."""
    store = stores.fresh(**({} if cap is None else {"snapshot_cap": cap}))
    try:
        yield Engine(store=store)
    finally:
        store.close()


# Each example takes a store of its own from the ``stores`` factory fixture.
PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def replay_stays_on_recorded_ground(sim: Sim, envs: list[tuple[int, int, int, int]]) -> None:
    seen: defaultdict[Path, set[Any]] = defaultdict(set)  # agent's captures at each path
    paths: set[Path] = set()  # complete recorded trajectories
    prefixes: set[Path] = set()  # and every prefix of them
    for env in envs:
        before = sim.agent_runs
        outcome = sim.run(env)
        event(outcome.status)
        check_outcome(sim, outcome, before)
        path: Path = ()
        for by_agent, call, capture in sim.log:
            path = (*path, call)
            if by_agent:
                seen[path].add(capture)
                continue
            assert path in prefixes, f"replayed {path}, which no recorded trajectory starts with"
            if capture is not None:
                assert capture in seen[path], (
                    f"replayed {path} with pre-check capture {capture}, "
                    f"recorded there only with {sorted(seen[path])}"
                )
        if outcome.status == "hit":
            assert path in paths, f"hit ran {path}, not one recorded path of {sorted(paths)}"
        elif path:
            paths.add(path)
            prefixes.update(path[:i] for i in range(1, len(path) + 1))


@PROPERTY
@given(table=tables, pre=partial_checks, post=post_checks, envs=envs(), cap=caps)
def test_replay_runs_a_step_only_in_an_environment_recorded_at_that_node(
    stores, table, pre, post, envs, cap
):
    with fresh_engine(stores, cap) as engine:
        replay_stays_on_recorded_ground(Sim(engine, table, pre, post), envs)


# -- 2. learning -------------------------------------------------------------------------


def every_run_is_learned(sim: Sim, envs: list[tuple[int, int, int, int]]) -> None:
    for env in envs:
        before = sim.agent_runs
        outcome = sim.run(env)
        check_outcome(sim, outcome, before)
        if outcome.hit:
            continue
        event(outcome.status)
        path, end = [call for _, call, _ in sim.log], dict(sim.state)
        again = sim.run(env)
        if not path:  # the agent called no tool: nothing was recorded, nothing to replay
            assert again.status == "miss"
            continue
        assert (again.status, sim.agent_runs) == ("hit", before + 1), (
            f"after a {outcome.status} in {env}: {again}"
        )
        assert [call for _, call, _ in sim.log] == path and sim.state == end


@PROPERTY
@given(table=tables, post=post_checks, envs=envs(), cap=caps)
def test_after_a_miss_or_handoff_the_same_task_in_the_same_world_is_a_hit(
    stores, table, post, envs, cap
):
    # The checks read all the agent decides on, so the cache can tell where it stopped.
    # (With checks that read less, a replay may rightly go on past where this agent would
    # stop, down another recorded branch whose first check passes.)
    with fresh_engine(stores, cap) as engine:
        every_run_is_learned(Sim(engine, table, dict.fromkeys(TOOLS, FEATURES), post), envs)


# The minimal case: a run of two ``inc``s is recorded; in a noisier world the first
# ``inc`` leaves ``a`` elsewhere, replay stops before the second and the agent, handed
# over, has nothing left to do, so the replayed prefix ends a trajectory of its own.
_ONE_INC_TABLE = {**dict.fromkeys(STATES, 0), (0, 0, 1): 1, (1, 0, 2): 1}


@kinds("sqlite", "postgres")  # a memory store is not shared between engines
@PROPERTY
@example(table=_ONE_INC_TABLE, post=dict.fromkeys(TOOLS), envs=[(0, 0, 1, 0), (0, 0, 1, 1)])
@given(table=tables, post=post_checks, envs=envs())
def test_what_one_engine_learned_is_a_hit_for_another_on_the_same_store(stores, table, post, envs):
    url = stores.url()
    learner = stores.open(url)
    try:
        sim = Sim(Engine(store=learner), table, dict.fromkeys(TOOLS, FEATURES), post)
        for env in envs:
            outcome = sim.run(env)
            path, end = [call for _, call, _ in sim.log], dict(sim.state)
            if outcome.hit or not path:
                continue
            later = stores.open(url)  # as another process would
            try:
                other = Sim(Engine(store=later), table, dict.fromkeys(TOOLS, FEATURES), post)
                again = other.run(env)
                assert (again.status, other.agent_runs) == ("hit", 0), (
                    f"after a {outcome.status} in {env}: {again}"
                )
                assert [call for _, call, _ in other.log] == path and other.state == end
            finally:
                later.close()
    finally:
        learner.close()


# -- 3. hits never grow the cache ----------------------------------------------------------


def cache_shape(sim: Sim) -> tuple[Any, ...]:
    nodes = list(sim.tree())
    return (
        len(nodes),
        sorted(n.id for n in nodes),
        sorted(n.id for n in nodes if n.terminal),
        sum(len(n.pre) for n in nodes),
        sum(len(n.post) for n in nodes),
    )


@PROPERTY
@given(
    table=tables,
    pre=partial_checks,
    post=post_checks,
    compare=st.sampled_from([None, "near", "score"]),
    envs=envs(),
    cap=caps,
)
def test_hits_never_grow_the_cache(stores, table, pre, post, compare, envs, cap):
    with fresh_engine(stores, cap) as engine:
        sim = Sim(engine, table, pre, post, compare)
        for env in envs:
            shape = cache_shape(sim)
            outcome = sim.run(env)
            if outcome.hit:
                event(f"hit with compare={compare}")
                assert cache_shape(sim) == shape


# -- 4. params ---------------------------------------------------------------------------

# Param text is lower case; every literal around it is upper case or punctuation, so a
# value never stands inside the literal text (which would template it too).
names = st.text(alphabet="abcxyz", min_size=1, max_size=6)
param_sets = st.builds(
    lambda texts, **p: {"name": texts[0], "other": texts[1], **p},
    st.lists(names, min_size=2, max_size=2, unique=True),  # two params never share a value
    n=st.integers(-3, 1000),
    x=st.floats(allow_nan=False, allow_infinity=False),
    flag=st.booleans(),  # True is not 1, False is not 0
    items=st.lists(st.integers(-5, 5), max_size=3),
)


def greeting(p: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The tool call the agent makes for these params, as (args, kwargs)."""
    return (
        (f"HELLO {p['name']}, {p['other']}!", p["n"], p["x"], p["flag"], p["items"]),
        {"meta": {"N": p["n"], "S": f"<{p['name']}>", "L": [p["other"], "END"]}},
    )


def task_of(p: dict[str, Any]) -> str:
    return f"GREET {p['name']} AND {p['other']} TIMES {p['n']} BY {p['x']}"


def params_fill_in(engine: Engine, first: dict[str, Any], later: list[dict[str, Any]]) -> None:
    received: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    agent_runs = []

    @engine.function(pre_check=Check(lambda *args, **kwargs: "ready"))
    def greet(text, n, x, flag, items, *, meta):
        received.append(((text, n, x, flag, items), {"meta": meta}))

    def agent(task, **p):
        agent_runs.append(task)
        args, kwargs = greeting(p)
        greet(*args, **kwargs)

    engine.set_agent(agent).finalize()
    key = engine.task_key(task_of(first), params=first, **first)
    assert engine(task_of(first), params=first, **first).status == "miss"
    for p in later:
        assert engine.task_key(task_of(p), params=p, **p) == key
        received.clear()
        outcome = engine(task_of(p), params=p, **p)
        assert (outcome.status, outcome.replayed, len(agent_runs)) == ("hit", 1, 1)
        assert received == [greeting(p)]
        (_, n, x, flag, items), _ = received[0]
        assert (type(n), type(x), type(flag), type(items)) == (int, float, bool, list)


@PROPERTY
@given(first=param_sets, later=st.lists(param_sets, min_size=1, max_size=4))
def test_params_share_the_task_key_and_replay_fills_in_the_new_values(stores, first, later):
    with fresh_engine(stores) as engine:
        params_fill_in(engine, first, later)
