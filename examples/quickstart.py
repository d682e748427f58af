"""From install to a first cache hit: a form-filling agent that learns its moves.

The "LLM" here is a short sleep, so the script runs anywhere without an API key.
Run it with ``python examples/quickstart.py``.
"""

import time

import muscle_mem
from muscle_mem import Check, Engine

engine = Engine()  # in memory; Engine(store="cache.db") would persist it

# The environment the tools act on: a web form whose fields may move.
page = {"selectors": {"name": "#name", "greeting": "#greeting"}, "fields": {}}


def selector(field: str, value: str) -> str:
    """What makes typing into a field safe: it is still where we saw it."""
    return page["selectors"][field]


@engine.function(pre_check=Check(capture=selector))  # no compare: equality, looked up by hash
def type_into(field: str, value: str) -> None:
    page["fields"][field] = value


def agent(task: str, name: str) -> str:
    handoff = muscle_mem.handoff()  # set when a replay stopped part-way and we take over
    done = len(handoff.steps) if handoff else 0
    for field, value in [("name", name), ("greeting", f"Hello {name}!")][done:]:
        time.sleep(0.3)  # the LLM deciding what to do next...
        muscle_mem.report_usage(tokens=850, cost=0.0026)  # ...and what that cost
        type_into(field, value)
    return "submitted"


engine.set_agent(agent).finalize()


def run(name: str) -> None:
    outcome = engine("fill the signup form", name, params={"name": name})
    print(
        f"{name:5} {outcome.status:8} replayed {outcome.replayed} "
        f"step(s) in {outcome.duration_s:.3f}s  fields={page['fields']}"
        + (f"\n       why: {outcome.reason}" if outcome.diverged_at is not None else "")
    )


run("John")  # miss: the agent works it out, its two calls are recorded
run("Jane")  # hit: replayed with Jane filled in, no LLM
page["selectors"]["greeting"] = "#welcome"
run("Ana")  # the greeting field moved: replay stops there, the agent takes over and learns
run("Bob")  # hit on the new form
