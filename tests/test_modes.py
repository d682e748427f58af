"""Record modes ("auto", "replay", "record", "off"), per engine and per call, and
``engine.clear()``.

Runs on every store kind (see conftest), but for the mode's name, checked once.
"""

from __future__ import annotations

import asyncio

import pytest

import muscle_mem
from muscle_mem import Check, ConfigurationError, Engine, Mode, ReplayMissError
from muscle_mem.codec import decode

TASK = "fill the signup form"


class Form:
    """The README's signup form: two fields, each typed into only where it was seen."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.selectors = {"name": "#name", "greeting": "#greeting"}
        self.typed: list[tuple[str, str]] = []
        self.agent_calls = 0
        self.handoffs: list[muscle_mem.Handoff | None] = []
        form = self

        @engine.function(pre_check=Check(capture=lambda field, value: form.selectors[field]))
        def type_into(field, value):
            form.typed.append((field, value))

        def agent(task, name):
            self.agent_calls += 1
            handoff = muscle_mem.handoff()
            self.handoffs.append(handoff)
            done = len(handoff.steps) if handoff else 0
            for field, value in [("name", name), ("greeting", f"Hello {name}!")][done:]:
                type_into(field, value)
            return "typed"

        engine.set_agent(agent)

    def run(self, name="John", **options):
        self.typed.clear()
        return self.engine(TASK, name, params={"name": name}, **options)

    def tree(self):
        return self.engine.store.tree(self.engine.task_key(TASK, "x", params={"name": "x"}))


# -- the mode's name ----------------------------------------------------------------------


def test_an_unknown_mode_is_a_configuration_error_listing_the_valid_ones(memory_engine):
    with pytest.raises(ConfigurationError) as info:
        Engine(mode="playback")
    message = str(info.value)
    assert "playback" in message
    for mode in ("'auto'", "'replay'", "'record'", "'off'"):
        assert mode in message
    assert Engine().mode == "auto" and Engine(mode=Mode.RECORD).mode is Mode.RECORD
    form = Form(memory_engine)
    with pytest.raises(ConfigurationError, match="'replay'"):
        form.run(mode="replay-only")
    assert form.agent_calls == 0 and memory_engine.store.runs() == []


# -- auto ---------------------------------------------------------------------------------


def test_auto_replays_else_calls_the_agent_and_learns(engines):
    form = Form(engines(mode="auto"))
    assert form.run().status == "miss"
    outcome = form.run("Jane")
    assert outcome and outcome.replayed == 2 and form.agent_calls == 1


# -- replay -------------------------------------------------------------------------------


def test_replay_hits_like_auto(engines):
    form = Form(engines())
    form.run()
    outcome = form.run("Jane", mode="replay")
    assert outcome.hit and form.typed == [("name", "Jane"), ("greeting", "Hello Jane!")]


def test_replay_on_a_miss_raises_without_calling_the_agent_and_logs_an_error(engines):
    form = Form(engines(mode="replay"))
    with pytest.raises(ReplayMissError) as info:
        form.run()
    error = info.value
    assert isinstance(error, muscle_mem.MuscleMemError)
    assert error.handoff is None  # nothing ran: a plain miss
    assert "nothing has been recorded" in error.reason and error.reason in str(error)
    assert "mode='replay'" in str(error) and "record" in str(error)
    assert form.agent_calls == 0 and form.typed == []
    [run] = form.engine.store.runs()
    assert (run.status, run.reason, run.recorded) == ("error", error.reason, 0)
    assert len(form.tree()) == 0


def test_replay_on_a_divergence_raises_with_the_handoff_and_learns_nothing(engines):
    form = Form(engines())
    form.run()
    form.selectors["greeting"] = "#welcome"  # step 1's check fails
    with pytest.raises(ReplayMissError) as info:
        form.run("Jane", mode="replay")
    handoff = info.value.handoff
    assert handoff is not None and handoff.at == 1
    assert [(s.args, s.result) for s in handoff.steps] == [(("name", "Jane"), None)]
    assert "pre-check" in info.value.reason and "#welcome" in info.value.reason
    assert form.agent_calls == 1  # only the first run's
    assert form.typed == [("name", "Jane")]  # replay ran step 0 before it stopped
    assert form.engine.store.runs()[-1].status == "error"
    # Nothing was learned: the next run in "replay" diverges the same way.
    with pytest.raises(ReplayMissError):
        form.run("Jane", mode="replay")
    assert len(form.tree()) == 2


def test_replay_raises_even_under_on_divergence_raise(engines):
    form = Form(engines(on_divergence="raise", mode="replay"))
    form.run(mode="auto")
    form.selectors["greeting"] = "#welcome"
    with pytest.raises(ReplayMissError):  # one error to catch in "replay" mode
        form.run()


def test_arun_takes_the_mode_too(engines):
    form = Form(engines())

    def arun(name, mode=None):
        return asyncio.run(form.engine.arun(TASK, name, params={"name": name}, mode=mode))

    with pytest.raises(ReplayMissError):
        arun("John", mode="replay")
    assert form.agent_calls == 0
    assert arun("John").status == "miss"
    assert arun("Ann", mode="replay").hit
    assert arun("Bob", mode="off").status == "miss" and form.agent_calls == 2
    assert len(form.engine.store.runs()) == 3  # the "off" run is not logged


# -- record -------------------------------------------------------------------------------


def test_record_always_calls_the_agent_and_records_from_the_root(engines):
    form = Form(engines())
    form.run()
    nodes = sorted(node.id for node in form.tree())
    outcome = form.run("Jane", mode="record")
    assert (outcome.status, outcome.replayed, outcome.reason) == ("miss", 0, None)
    assert outcome.result == "typed" and form.agent_calls == 2
    assert form.handoffs[-1] is None
    assert form.typed == [("name", "Jane"), ("greeting", "Hello Jane!")]  # once each
    assert sorted(node.id for node in form.tree()) == nodes  # the same path, templated

    # In a new environment, "record" records a path of its own from the root.
    form.selectors["greeting"] = "#welcome"
    form.engine.mode = Mode.RECORD
    assert form.run().status == "miss"
    root = form.tree().root
    assert len(root.children) == 1 and len(root.children[0].children) == 1
    assert len(root.children[0].children[0].pre) == 2  # learned as the path it took
    form.engine.mode = Mode.AUTO
    assert form.run("Ann").hit
    assert [run.status for run in form.engine.store.runs()] == ["miss", "miss", "miss", "hit"]


# -- off ----------------------------------------------------------------------------------


def test_off_is_a_pass_through_that_neither_replays_records_nor_logs(engines):
    form = Form(engines())
    form.run()
    before = form.engine.store.runs()
    outcome = form.run("Jane", mode="off")
    assert (outcome.status, outcome.result, outcome.replayed) == ("miss", "typed", 0)
    assert not outcome and form.agent_calls == 2
    assert form.typed == [("name", "Jane"), ("greeting", "Hello Jane!")]  # the agent's
    assert form.engine.store.runs() == before  # no run log line

    form.selectors["greeting"] = "#welcome"  # would be a handoff, learned as a branch
    off = Form(engines(store=form.engine.store, mode="off"))
    assert off.run().status == "miss"
    assert len(off.tree()) == 2 and off.engine.store.runs() == before


def test_off_logs_nothing_when_the_agent_raises(engines):
    engine = engines(mode="off")

    @engine.function()
    def act():
        raise RuntimeError("down")

    engine.set_agent(lambda task: act())
    with pytest.raises(RuntimeError, match="down"):
        engine("t")
    assert engine.store.runs() == []


# -- clear --------------------------------------------------------------------------------


def test_clear_forgets_every_task_key_and_keeps_the_run_log(engines):
    form = Form(engines())
    form.run()
    form.engine(TASK + " twice", "Ann", params={"name": "Ann"})
    assert len(form.engine.store.tasks()) == 2
    runs = form.engine.store.runs()
    assert form.engine.clear() == 4
    assert form.engine.store.tasks() == [] and len(form.tree()) == 0
    assert form.engine.store.runs() == runs  # history stays
    assert form.run().status == "miss"  # and the engine learns again
    assert form.engine.clear() == 2 and form.engine.clear() == 0


def test_a_pass_through_run_beside_a_recording_one_adds_nothing_to_it(engines):
    import threading

    engine = engines()
    seen: list[str] = []
    recording = threading.Event()
    passed_through = threading.Event()

    @engine.function()
    def act(who):
        seen.append(who)

    def agent(task, who):
        act(who)
        if who == "recorder":
            recording.set()
            assert passed_through.wait(10)  # the other run's agent calls act meanwhile

    engine.set_agent(agent)
    recorder = threading.Thread(target=lambda: engine("t", "recorder"))
    recorder.start()
    assert recording.wait(10)
    engine("t", "off", mode="off")  # its tool call is neither recorded nor the other run's
    passed_through.set()
    recorder.join(10)
    assert sorted(seen) == ["off", "recorder"]
    key = engine.task_key("t", "recorder")
    assert [decode(n.step.call) for n in engine.store.tree(key) if n.step] == [(("recorder",), {})]
