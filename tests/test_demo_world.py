"""The demo's simulated world and its tools' checks: deterministic, and judging what
makes each step safe (and nothing else).

Runs once, in memory (see conftest): the world, not the store, is under test."""

from __future__ import annotations

import inspect

import pytest

from muscle_mem import Engine
from muscle_mem.demo.agent import Agent
from muscle_mem.demo.policy import SimulatedLLM
from muscle_mem.demo.story import DAY, engine_arguments, settle
from muscle_mem.demo.tools import (
    CHECKS,
    TOOL_NAMES,
    TOOL_SCHEMAS,
    AdPlatform,
    account_state,
    cpl_ranking,
    flow_config,
    instrument,
    page_layout,
)
from muscle_mem.demo.world import CODES, World, WorldError, standard_tracking


def test_a_seed_makes_the_same_world_and_numbers() -> None:
    a, b = World.generate(7), World.generate(7)
    assert a == b
    assert [a.metrics(i) for i in a.ad_sets] == [b.metrics(i) for i in b.ad_sets]
    assert a.ad_set_report("MMM") == b.ad_set_report("MMM")
    other = World.generate(8)
    assert [a.metrics(i) for i in a.ad_sets] != [other.metrics(i) for i in other.ad_sets]
    assert "simulated" in repr(a)
    assert a.ad_set_report("MFF")["source"] == "simulated ad account"


def test_the_properties_start_where_the_story_needs_them() -> None:
    world = World.generate(7)
    assert 0.40 <= world.blended("MFF")["cpl"] <= 0.50  # the benchmark
    assert 5 <= world.blended("MMM")["cpl"] <= 10  # "MMM's CPL is $5-10"
    assert world.layout("MCAD", "signup") == "signup-v4"  # the page that changed
    assert {world.layout(c, "signup") for c in ("MFF", "MMM", "MMD")} == {"signup-v3"}
    assert {c for c in CODES if world.flow_hash(c, "signup") is None} == {"MCAD", "MMD"}
    for code in CODES:
        ranked = sorted(world.ad_sets_of(code), key=lambda a: -world.metrics(a.id)["cpl"])
        assert [a.role for a in ranked] == ["broad", "lal1", "rt7"]


def test_todays_changes_show_in_tomorrows_numbers() -> None:
    world = World.generate(7)
    before = world.blended("MMM")
    world.set_form_fields("MMM", "signup", ["email"])
    world.set_budget_split("MMM", {"broad": 0.3, "lal1": 0.5, "rt7": 0.2})
    assert world.blended("MMM") == before
    world.start_day(2)
    assert world.blended("MMM")["cpl"] < before["cpl"] * 0.85
    assert [e.kind for e in world.events] == []  # a new day starts a new list


def test_writes_are_idempotent_and_say_what_changed() -> None:
    world = World.generate(7)
    world.set_tracking("MMM", "landing", standard_tracking("MMM"))
    (event,) = world.events
    assert event.kind == "tracking" and "+sub1" in event.detail
    world.set_tracking("MMM", "landing", standard_tracking("MMM"))
    world.set_budget_split("MFF", {"broad": 0.3, "lal1": 0.5, "rt7": 0.2})
    world.set_budget_split("MFF", {"broad": 0.3, "lal1": 0.5, "rt7": 0.2})
    assert [e.kind for e in world.events] == ["tracking", "budget_split"]
    with pytest.raises(WorldError, match="adding up to 1"):
        world.set_budget_split("MFF", {"broad": 0.5, "lal1": 0.5, "rt7": 0.2})
    with pytest.raises(WorldError, match="no 'thank-you' page"):
        world.inspect_page("MCAD", "thank-you")


def test_flows_built_from_the_pattern_have_the_patterns_configuration() -> None:
    world = World.generate(7)
    world.upsert_page("MCAD", "thank-you", "ty-standard")
    world.clone_flow("MFF", "MCAD", "signup")
    assert world.flow_hash("MCAD", "signup") == world.flow_hash("MFF", "signup")
    assert world.flows["MCAD", "signup"].postback is not None
    assert "offer=MCAD" in world.flows["MCAD", "signup"].postback
    assert world.flow_hash("MMM", "signup") == world.flow_hash("MFF", "signup")
    world.flows["MMM", "signup"].postback = None  # a broken postback is another config
    assert world.flow_hash("MMM", "signup") != world.flow_hash("MFF", "signup")
    assert world.match_rate("MMM") == 0.0


def test_checks_capture_what_makes_a_step_safe() -> None:
    world = World.generate(7)
    platform = AdPlatform(world)
    # Pages: the layout, whatever the form or the tracking holds.
    assert page_layout(platform, "MFF", "signup") == page_layout(platform, "MMM", "signup")
    assert page_layout(platform, "MCAD", "signup") != page_layout(platform, "MFF", "signup")
    before = page_layout(platform, "MMM", "signup", fields=["email"])
    world.set_form_fields("MMM", "signup", ["email"])
    assert page_layout(platform, "MMM", "signup", fields=["email"]) == before
    # The account: the same ad sets on every property; a paused one is another state.
    assert account_state(platform, "MFF") == account_state(platform, "MMD")
    split = {"broad": 0.3, "lal1": 0.5, "rt7": 0.2}
    assert cpl_ranking(platform, "MFF", split) == cpl_ranking(platform, "MCAD", split)
    world.ad_sets["MMD-broad"].status = "PAUSED"
    assert account_state(platform, "MMD") != account_state(platform, "MFF")
    assert cpl_ranking(platform, "MMD", split) != cpl_ranking(platform, "MFF", split)
    # Flows: their configuration; none yet is a state of its own.
    assert flow_config(platform, "MCAD", "signup") is None
    assert flow_config(platform, "MMM", days=7) == flow_config(platform, "MFF", "signup")


def test_a_later_day_sees_the_world_the_first_day_left() -> None:
    """What makes the next session all hits: the world it regenerates from the seed is
    the world the first session left, down to the budgets."""
    engine = Engine()
    tools = instrument(engine)
    played = tools(World.generate(7))
    llm = SimulatedLLM(latency=0)
    engine.set_agent(Agent(llm, played)).set_context(played).finalize()
    statuses = []
    for task in DAY:
        args, kwargs = engine_arguments(task)
        statuses.append(engine(*args, **kwargs).status)
    assert statuses.count("hit") == 5 and llm.calls == 30
    played.world.start_day(2)

    regenerated = tools(World.generate(7))
    settle(regenerated.world, regenerated, 1)
    assert regenerated.world == played.world
    assert regenerated.world.day == 2
    pattern = World.generate(7).flow_hash("MFF", "signup")
    assert {regenerated.world.flow_hash(code, "signup") for code in CODES} == {pattern}
    split = {"broad": 0.3, "lal1": 0.5, "rt7": 0.2}
    day_one = AdPlatform(World.generate(7))
    for code in ("MFF", "MMM", "MCAD"):  # the premise of the budget split still holds
        assert cpl_ranking(regenerated, code, split) == cpl_ranking(day_one, code, split)


def test_tool_schemas_match_the_tools() -> None:
    assert set(TOOL_NAMES) == set(CHECKS)
    for schema in TOOL_SCHEMAS:
        function = schema["function"]
        method = getattr(AdPlatform, function["name"])
        arguments = list(inspect.signature(method).parameters)[1:]
        assert list(function["parameters"]["properties"]) == arguments
        assert function["parameters"]["required"] == arguments
    engine = Engine()
    tools = instrument(engine)
    for name in TOOL_NAMES:
        assert getattr(tools, name).__muscle_mem_tool__.name == (
            f"muscle_mem.demo.tools.AdPlatform.{name}"
        )
