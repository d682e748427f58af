"""What a hit gives back: the result recorded with the path, with the run's params filled
in, and the calls it replayed (``Outcome.steps``), each with its arguments by name.

Runs on every store kind (see conftest).
"""

from __future__ import annotations

import muscle_mem
from muscle_mem import Check


def test_a_hit_lists_the_calls_it_replayed_with_arguments_by_name(engine):
    class Form:
        @engine.method()
        def type_into(self, field, text, delay=0.0):
            return f"typed {text}"

    form = Form()

    @engine.function()
    def submit(form_id, *, confirm=False, **headers):
        return {"submitted": form_id}

    def agent(task, name):
        form.type_into("name", name)
        submit("signup", confirm=True, trace="t1")

    engine.set_agent(agent).set_context(form).finalize()
    miss = engine("sign up", "John", params={"name": "John"})
    assert miss.status == "miss" and miss.steps == ()
    hit = engine("sign up", "Ann", params={"name": "Ann"})
    assert hit.hit
    typed, submitted = hit.steps
    assert typed.tool.endswith("Form.type_into")
    assert typed.arguments == {"field": "name", "text": "Ann", "delay": 0.0}  # no self
    assert (typed.args, typed.kwargs, typed.result) == (("name", "Ann"), {}, "typed Ann")
    assert submitted.arguments == {"form_id": "signup", "confirm": True, "trace": "t1"}
    assert submitted.result == {"submitted": "signup"}


def test_a_handoff_lists_the_calls_replayed_before_it_with_arguments_by_name(engine, world):
    handoffs = []

    @engine.function(pre_check=Check(lambda field, value: "same"))
    def fill(field, value):
        return value.upper()

    @engine.function(pre_check=Check(lambda: world.state["page"]))
    def send():
        return "sent"

    def agent(task, name):
        handoffs.append(muscle_mem.handoff())
        if handoffs[-1] is None:
            fill("name", name)
        send()

    engine.set_agent(agent)
    engine("t", "John", params={"name": "John"})
    world.state["page"] = "v2"
    outcome = engine("t", "Ann", params={"name": "Ann"})
    assert outcome.status == "handoff"
    [step] = outcome.steps
    assert step.arguments == {"field": "name", "value": "Ann"} and step.result == "ANN"
    assert handoffs[-1].steps == outcome.steps
