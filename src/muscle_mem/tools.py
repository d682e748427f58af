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

Arguments named in ``inject=`` (a framework's run context, a client) are the run's, not
the call's: they are left out of the step, so never encoded and never part of a node's
identity, and whoever replays supplies them again (:meth:`Tool.supply`). Checks'
captures still receive them. So are, without ``inject=``, the parameters annotated with
a type given to :func:`register_context_type` (each framework adapter gives its
framework's context types when it is imported): the core knows no framework's names.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
import types
import warnings
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from .checks import Check
from .codec import encode, encode_call
from .errors import ConfigurationError, EncodeError, UnrecordedCallWarning
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


# The types whose parameters are a run's context, not a call's data (register_context_type).
_context_types: tuple[type, ...] = ()
_context_lock = threading.Lock()


def register_context_type(*kinds: type) -> None:
    """Treat every tool parameter annotated with one of ``kinds`` as injected, as if the
    tool named it in ``inject=``: left out of the recorded step, and supplied at replay
    by the run's ``inject={name: value}``.

    A parameter matches when its annotation is one of ``kinds`` or a subclass, a
    parameterized form of one (``RunContext[Deps]``), an optional one
    (``RunContext | None``), or an ``Annotated[..., marker]`` whose marker is one or an
    instance of one (LangChain's ``InjectedToolArg``). Framework adapters register their
    framework's context types when imported, so ``@engine.function`` on a tool taking
    ``ctx: RunContext`` records without ``inject=``. Tools decorated before a type is
    registered keep what they were decorated with: register first.
    """
    global _context_types
    for kind in kinds:
        if not isinstance(kind, type):
            raise ConfigurationError(
                f"register_context_type() takes classes (a framework's context type, "
                f"e.g. RunContext), got {kind!r}"
            )
    with _context_lock:
        _context_types = tuple(dict.fromkeys((*_context_types, *kinds)))


def context_parameters(func: Callable[..., Any], is_method: bool) -> tuple[str, ...]:
    """The parameters of ``func`` (``self`` aside) annotated with a registered context
    type (:func:`register_context_type`), in signature order."""
    kinds = _context_types
    if not kinds:
        return ()  # nothing registered: no signature to read
    # Adapters register a closure per tool on every run: the same def, the same
    # annotations, so the same answer, which resolving annotations makes worth keeping.
    target = inspect.unwrap(func)
    try:
        key: Any = (
            target.__code__,
            tuple(target.__annotations__.items()),
            id(target.__globals__),
            is_method,
            kinds,
        )
        found = _found_contexts.get(key)
    except (AttributeError, TypeError):  # not a plain function, or unhashable annotations
        key = found = None
    if found is None:
        found = _context_parameters(func, is_method, kinds)
        if key is not None:
            if len(_found_contexts) >= 1024:
                _found_contexts.clear()
            _found_contexts[key] = found
    return found


_found_contexts: dict[Any, tuple[str, ...]] = {}


def _context_parameters(
    func: Callable[..., Any], is_method: bool, kinds: tuple[type, ...]
) -> tuple[str, ...]:
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return ()  # a builtin: no annotations
    if is_method:
        parameters = parameters[1:]
    try:  # string annotations (from __future__ import annotations) resolved
        hints = get_type_hints(inspect.unwrap(func), include_extras=True)
    except Exception:  # a name only a type checker sees: the annotations as written
        hints = {}
    return tuple(
        p.name
        for p in parameters
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and _is_context(hints.get(p.name, p.annotation), kinds)
    )


def _is_context(annotation: Any, kinds: tuple[type, ...]) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *marks = get_args(annotation)
        # A marker is a registered class, or an instance of one (InjectedState("x")).
        return _is_context(base, kinds) or any(
            _subclass(mark, kinds) or _subclass(type(mark), kinds) for mark in marks
        )
    if origin is Union or origin is types.UnionType:  # Optional[X], X | None
        return any(_is_context(arg, kinds) for arg in get_args(annotation))
    return _subclass(origin or annotation, kinds)


def _subclass(value: Any, kinds: tuple[type, ...]) -> bool:
    return isinstance(value, type) and any(_is_subclass(value, kind) for kind in kinds)


def _is_subclass(value: type, kind: type) -> bool:
    try:
        return issubclass(value, kind)
    except TypeError:  # a TypedDict (LangChain's RunnableConfig) refuses class checks
        return value is kind


class NotInjected(LookupError):
    """Replay has no value for an argument the tool takes from the run (``inject=``)."""


class Tool:
    """A function or method the engine records and replays.

    ``scope`` is the engine the tool belongs to, compared by identity only: the tool
    records into runs of that engine and no other. ``inject`` names the arguments that
    are supplied by whoever runs or replays it, never recorded. ``by_name`` says the tool
    was registered by name for a callable the user may not own (``engine.tool``): its
    name, not its code, is what one registration replaces another by.
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
        inject: tuple[str, ...] = (),
        by_name: bool = False,
    ) -> None:
        self.scope = scope
        self.func = func
        self.qualified_name = tool_name(func)
        self.name = self.qualified_name if name is None else name
        self.is_method = is_method
        # A callable object's __call__ may be the coroutine function (an MCP client's
        # proxy, a framework's tool object), which iscoroutinefunction(obj) does not see.
        self.is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            inspect.getattr_static(type(func), "__call__", None)
        )
        self.pre_check = pre_check
        self.post_check = post_check
        self.sensitive = sensitive
        self.inject = inject
        self.by_name = by_name
        self._injected = self._inject_places(inject)
        # "version:" cannot be mistaken for a fingerprint (each starts "ast1:", "code1-",
        # "name:" or "none:"), so a version never equals some code's identity.
        code = fingerprint(func) if version is None else f"version:{version}"
        parts = [code, check_fingerprint(pre_check), check_fingerprint(post_check)]
        if inject:
            # A step recorded with the argument in it can't be replayed with it supplied
            # again (nor the reverse); without inject= the identity is as it always was.
            parts.append("inject:" + ",".join(sorted(inject)))
        self.code = "tool1:" + digest("\n".join(parts))
        self._warned = False  # about a call from a thread that no run could claim

    def __repr__(self) -> str:
        kind = "method" if self.is_method else "function"
        return f"<muscle_mem {kind} tool {self.name}>"

    def same_definition(self, other: Tool) -> bool:
        """Whether ``other`` comes from the same definition as this tool: a function of
        the same qualified name (the same ``def``, perhaps re-run by a module reload or a
        notebook cell, perhaps edited), or else the very same callable object. Tools
        registered by name are the same definition exactly when their names are: an
        adapter's proxies are lambdas of one ``def``, one per tool."""
        if self.by_name or other.by_name:
            return self.by_name and other.by_name and self.name == other.name
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

    def _inject_places(self, names: tuple[str, ...]) -> tuple[tuple[str, int | None, bool], ...]:
        """For each injected argument: its name, its position among the positional
        parameters (``self`` not counted; None for a keyword-only one, or one only
        ``**kwargs`` takes) and whether replay must supply it (it has no default).
        Sorted by position, keyword-only last. Raises ConfigurationError for a name the
        function can't take, or one after which positional arguments couldn't be named
        (``*args``), since recording passes those by name."""
        if not names:
            return ()
        where = getattr(self.func, "__qualname__", None) or self.qualified_name
        signature = self._signature
        if signature is None:
            raise ConfigurationError(
                f"inject= needs the signature of {where}, which can't be read; wrap it in "
                "a function that takes the injected arguments by name"
            )
        parameters = list(signature.parameters.values())
        if self.is_method:
            if parameters and parameters[0].name in names:
                raise ConfigurationError(
                    f"inject= names {parameters[0].name!r}, the instance of method {where}: "
                    "engine.set_context() supplies it at replay already"
                )
            parameters = parameters[1:]
        positional = [p for p in parameters if p.kind <= p.POSITIONAL_OR_KEYWORD]
        by_name = {p.name: p for p in parameters}
        takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters)
        places: list[tuple[str, int | None, bool]] = []
        for name in names:
            parameter = by_name.get(name)
            if parameter is None or parameter.kind is parameter.VAR_KEYWORD:
                if not takes_any or parameter is not None:
                    raise ConfigurationError(
                        f"inject= names {name!r}, not an argument of {where}; name the "
                        "parameter that receives the context, e.g. inject=['ctx']"
                    )
                places.append((name, None, False))
                continue
            if parameter.kind is parameter.POSITIONAL_ONLY:
                raise ConfigurationError(
                    f"inject= names {name!r}, a positional-only argument of {where}; "
                    "replay may have to pass it by name, so it must accept one"
                )
            if parameter.kind is parameter.VAR_POSITIONAL:
                raise ConfigurationError(
                    f"inject= names {name!r}, the *{name} of {where}: name one parameter"
                )
            required = parameter.default is parameter.empty
            if parameter.kind is parameter.KEYWORD_ONLY:
                places.append((name, None, required))
                continue
            places.append((name, positional.index(parameter), required))
            if any(p.kind is p.VAR_POSITIONAL for p in parameters):
                raise ConfigurationError(
                    f"inject= names {name!r}, a positional argument of {where}, which also "
                    "takes *args: the arguments after it can't be recorded by name. Make "
                    f"{name!r} keyword-only, or wrap the function"
                )
        return tuple(sorted(places, key=lambda p: (p[1] is None, p[1] or 0)))

    def strip(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """A call's arguments (``self`` already left out) without the injected ones.

        Positional arguments after an injected one are passed by name instead, so the
        recorded call has no gap that replay would have to know about: ``f(ctx, 1)`` and
        ``f(a=1, ctx=ctx)`` are one step, ``f(a=1)``.
        """
        if not self._injected:
            return args, kwargs
        kwargs = {k: v for k, v in kwargs.items() if k not in self.inject}
        removed = {at for _, at, _ in self._injected if at is not None and at < len(args)}
        if not removed:
            return args, kwargs
        first = min(removed)
        names = self._positional_names
        if len(args) > len(names):  # the call itself would raise this, after begin()
            raise TypeError(
                f"{self.name}() takes {len(names)} positional arguments but {len(args)} were given"
            )
        moved = {names[at]: args[at] for at in range(first, len(args)) if at not in removed}
        return args[:first], {**moved, **kwargs}

    def supply(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], values: Mapping[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """A recorded call's arguments (``self`` not included) with the injected ones
        put back from ``values``: at their position where the call reaches it, else by
        name. One with a default that ``values`` lacks is left to its default; raises
        :class:`NotInjected` for one without. Never changes ``args`` or ``kwargs``."""
        if not self._injected:
            return args, kwargs
        positional, named = list(args), dict(kwargs)
        for name, at, required in self._injected:
            if name not in values:
                if required:
                    raise NotInjected(name)
                continue
            if at is not None and at <= len(positional):
                positional.insert(at, values[name])
            else:
                named[name] = values[name]
        return tuple(positional), named

    @functools.cached_property
    def _positional_names(self) -> tuple[str, ...]:
        """The positional parameters' names, ``self`` not counted."""
        signature = self._signature
        assert signature is not None  # inject= (the only user) requires one
        names = tuple(
            p.name for p in signature.parameters.values() if p.kind <= p.POSITIONAL_OR_KEYWORD
        )
        return names[1:] if self.is_method else names

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

    def call_recorded(self, run: Recorder, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call the tool as a step of ``run``, from any thread: what the wrapper does
        when the run is in its context, for a caller that names the run instead."""
        token = current_recorder.set(run)  # tools it calls are part of it
        try:
            number, step, pre = self.begin(run, args, kwargs)
            result = self.call_sync(args, kwargs)
            self.finish(run, number, step, pre, args, kwargs, result)
            return result
        finally:
            current_recorder.reset(token)

    async def acall_recorded(
        self, run: Recorder, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """:meth:`call_recorded` from async code: an async tool is awaited."""
        token = current_recorder.set(run)
        try:
            number, step, pre = self.begin(run, args, kwargs)
            result = await self.call_async(args, kwargs)
            self.finish(run, number, step, pre, args, kwargs, result)
            return result
        finally:
            current_recorder.reset(token)

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
        call_args, call_kwargs = self.strip(args[1:] if self.is_method else args, kwargs)
        template = run.template_call(call_args, call_kwargs)
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
        try:
            for i, value in enumerate(args):
                encode(value, f"argument {self.argument_name(i)!r} of tool {self.name}")
            for key, value in kwargs.items():
                encode(value, f"argument {key!r} of tool {self.name}")
        except EncodeError as error:
            raise EncodeError(
                f"{error} If the argument is the run's context (a framework's ctx, a "
                "client) rather than data, name it in inject=[...] or register its type "
                "with muscle_mem.register_context_type()."
            ) from None
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
        ``self`` or the arguments named in ``inject=``; extra keyword arguments
        (``**kwargs``) are named as passed."""
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
                user_args, user_kwargs = self.strip(args[1:] if self.is_method else args, kwargs)
                return {**{str(i): v for i, v in enumerate(user_args)}, **user_kwargs}
            bound.apply_defaults()
            named = {}
            for name, value in bound.arguments.items():
                if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
                    named.update(value)
                else:
                    named[name] = value
        if self.is_method and signature is not None and signature.parameters:
            named.pop(next(iter(signature.parameters)), None)  # self, injected by replay
        for name in self.inject:
            named.pop(name, None)
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
