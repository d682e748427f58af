"""A real model behind an OpenAI-compatible chat-completions endpoint.

Needs the ``openai`` package (``pip install 'muscle-mem[openai]'``), imported only when
a model is asked for. The model gets the same tool schemas and the same conversation
as the simulated one, replayed steps included.
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

from .llm import Message, Reply, Task, ToolCall
from .tools import TOOL_SCHEMAS


class ModelUnavailable(RuntimeError):
    """The real model cannot be used: a package or a setting is missing, or it failed."""


class OpenAILLM:
    """Chat completions with tools, from ``model`` at ``base_url`` (OpenAI's by default)."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        try:
            import openai
        except ImportError:
            raise ModelUnavailable(
                "--model needs the openai package: pip install 'muscle-mem[openai]'"
            ) from None
        if not api_key and not base_url:
            raise ModelUnavailable(
                "--model needs OPENAI_API_KEY (and OPENAI_BASE_URL for an endpoint other "
                "than OpenAI's)"
            )
        self.model = model
        self.label = f"model {model}" + (f" at {base_url}" if base_url else "")
        # A local server may want no key, but the client insists on one.
        self.client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "unused", timeout=timeout, max_retries=1
        )
        self._failure = openai.OpenAIError
        self.calls = 0
        self.tokens = 0
        self.seconds = 0.0

    def __repr__(self) -> str:
        return f"OpenAILLM({self.model!r})"

    def close(self) -> None:
        self.client.close()

    def complete(self, task: Task, messages: list[Message]) -> Reply:
        started = time.perf_counter()
        try:
            response = self.client.chat.completions.create(
                model=self.model,
                messages=cast(Any, messages),  # plain dicts in OpenAI's message shape
                tools=cast(Any, TOOL_SCHEMAS),
                tool_choice="auto",
            )
        except self._failure as error:
            raise ModelUnavailable(f"{self.label} failed: {error}") from error
        self.seconds += time.perf_counter() - started
        self.calls += 1
        usage = response.usage
        tokens = usage.total_tokens if usage is not None else 0
        self.tokens += tokens
        message = response.choices[0].message
        calls = tuple(
            ToolCall(call.id, call.function.name, _arguments(call.function.arguments))
            for call in message.tool_calls or ()
            if call.type == "function"
        )
        return Reply(calls, message.content, tokens)


def _arguments(text: str) -> dict[str, Any]:
    """A tool call's arguments; malformed JSON becomes none, which the tool reports."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
