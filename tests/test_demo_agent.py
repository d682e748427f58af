"""The demo's agent and its simulated LLM: one tool-calling loop, usage reported, and a
handoff continued from where replay stopped, not from scratch.

Runs once, in memory (see conftest): the agent, not the store, is under test."""

from __future__ import annotations

from typing import Any

import pytest

import muscle_mem
from muscle_mem import Engine
from muscle_mem.demo.agent import Agent
from muscle_mem.demo.llm import Message, Reply, Task, ToolCall, transcript
from muscle_mem.demo.policy import PolicyError, SimulatedLLM, next_move
from muscle_mem.demo.story import engine_arguments
from muscle_mem.demo.tools import TOOL_NAMES, AdPlatform, instrument
from muscle_mem.demo.world import World


class Recording:
    """A simulated LLM that keeps the conversations it was asked about."""

    label = "recording"

    def __init__(self) -> None:
        self.inner = SimulatedLLM(latency=0, tokens_per_call=1000)
        self.asked: list[list[Message]] = []

    @property
    def calls(self) -> int:
        return self.inner.calls

    @property
    def tokens(self) -> int:
        return self.inner.tokens

    @property
    def seconds(self) -> float:
        return self.inner.seconds

    def close(self) -> None:
        self.inner.close()

    def complete(self, task: Task, messages: list[Message]) -> Reply:
        self.asked.append([dict(m) for m in messages])
        return self.inner.complete(task, messages)


def audit(code: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return engine_arguments(Task("audit", code))


def test_the_policy_resumes_from_any_point_of_its_plan() -> None:
    task = Task("audit", "MCAD")
    world = World.generate(7)
    first = next_move(task, [])
    assert first == ("inspect_page", {"property": "MCAD", "page": "landing"})
    landing = world.inspect_page("MCAD", "landing")
    done = [(ToolCall("replayed_0", first[0], first[1]), landing)]
    assert next_move(task, done) == ("inspect_page", {"property": "MCAD", "page": "signup"})
    wrong: list[tuple[ToolCall, Any]] = [(ToolCall("x", "ad_set_report", {"property": "MCAD"}), {})]
    with pytest.raises(PolicyError, match="where the policy calls inspect_page"):
        next_move(task, wrong)


def test_a_handoff_continues_after_the_replayed_steps() -> None:
    engine = Engine()
    platform = instrument(engine)(World.generate(7))
    llm = Recording()
    engine.set_agent(Agent(llm, platform, price_per_token=3e-6)).set_context(platform)
    engine.finalize()

    first = engine(*audit("MFF")[0], **audit("MFF")[1])
    assert first.status == "miss"
    assert (llm.calls, first.tokens) == (7, 7000)
    assert first.cost == pytest.approx(7000 * 3e-6)
    assert engine(*audit("MMD")[0], **audit("MMD")[1]).status == "hit"
    assert llm.calls == 7

    asked = len(llm.asked)
    handed = engine(*audit("MCAD")[0], **audit("MCAD")[1])
    assert (handed.status, handed.replayed, handed.diverged_at) == ("handoff", 1, 1)
    assert "signup-v4" in (handed.reason or "")
    assert llm.calls - 7 == 7  # the agent alone needs 8: replay saved the first step
    conversation = llm.asked[asked]
    done = transcript(conversation)
    assert [(c.id, c.name, c.arguments) for c, _ in done] == [
        ("replayed_0", "inspect_page", {"property": "MCAD", "page": "landing"})
    ]
    assert done[0][1]["layout"] == "lp-3"  # the replayed step's real result
    assert conversation[-1]["role"] == "user"
    assert "stopped at step 1" in conversation[-1]["content"]
    # What the agent did after it is the new branch: MCAD's two-step form made single-step.
    assert platform.world.pages["MCAD", "signup"].form_mode == "single_step"
    again = engine(*audit("MCAD")[0], **audit("MCAD")[1])
    assert (again.status, again.replayed) == ("hit", 7)
    assert llm.calls == 14


def test_a_replay_with_params_acts_on_the_other_property() -> None:
    engine = Engine()
    platform = instrument(engine)(World.generate(7))
    engine.set_agent(Agent(SimulatedLLM(latency=0), platform)).set_context(platform)
    engine.finalize()
    engine(*audit("MFF")[0], **audit("MFF")[1])
    assert engine(*audit("MMD")[0], **audit("MMD")[1]).status == "hit"
    world = platform.world
    # "MFF-leads" was recorded as "{property}-leads": MMD gets its own campaign name.
    assert world.pages["MMD", "landing"].tracking["utm_campaign"] == "MMD-leads"
    assert world.pages["MMD", "signup"].form_fields == ["email"]
    assert world.ad_sets["MFF-lal1"].daily_budget == 120.0


def test_a_standard_the_recorded_property_already_had_is_not_copied_from_another() -> None:
    # MFF's tracking was standard already, so the audit's set_tracking wrote back what
    # it had read: "paid_social" could be read or the agent's own standard. MMM's links
    # say "cpc": replay can't tell which the agent meant, so it hands over there.
    engine = Engine()
    platform = instrument(engine)(World.generate(7))
    engine.set_agent(Agent(SimulatedLLM(latency=0), platform)).set_context(platform)
    engine.finalize()
    engine(*audit("MFF")[0], **audit("MFF")[1])
    outcome = engine(*audit("MMM")[0], **audit("MMM")[1])
    assert (outcome.status, outcome.replayed) == ("handoff", 3)
    assert "params['utm_medium']" in (outcome.reason or "")
    assert "'paid_social' and 'cpc'" in (outcome.reason or "")
    world = platform.world
    assert world.pages["MMM", "landing"].tracking["utm_medium"] == "paid_social"
    assert world.pages["MMM", "landing"].tracking["utm_campaign"] == "MMM-leads"
    assert world.ad_sets["MMM-lal1"].daily_budget == 150.0  # half of MMM's $300, not MFF's


def test_the_agent_reports_usage_and_shows_tool_errors_to_the_model() -> None:
    platform = AdPlatform(World.generate(7))
    agent = Agent(SimulatedLLM(latency=0), platform)
    assert agent.call(ToolCall("1", "drop_tables", {})) == {
        "error": "no tool 'drop_tables'; tools: " + ", ".join(TOOL_NAMES)
    }
    assert (
        "no 'thank-you' page"
        in agent.call(ToolCall("2", "inspect_page", {"property": "MCAD", "page": "thank-you"}))[
            "error"
        ]
    )
    assert "error" in agent.call(ToolCall("3", "inspect_page", {"property": "MCAD"}))
    assert muscle_mem.handoff() is None
    answer = agent("audit the conversion flow of MFF", kind="audit", property="MFF")
    assert answer.startswith("MFF: blended CPL $0.4")


def test_a_model_that_never_answers_is_stopped() -> None:
    class Looping:
        label, calls, tokens, seconds = "looping", 0, 0, 0.0

        def close(self) -> None:
            pass

        def complete(self, task: Task, messages: list[Message]) -> Reply:
            self.calls += 1
            call = ToolCall(f"c{self.calls}", "ad_set_report", {"property": "MFF"})
            return Reply((call,), None, 10)

    agent = Agent(Looping(), AdPlatform(World.generate(7)), max_turns=3)
    with pytest.raises(RuntimeError, match="no answer after 3 turns"):
        agent("audit the conversion flow of MFF", kind="audit", property="MFF")
