"""What the adapters share: their options checked one way, the note a handoff's history
ends with, and running a cached run from synchronous code.

Private to :mod:`muscle_mem.integrations`; like the adapters, it uses only the public API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from muscle_mem import Check, ConfigurationError

T = TypeVar("T")


def tool_checks(
    value: Mapping[str, Check] | None,
    option: str,
    *,
    call: str,
    known: Iterable[str] | None = None,
    among: str = "",
) -> dict[str, Check]:
    """An adapter's ``checks=`` or ``post_checks=``: a dict of tool name to
    :class:`~muscle_mem.Check` (None for none). ``known`` are the names it may use, when
    the adapter knows its tools already; ``among`` says whose they are in the message
    (``"the tools of agent 'support'"``)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        type(name) is str and isinstance(check, Check) for name, check in value.items()
    ):
        raise ConfigurationError(
            f"{call}({option}=...) takes a dict of tool name to Check, e.g. "
            f"{option}={{'search': Check(capture=...)}}; got {value!r}"
        )
    if known is not None:
        names = set(known)
        unknown = sorted(set(value) - names)
        if unknown:
            listed = ", ".join(map(repr, sorted(names))) or "none"
            raise ConfigurationError(
                f"{call}({option}=...) names {', '.join(map(repr, unknown))}, not among "
                f"{among or 'its tools'} ({listed})"
            )
    return dict(value)


def final_option(value: Any, choices: Mapping[str, str], *, steps_callable: bool = False) -> Any:
    """An adapter's ``final=``, what a hit answers: one of ``choices`` (name -> what it
    does, for the message), or, with ``steps_callable``, a callable taking the
    replayed steps."""
    if isinstance(value, str) and value in choices:
        return value
    if steps_callable and callable(value) and not isinstance(value, str):
        return value
    options = [f"{name!r} ({meaning})" for name, meaning in choices.items()]
    if steps_callable:
        options.append("a callable taking the replayed steps")
    raise ConfigurationError(
        f"final={value!r} is not a way to answer a hit; use {', '.join(options[:-1])} "
        f"or {options[-1]}"
    )


def handoff_note(replayed: int, reason: str) -> str:
    """What a handoff's history ends with, after the ``replayed`` calls, so that the
    model makes only the missing ones."""
    return (
        f"[muscle-mem] The {replayed} tool call(s) above were replayed from an earlier run "
        f"of this task; replay stopped there: {reason}. Carry on from here and make only "
        "the calls still needed; don't repeat those above."
    )


def run_sync(run: Callable[[], Coroutine[Any, Any, T]], name: str) -> T:
    """``asyncio.run(run())`` for an adapter's ``run_sync``, or a clear error inside a
    running event loop (where ``asyncio.run`` can't be used)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    raise ConfigurationError(
        f"{name}() was called inside a running event loop: await the async form there"
    )
