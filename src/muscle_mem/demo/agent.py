"""The agent: a tool-calling loop around a model, as one would write it without a cache.

What makes it muscle-mem ready is small: it reports each completion's usage with
``muscle_mem.report_usage`` and, when the engine hands a half-replayed task over
(``muscle_mem.handoff()``), it starts from the steps already done instead of from
scratch, by putting them in the conversation as calls it made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import muscle_mem

from .llm import LLM, Message, Task, ToolCall, assistant_message, tool_message
from .tools import TOOL_NAMES, Platform, parameters
from .world import WorldError

SYSTEM = (
    "You optimise lead generation for four properties (MFF, MMM, MCAD, MMD) on a "
    "simulated ad account and landing-page platform: every number is simulated. Use the "
    "tools to do the task one step at a time; when it is done, answer with a one-line "
    "summary of what you found and changed."
)


class AgentError(RuntimeError):
    """The model did not finish the task within the allowed number of turns."""


class Agent:
    """Calls ``llm`` for its next move until it answers without a tool call.

    ``price_per_token`` turns tokens into the cost it reports; ``brief`` (optional)
    gives what the memory bank remembers about a property, for the system prompt.
    """

    def __init__(
        self,
        llm: LLM,
        platform: Platform,
        *,
        price_per_token: float = 0.0,
        brief: Callable[[str], str] | None = None,
        max_turns: int = 24,
    ) -> None:
        self.llm = llm
        self.platform = platform
        self.price_per_token = price_per_token
        self.brief = brief
        self.max_turns = max_turns

    def __call__(self, task_text: str, *, kind: str, property: str) -> str:
        task = Task(kind, property)
        system = SYSTEM
        if self.brief is not None:
            system += "\n\nWhat you remember about this property:\n" + self.brief(property)
        messages: list[Message] = [
            {"role": "system", "content": system},
            {"role": "user", "content": task_text},
        ]
        handoff = muscle_mem.handoff()
        if handoff is not None:
            messages += self.replayed(handoff)
        for _ in range(self.max_turns):
            reply = self.llm.complete(task, messages)
            muscle_mem.report_usage(tokens=reply.tokens, cost=reply.tokens * self.price_per_token)
            if not reply.calls:
                return reply.content or ""
            messages.append(assistant_message(reply.calls))
            for call in reply.calls:
                messages.append(tool_message(call.id, self.call(call)))
        raise AgentError(f"{task_text}: no answer after {self.max_turns} turns")

    def call(self, call: ToolCall) -> Any:
        """Run one tool call; a mistake is the model's to see, not a crash."""
        if call.name not in TOOL_NAMES:
            return {"error": f"no tool {call.name!r}; tools: {', '.join(TOOL_NAMES)}"}
        try:
            return getattr(self.platform, call.name)(**call.arguments)
        except (WorldError, TypeError, ValueError) as error:
            return {"error": str(error)}

    def replayed(self, handoff: muscle_mem.Handoff) -> list[Message]:
        """The steps the engine replayed before handing over, as if the model had made
        them, and a note saying where and why replay stopped."""
        messages: list[Message] = []
        for i, step in enumerate(handoff.steps):
            name = step.tool.rpartition(".")[2]
            arguments = dict(zip(parameters(self.platform, name), step.args, strict=False))
            arguments.update(step.kwargs)
            call = ToolCall(f"replayed_{i}", name, arguments)
            messages += [assistant_message([call]), tool_message(call.id, step.result)]
        messages.append(
            {
                "role": "user",
                "content": (
                    f"(muscle-mem replayed the {len(handoff.steps)} step(s) above from its "
                    f"cache and stopped at step {handoff.at}: {handoff.reason}. Carry on "
                    "from here.)"
                ),
            }
        )
        return messages
