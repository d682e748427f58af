"""The simulated LLM: a deterministic policy that plays the model's part.

Each kind of task has a plan, written as a generator: it yields the next tool call,
receives that call's result, and returns the final answer. Asked for a move, the
simulated model walks the plan along the conversation so far (checking that each call
in it is the one the plan would have made, and feeding it its result) and answers with
the plan's next call. So it carries on from any point: after a handoff, the steps the
engine replayed are in the conversation and the plan resumes after them.

Each completion sleeps ``latency`` seconds and costs ``tokens`` tokens, simulated.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any

from .llm import Message, Reply, Task, ToolCall, transcript
from .world import standard_tracking

Move = tuple[str, dict[str, Any]]
Plan = Generator[Move, Any, str]

BUDGET_SPLIT = {"broad": 0.3, "lal1": 0.5, "rt7": 0.2}


class PolicyError(RuntimeError):
    """The conversation holds a call the policy would not have made."""


def audit(p: str) -> Plan:
    landing = yield "inspect_page", {"property": p, "page": "landing"}
    if "error" in landing:
        return f"{p}: cannot read the landing page: {landing['error']}"
    signup = yield "inspect_page", {"property": p, "page": "signup"}
    if "error" in signup:
        return f"{p}: cannot read the signup page: {signup['error']}"
    report = yield "ad_set_report", {"property": p}
    if "error" in report:
        return f"{p}: no ad set report: {report['error']}"
    done = ["standard tracking (utm + sub1)"]
    yield "set_tracking", {"property": p, "page": "landing", "params": standard_tracking(p)}
    if signup["form"]["mode"] != "single_step":
        yield "set_form_mode", {"property": p, "page": "signup", "mode": "single_step"}
        done.append("single-step signup form")
    yield "set_form_fields", {"property": p, "page": "signup", "fields": ["email"]}
    done.append("email-only form")
    cpl = {row["role"]: row["cpl"] for row in report["ad_sets"]}
    if max(cpl, key=cpl.__getitem__) == "broad":
        yield "set_budget_split", {"property": p, "split": dict(BUDGET_SPLIT)}
        done.append(
            f"budget 30/50/20 toward the lookalike (broad ${cpl['broad']:.2f} "
            f"vs lookalike ${cpl['lal1']:.2f} a lead)"
        )
    blended = report["blended"]
    return (
        f"{p}: blended CPL ${blended['cpl']:.2f} against a ${report['target_cpl']:.2f} target "
        f"over 7 days; applied {', '.join(done)}."
    )


def build(p: str) -> Plan:
    pattern = yield "get_flow", {"property": "MFF", "flow": "signup"}
    if not pattern.get("exists"):
        return "MFF has no signup flow to copy"
    yield "get_flow", {"property": "MFF", "flow": "thank-you"}
    yield "upsert_page", {"property": p, "page": "thank-you", "template": "ty-standard"}
    yield "clone_flow", {"source": "MFF", "target": p, "flow": "signup"}
    yield "clone_flow", {"source": "MFF", "target": p, "flow": "thank-you"}
    yield "connect_email_list", {"property": p, "list_name": f"{p} Daily"}
    test = yield "send_test_conversion", {"property": p, "flow": "signup"}
    reached = "reached" if test.get("received_by_network") else "did NOT reach"
    return (
        f"{p}: signup and thank-you flows built from MFF's pattern "
        f"({pattern['config_hash']}); a test conversion {reached} the attribution network."
    )


def validate(p: str) -> Plan:
    flow = yield "get_flow", {"property": p, "flow": "signup"}
    if not flow.get("exists"):
        return f"{p}: no signup flow, so nothing reaches the attribution network"
    report = yield "attribution_report", {"property": p, "days": 7}
    test = yield "send_test_conversion", {"property": p, "flow": "signup"}
    verdict = "OK" if report["match_rate"] >= 0.9 and test["received_by_network"] else "LEAKING"
    return (
        f"{p}: attribution {verdict}: {report['conversions_matched']} of "
        f"{report['leads_on_ad_platform']} leads matched ({report['match_rate']:.1%}); "
        f"test conversion received: {test['received_by_network']}."
    )


PLANS: dict[str, Callable[[str], Plan]] = {"audit": audit, "build": build, "validate": validate}


def next_move(task: Task, done: list[tuple[ToolCall, Any]]) -> Move | str:
    """The plan's next call after the calls ``done``, or its final answer."""
    plan = PLANS[task.kind](task.code)
    try:
        move = next(plan)
        for call, result in done:
            if (call.name, call.arguments) != move:
                raise PolicyError(
                    f"{task.text}: the conversation has {call.name}({call.arguments}) where "
                    f"the policy calls {move[0]}({move[1]})"
                )
            move = plan.send(result)
    except StopIteration as end:
        return str(end.value)
    return move


class SimulatedLLM:
    """A model simulated by :func:`next_move`, with a latency and a token count per call."""

    label = "simulated LLM"

    def __init__(self, latency: float = 0.3, tokens_per_call: int = 2500) -> None:
        self.latency = latency
        self.tokens_per_call = tokens_per_call
        self.calls = 0
        self.tokens = 0
        self.seconds = 0.0

    def __repr__(self) -> str:
        return f"SimulatedLLM(latency={self.latency}, tokens_per_call={self.tokens_per_call})"

    def close(self) -> None:
        pass  # nothing held

    def complete(self, task: Task, messages: list[Message]) -> Reply:
        started = time.perf_counter()
        if self.latency > 0:
            time.sleep(self.latency)
        move = next_move(task, transcript(messages))
        self.calls += 1
        self.tokens += self.tokens_per_call
        self.seconds += time.perf_counter() - started
        if isinstance(move, str):
            return Reply((), move, self.tokens_per_call)
        name, arguments = move
        return Reply((ToolCall(f"call_{self.calls}", name, arguments),), None, self.tokens_per_call)
