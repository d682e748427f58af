"""The demo's real-model path, against a local fake OpenAI-compatible server.

The server (stdlib http.server in a thread, on 127.0.0.1) answers chat completions with
scripted tool calls: the simulated policy's moves for the conversation it is sent, so
the whole demo can run through the ``openai`` client without the internet.

Runs once (see conftest): the demo names its own store.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from muscle_mem.cli.demo import configure
from muscle_mem.demo import run
from muscle_mem.demo.llm import TASK_TEXT, Task, transcript
from muscle_mem.demo.policy import next_move
from muscle_mem.demo.tools import TOOL_SCHEMAS

pytest.importorskip("openai", reason="the real-model path needs pip install 'muscle-mem[openai]'")

TOKENS = {"prompt_tokens": 1800, "completion_tokens": 60, "total_tokens": 1860}


def task_of(messages: list[dict[str, Any]]) -> Task:
    """The task a conversation is about, from its user message."""
    text = next(m["content"] for m in messages if m["role"] == "user")
    for kind, template in TASK_TEXT.items():
        pattern = re.escape(template).replace(re.escape("{property}"), "(MFF|MMM|MCAD|MMD)")
        found = re.fullmatch(pattern, text)
        if found:
            return Task(kind, found.group(1))
    raise AssertionError(f"not a demo task: {text!r}")


class FakeOpenAI(ThreadingHTTPServer):
    """Serves /v1/chat/completions; ``script`` (if set) answers instead of the policy."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict[str, Any]] = []
        self.script: list[dict[str, Any]] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(body)
        if self.script is not None:
            message = self.script.pop(0)
        else:
            move = next_move(task_of(body["messages"]), transcript(body["messages"]))
            if isinstance(move, str):
                message = {"role": "assistant", "content": move}
            else:
                name, arguments = move
                message = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call_{len(self.requests)}",
                            "type": "function",
                            "function": {"name": name, "arguments": json.dumps(arguments)},
                        }
                    ],
                }
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                }
            ],
            "usage": TOKENS,
        }


class _Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def do_POST(self) -> None:
        assert self.path == "/v1/chat/completions", self.path
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        data = json.dumps(self.server.answer(body)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    thread = threading.Thread(target=fake.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.shutdown()
    fake.server_close()
    thread.join(timeout=5)


def test_a_completion_is_asked_with_the_tools_and_read_back(server: FakeOpenAI) -> None:
    from muscle_mem.demo.openai_llm import OpenAILLM

    server.script = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "ad_set_report", "arguments": '{"property": "MMD"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_flow", "arguments": "not json"},
                },
            ],
        }
    ]
    llm = OpenAILLM("fake-model", base_url=server.url, api_key="test-key")
    messages = [{"role": "user", "content": "validate attribution for MMD"}]
    reply = llm.complete(Task("validate", "MMD"), messages)
    assert [(c.id, c.name, c.arguments) for c in reply.calls] == [
        ("call_a", "ad_set_report", {"property": "MMD"}),
        ("call_b", "get_flow", {}),  # malformed arguments: the tool will say what's missing
    ]
    assert (reply.content, reply.tokens, llm.calls, llm.tokens) == (None, 1860, 1, 1860)
    (request,) = server.requests
    assert request["model"] == "fake-model"
    assert request["tools"] == TOOL_SCHEMAS
    assert request["messages"] == messages
    llm.close()


def test_the_demo_runs_on_a_model_behind_an_openai_compatible_endpoint(
    server: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    parser = argparse.ArgumentParser()
    configure(parser)
    out = io.StringIO()
    assert run(parser.parse_args(["--model", "fake-model"]), str(tmp_path / "c.db"), out) == 0
    output = out.getvalue()

    assert f"its LLM: model fake-model at {server.url}" in output
    statuses = re.findall(r"^\s*\d+  .+?\s{2,}(?:MFF|MMM|MCAD|MMD)\s+(\w+)", output, re.M)
    assert statuses == [
        "miss", "handoff", "handoff", "hit", "miss", "hit", "miss", "hit", "hit", "hit"
    ]  # fmt: skip
    assert len(server.requests) == 30  # the model was asked only where nothing replayed
    assert "LLM calls" in output and re.search(r"tokens\s+55,800\s", output), output
    # The handoff: the model was shown the replayed step and where replay stopped.
    handoffs = [
        r["messages"]
        for r in server.requests
        if any(
            m.get("tool_calls") and m["tool_calls"][0]["id"] == "replayed_0" for m in r["messages"]
        )
    ]
    # MMM's audit stopped at set_tracking (step 3), MCAD's at its signup page (step 1).
    assert any("stopped at step 3" in m[-1]["content"] for m in handoffs)
    handoff = next(m for m in handoffs if "# Memory: brand:mcad" in m[0]["content"])
    assert handoff[2]["tool_calls"][0]["function"]["name"] == "inspect_page"
    assert json.loads(handoff[3]["content"])["layout"] == "lp-3"
    assert "stopped at step 1" in handoff[4]["content"]
    # The system prompt carries what the memory bank remembers about the property.
    assert "What you remember about this property" in handoff[0]["content"]
    assert "# Memory: brand:mcad" in handoff[0]["content"]

    out = io.StringIO()
    requests = len(server.requests)
    assert run(parser.parse_args(["--model", "fake-model"]), str(tmp_path / "c.db"), out) == 0
    assert len(server.requests) == requests  # the next day: all hits, the model idle
    assert "day 2" in out.getvalue()


def test_a_model_without_an_endpoint_or_key_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    parser = argparse.ArgumentParser()
    configure(parser)
    out = io.StringIO()
    assert run(parser.parse_args(["--model", "gpt-x"]), str(tmp_path / "c.db"), out) == 2
    assert "--model needs OPENAI_API_KEY" in out.getvalue()


def test_an_unreachable_endpoint_stops_the_demo_with_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = FakeOpenAI()  # bound, then closed: nothing listens on its port
    url = closed.url
    closed.server_close()
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    parser = argparse.ArgumentParser()
    configure(parser)
    out = io.StringIO()
    assert run(parser.parse_args(["--model", "gpt-x"]), str(tmp_path / "c.db"), out) == 1
    assert f"model gpt-x at {url} failed: Connection error" in out.getvalue()
