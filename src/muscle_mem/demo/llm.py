"""What the agent asks a model, and what a model answers: shared by every model.

Conversations are kept in OpenAI's chat-completions shape (system, user, assistant
messages with ``tool_calls``, ``tool`` results), so the simulated model and a real one
read the same transcript, replayed steps included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

TASK_TEXT = {
    "audit": "audit the conversion flow of {property}",
    "build": "build the signup and thank-you flows of {property} from MFF's pattern",
    "validate": "validate attribution for {property}",
}

Message = dict[str, Any]


@dataclass(frozen=True)
class Task:
    """One task of the day: what kind of work, on which property."""

    kind: str  # a key of TASK_TEXT
    code: str  # the property

    @property
    def text(self) -> str:
        return TASK_TEXT[self.kind].format(property=self.code)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """A model's answer: tool calls to make, or (with none) the final text."""

    calls: tuple[ToolCall, ...]
    content: str | None
    tokens: int


class LLM(Protocol):
    """A model the agent can ask for its next move."""

    label: str  # how the demo names it
    calls: int  # how many completions it has made
    tokens: int  # how many tokens they took
    seconds: float  # how long they took

    def complete(self, task: Task, messages: list[Message]) -> Reply: ...

    def close(self) -> None:
        """Release connections, if it has any."""


def assistant_message(calls: tuple[ToolCall, ...] | list[ToolCall]) -> Message:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in calls
        ],
    }


def tool_message(call_id: str, result: Any) -> Message:
    return {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)}


def transcript(messages: list[Message]) -> list[tuple[ToolCall, Any]]:
    """The tool calls in a conversation, in order, each with its result."""
    results = {
        m["tool_call_id"]: json.loads(m["content"]) for m in messages if m.get("role") == "tool"
    }
    done = []
    for message in messages:
        for raw in message.get("tool_calls") or ():
            function = raw["function"]
            call = ToolCall(raw["id"], function["name"], json.loads(function["arguments"] or "{}"))
            done.append((call, results.get(call.id)))
    return done
