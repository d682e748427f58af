"""Shared fixtures: a world the tools act on, and an engine around an agent."""

from __future__ import annotations

import pytest

from muscle_mem import Engine


class World:
    """A tiny environment: named values the tools read and change, and a call log."""

    def __init__(self, **state: object) -> None:
        self.state = dict(state)
        self.calls: list[tuple] = []


@pytest.fixture
def world() -> World:
    return World(page="v1")


@pytest.fixture
def engine() -> Engine:
    return Engine()
