"""Tools: the decorated functions an agent calls, and how their calls are recorded.

A tool is known by its name and its code identity. The name is its qualified name
(fingerprint.py), or the ``name=`` it was given. The code identity hashes a fingerprint
of the tool's code, or the ``version=`` it was given in place of that fingerprint, with
the fingerprints of its checks' code: ``version=`` vouches for the tool's body only, so
a changed check still never replays steps recorded under the old one.

During a run of its engine, a call records its step and its checks' captures into the
run's :class:`~muscle_mem.recording.Recorder`; called from inside another tool, it
belongs to that call and records nothing of its own. Called from a thread with no run in
its context (one the agent started), it belongs to the one run of its engine whose agent
is running; with several, it can't be known which, and the call is not recorded (an
:class:`~muscle_mem.errors.UnrecordedCallWarning`, once per tool). A tool that calls
other tools from threads of its own therefore records them as steps of their own while
its run's agent runs: such calls are not part of it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
import warnings
from collections.abc import Callable, Coroutine
from typing import Any

from .checks import Check
from .codec import encode, encode_call
from .errors import EncodeError, UnrecordedCallWarning
from .fingerprint import check_fingerprint, digest, fingerprint, tool_name
from .models import Param, RecordedCall, Redacted, Snapshot, Step, Which
from .recording import Recorder, current_recorder, inside_tool, runs_in_progress


def _guarded(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``func`` (a tool, or a check's capture) so that tools it calls are part of it,
    not steps of their own."""
    if current_recorder.get() is None:  # replay, outside any recording: nothing to guard
        return func(*args, **kwargs)
    token = inside_tool.set(True)
    try:
        return func(*args, **kwargs)
    finally:
        inside_tool.reset(token)


class Tool:
    """A function or method the engine records and replays.

    ``scope`` is the engine the tool belongs to, compared by identity only: the tool
    records into runs of that engine and no other.
    """

    def __init__(
        self,
        scope: object,
        func: Callable[..., Any],
        *,
        is_method: bool,
        pre_check: Check | None,
        post_check: Check | None,
        sensitive: tuple[str, ...] = (),
        name: str | None = None,
        version: str | None = None,
    ) -> None:
        self.scope = scope
        self.func = func
        self.qualified_name = tool_name(func)
        self.name = self.qualified_name if name is None else name
        self.is_method = is_method
        self.is_async = inspect.iscoroutinefunction(func)
        self.pre_check = pre_check
        self.post_check = post_check
        self.sensitive = sensitive
        # "version:" cannot be mistaken for a fingerprint (each starts "ast1:", "code1-",
        # "name:" or "none:"), so a version never equals some code's identity.
        code = fingerprint(func) if version is None else f"version:{version}"
        self.code = "tool1:" + digest(
            "\n".join([code, check_fingerprint(pre_check), check_fingerprint(post_check)])
        )
        self._warned = False  # about a call from a thread that no run could claim

    def __repr__(self) -> str:
        kind = "method" if self.is_method else "function"
        return f"<muscle_mem {kind} tool {self.name}>"

    def same_definition(self, other: Tool) -> bool:
        """Whether ``other`` comes from the same definition as this tool: a function of
        the same qualified name (the same ``def``, perhaps re-run by a module reload or a
        notebook cell, perhaps edited), or else the very same callable object."""
        if self.func is other.func:
            return True
        if not (_is_function(self.func) and _is_function(other.func)):
            return False  # partials, callable objects: one name can't tell two apart
        return self.qualified_name == other.qualified_name

    @property
    def owner(self) -> str | None:
        """For a method, the qualified name of its class."""
        if not self.is_method:
            return None
        return self.func.__qualname__.rpartition(".")[0] or None

    def wrap(self) -> Callable[..., Any]:
        """The function the user's code calls in place of the tool."""
        func, tool = self.func, self

        if self.is_async:

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if inside_tool.get():  # part of an enclosing call: not a step of its own
                    return await func(*args, **kwargs)
                run = current_recorder.get()
                if run is None and (run := tool.claimed_by()) is not None:
                    token = current_recorder.set(run)  # for the tools it calls, too
                    try:
                        return await async_wrapper(*args, **kwargs)
                    finally:
                        current_recorder.reset(token)
                if run is None or run.scope is not tool.scope:
                    return await func(*args, **kwargs)
                number, step, pre = tool.begin(run, args, kwargs)
                result = await tool.await_inside(args, kwargs)
                tool.finish(run, number, step, pre, args, kwargs, result)
                return result

            async_wrapper.__muscle_mem_tool__ = tool  # type: ignore[attr-defined]
            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if inside_tool.get():  # part of an enclosing call: not a step of its own
                return func(*args, **kwargs)
            run = current_recorder.get()
            if run is None and (run := tool.claimed_by()) is not None:
                token = current_recorder.set(run)  # for the tools it calls, too
                try:
                    return wrapper(*args, **kwargs)
                finally:
                    current_recorder.reset(token)
            if run is None or run.scope is not tool.scope:
                return func(*args, **kwargs)
            number, step, pre = tool.begin(run, args, kwargs)
            result = tool.call_inside(args, kwargs)
            tool.finish(run, number, step, pre, args, kwargs, result)
            return result

        wrapper.__muscle_mem_tool__ = tool  # type: ignore[attr-defined]
        return wrapper

    def claimed_by(self) -> Recorder | None:
        """For a call with no run in its context: the one run of this tool's engine whose
        agent is running (the call is in a thread the agent started), or None."""
        runs = runs_in_progress(self.scope)
        if len(runs) == 1:
            return runs[0]
        if runs and not self._warned:
            self._warned = True
            warnings.warn(
                f"tool {self.name} was called from a thread with no engine run in its "
                f"context while {len(runs)} runs of its engine were in progress: it can't "
                "be known which run it belongs to, so it was not recorded (run the "
                "engine's runs one at a time, or call the tool from the agent's thread)",
                UnrecordedCallWarning,
                stacklevel=3,
            )
        return None

    def call_inside(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call the tool so that tools it calls in turn are part of this call."""
        return _guarded(self.func, args, kwargs)

    def call_sync(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run the tool to completion from synchronous code, async tools included."""
        if not self.is_async:
            return self.call_inside(args, kwargs)
        return run_coroutine(self.await_inside(args, kwargs))

    async def call_async(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.is_async:
            return await self.await_inside(args, kwargs)
        return self.call_inside(args, kwargs)

    async def await_inside(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        token = inside_tool.set(True)
        try:
            return await self.func(*args, **kwargs)
        finally:
            inside_tool.reset(token)

    def capture(
        self, check: Check | None, which: Which, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Snapshot | None:
        """Take ``check``'s capture for a call, encoded; None when there is no check."""
        if check is None:
            return None
        value = _guarded(check.capture, args, kwargs)
        try:
            return Snapshot(encode(value, f"the {which}-check capture"), value)
        except EncodeError as error:
            raise EncodeError(f"tool {self.name}: {error}") from None

    def begin(
        self, run: Recorder, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[int, Step, Snapshot | None]:
        """Before a recorded call: its start number, its step (taken before the tool can
        mutate its arguments) and the pre-check's capture."""
        number = run.start()
        call_args = args[1:] if self.is_method else args
        template = run.template_call(call_args, kwargs)
        if self.sensitive:
            template = self._redact(template)
        step = Step(self.name, self.code, self.encode_call(template))
        return number, step, self.capture(self.pre_check, "pre", args, kwargs)

    def finish(
        self,
        run: Recorder,
        number: int,
        step: Step,
        pre: Snapshot | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any,
    ) -> None:
        """After a call that succeeded: add it, with the post-check's capture and what it
        returned, to the run, in the place its start ``number`` gives it."""
        post = self.capture(self.post_check, "post", args, kwargs)
        run.add(number, RecordedCall(step, pre, post), result)

    def _redact(self, template: tuple[tuple[Any, ...], dict[str, Any]]) -> Any:
        """Replace sensitive arguments that are not exactly a param: they are never stored."""

        def hide(name: str, value: Any) -> Any:
            return Redacted(name) if name in self.sensitive and type(value) is not Param else value

        args, kwargs = template
        args = tuple(hide(self.argument_name(i), v) for i, v in enumerate(args))
        return args, {k: hide(k, v) for k, v in kwargs.items()}

    def encode_call(self, template: tuple[tuple[Any, ...], dict[str, Any]]) -> bytes:
        try:
            return encode_call(template)  # keeps the order of the dicts it was passed
        except EncodeError:
            pass
        # Encode again argument by argument, only to name the culprit in the error.
        args, kwargs = template
        for i, value in enumerate(args):
            encode(value, f"argument {self.argument_name(i)!r} of tool {self.name}")
        for key, value in kwargs.items():
            encode(value, f"argument {key!r} of tool {self.name}")
        raise AssertionError("unreachable: some argument failed to encode")

    def argument_name(self, position: int) -> str:
        """The name of the parameter a positional argument (``self`` not counted) binds
        to; its position as text past the named ones (``*args``)."""
        names = list(self._signature.parameters) if self._signature is not None else []
        at = position + (1 if self.is_method else 0)
        if at < len(names) and self._signature is not None:
            parameter = self._signature.parameters[names[at]]
            if parameter.kind <= parameter.POSITIONAL_OR_KEYWORD:
                return names[at]
        return str(position)

    @functools.cached_property
    def _signature(self) -> inspect.Signature | None:
        try:
            return inspect.signature(self.func)
        except (TypeError, ValueError):
            return None  # a builtin without one

    @functools.cached_property
    def _naming(self) -> tuple[tuple[str, ...] | None, tuple[tuple[str, Any], ...]]:
        """The names positional arguments take in order (None with ``*args``: they need
        ``Signature.bind``) and the defaults, worked out once: ``inspect.signature`` and
        ``bind`` cost more than the rest of a replayed step together."""
        signature = self._signature
        params = signature.parameters.values() if signature is not None else ()
        positional = (
            None
            if signature is None or any(p.kind is p.VAR_POSITIONAL for p in params)
            else tuple(p.name for p in params if p.kind <= p.POSITIONAL_OR_KEYWORD)
        )
        return positional, tuple((p.name, p.default) for p in params if p.default is not p.empty)

    def arguments_by_name(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """A call's arguments by parameter name, defaults included, without an injected
        ``self``; extra keyword arguments (``**kwargs``) are named as passed."""
        signature = self._signature
        positional, defaults = self._naming
        if positional is not None and len(args) <= len(positional):
            named = dict(zip(positional, args, strict=False))
            named.update(kwargs)
            for name, default in defaults:
                named.setdefault(name, default)
        else:
            try:
                if signature is None:
                    raise TypeError
                bound = signature.bind(*args, **kwargs)
            except TypeError:  # cannot bind: positions stand for names
                user_args = args[1:] if self.is_method else args
                return {**{str(i): v for i, v in enumerate(user_args)}, **kwargs}
            bound.apply_defaults()
            named = {}
            for name, value in bound.arguments.items():
                if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                    named.update(value)
                else:
                    named[name] = value
        if self.is_method and signature is not None and signature.parameters:
            named.pop(next(iter(signature.parameters)), None)  # self, injected by replay
        return named


def _is_function(func: Any) -> bool:
    return hasattr(inspect.unwrap(func), "__code__")


def run_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to its end from synchronous code, inside an event loop or not."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    # A loop already runs in this thread (a sync engine called from async code):
    # give the coroutine a loop of its own in a helper thread, with our context.
    context = contextvars.copy_context()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = context.run(asyncio.run, coroutine)
        except BaseException as error:
            box["error"] = error

    thread = threading.Thread(target=target, name="muscle-mem-async-tool")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]
