"""Tools: the decorated functions an agent calls, their identity, and how they record.

A tool is known by its qualified name and a fingerprint of its code and its checks'
code. A step recorded with other code is never replayed: change a tool and its old
trajectories fall silent, the way joblib.Memory forgets results of a changed function.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import contextvars
import functools
import hashlib
import inspect
import sys
import textwrap
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .checks import Check
from .codec import encode
from .errors import EncodeError
from .models import Param, Redacted, Step
from .recording import RecordedCall, Run, Snapshot, current_run, inside_tool

if TYPE_CHECKING:
    from .engine import Engine

_fingerprints: dict[Any, str] = {}


def fingerprint(func: Callable[..., Any] | None) -> str:
    """A stable hash of a function's code, prefixed by how it was taken.

    ``ast1:`` hashes the source's syntax tree without decorators, so reformatting and
    comments don't count; ``code1-pyX.Y:`` hashes the code object where the source
    can't be read (a REPL, a lambda sharing its line); ``name:`` is all a builtin has.
    """
    if func is None:
        return "none:"
    target = inspect.unwrap(func)
    try:
        cached = _fingerprints.get(target)
    except TypeError:  # unhashable callable
        cached = None
    if cached is not None:
        return cached
    result = _source_fingerprint(target) or _code_fingerprint(target) or f"name:{_name(target)}"
    with contextlib.suppress(TypeError):
        _fingerprints[target] = result
    return result


def _hash(data: str | bytes) -> str:
    return hashlib.blake2b(
        data.encode() if isinstance(data, str) else data, digest_size=16
    ).hexdigest()


def _source_fingerprint(func: Any) -> str | None:
    try:
        source = textwrap.dedent(inspect.getsource(func))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None  # a lambda's line holds more than the lambda: hash its code instead
    definition = tree.body[0]
    definition.decorator_list = []
    return "ast1:" + _hash(ast.dump(definition, annotate_fields=False, include_attributes=False))


def _code_fingerprint(func: Any) -> str | None:
    code = getattr(func, "__code__", None)
    if code is None:
        return None
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return f"code1-py{version}:" + _hash(_code_bytes(code))


def _code_bytes(code: Any) -> bytes:
    # Names count as much as bytecode: `lambda: env["a"]` and `lambda: other["a"]`
    # differ only in co_freevars. Nested code objects are hashed, never repr'd (their
    # repr holds a memory address).
    parts = [code.co_code]
    parts += [_code_bytes(c) if hasattr(c, "co_code") else repr(c).encode() for c in code.co_consts]
    parts += [
        repr(names).encode()
        for names in (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)
    ]
    return b"".join(len(p).to_bytes(8, "little") + p for p in parts)


def _name(func: Any) -> str:
    module = getattr(func, "__module__", None) or "?"
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    name = f"{module}.{qualname or type(func).__qualname__}"
    code = getattr(func, "__code__", None)
    if code is not None and code.co_name == "<lambda>":
        name += f"@{code.co_firstlineno}"  # lambdas all share one qualified name
    return name


def _guarded(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``func`` (a tool, or a check's capture) so that tools it calls are part of it,
    not steps of their own."""
    if current_run.get() is None:  # replay, outside any recording: nothing to guard
        return func(*args, **kwargs)
    token = inside_tool.set(True)
    try:
        return func(*args, **kwargs)
    finally:
        inside_tool.reset(token)


def _check_fingerprint(check: Check | None) -> str:
    if check is None:
        return "-"
    return f"{fingerprint(check.capture)}|{fingerprint(check.compare)}|{check.threshold!r}"


class Tool:
    """A function or method the engine records and replays."""

    def __init__(
        self,
        engine: Engine,
        func: Callable[..., Any],
        *,
        is_method: bool,
        pre_check: Check | None,
        post_check: Check | None,
        sensitive: tuple[str, ...] = (),
    ) -> None:
        self.engine = engine
        self.func = func
        self.name = _name(func)
        self.is_method = is_method
        self.is_async = inspect.iscoroutinefunction(func)
        self.pre_check = pre_check
        self.post_check = post_check
        self.sensitive = sensitive
        self.code = "tool1:" + _hash(
            "\n".join(
                [fingerprint(func), _check_fingerprint(pre_check), _check_fingerprint(post_check)]
            )
        )

    def __repr__(self) -> str:
        kind = "method" if self.is_method else "function"
        return f"<muscle_mem {kind} tool {self.name}>"

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
                run = current_run.get()
                if run is None or run.engine is not tool.engine or inside_tool.get():
                    return await func(*args, **kwargs)
                step, pre = tool.begin(run, args, kwargs)
                result = await tool.await_inside(args, kwargs)
                tool.finish(run, step, pre, args, kwargs)
                return result

            async_wrapper.__muscle_mem_tool__ = tool  # type: ignore[attr-defined]
            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            run = current_run.get()
            if run is None or run.engine is not tool.engine or inside_tool.get():
                return func(*args, **kwargs)
            step, pre = tool.begin(run, args, kwargs)
            result = tool.call_inside(args, kwargs)
            tool.finish(run, step, pre, args, kwargs)
            return result

        wrapper.__muscle_mem_tool__ = tool  # type: ignore[attr-defined]
        return wrapper

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
        self, check: Check | None, which: str, args: tuple[Any, ...], kwargs: dict[str, Any]
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
        self, run: Run, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Step, Snapshot | None]:
        """Before a recorded call: its step (taken before the tool can mutate its
        arguments) and the pre-check's capture."""
        call_args = args[1:] if self.is_method else args
        template = run.template_call(call_args, kwargs)
        if self.sensitive:
            template = self._redact(template)
        step = Step(self.name, self.code, self.encode_call(template))
        return step, self.capture(self.pre_check, "pre", args, kwargs)

    def finish(
        self,
        run: Run,
        step: Step,
        pre: Snapshot | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        """After a call that succeeded: add it, with the post-check's capture, to the run."""
        post = self.capture(self.post_check, "post", args, kwargs)
        run.calls.append(RecordedCall(step, pre, post))

    def _redact(self, template: tuple[tuple[Any, ...], dict[str, Any]]) -> Any:
        """Replace sensitive arguments that are not exactly a param: they are never stored."""

        def hide(name: str, value: Any) -> Any:
            return Redacted(name) if name in self.sensitive and type(value) is not Param else value

        args, kwargs = template
        names = self._parameter_names()[1 if self.is_method else 0 :]
        args = tuple(hide(names[i], v) if i < len(names) else v for i, v in enumerate(args))
        return args, {k: hide(k, v) for k, v in kwargs.items()}

    def encode_call(self, template: tuple[tuple[Any, ...], dict[str, Any]]) -> bytes:
        try:
            return encode(template)
        except EncodeError:
            pass
        # Encode again argument by argument, only to name the culprit in the error.
        args, kwargs = template
        names = self._parameter_names()
        offset = 1 if self.is_method else 0
        for i, value in enumerate(args):
            name = names[i + offset] if i + offset < len(names) else str(i)
            encode(value, f"argument {name!r} of tool {self.name}")
        for key, value in kwargs.items():
            encode(value, f"argument {key!r} of tool {self.name}")
        raise AssertionError("unreachable: some argument failed to encode")

    def _parameter_names(self) -> list[str]:
        try:
            return list(inspect.signature(self.func).parameters)
        except (TypeError, ValueError):
            return []


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
