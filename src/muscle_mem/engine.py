"""Engine: wraps an agent, replays what it recorded, and hands over when it must.

The engine is the builder (its tools, agent and context objects) and the two drivers
of a run, sync and async; what one run does from its task key to its log line is
:class:`~muscle_mem.run.Run`'s.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, overload

from . import keys
from .checks import Check
from .errors import ConfigurationError
from .models import Mode, OnDivergence, Outcome
from .run import Run
from .session import Session
from .stats import Stats, compute
from .store import Store, open_store
from .tools import Tool, context_parameters


class Engine:
    """A behavior cache around an agent.

    ``Engine()`` keeps its cache in memory (or in ``$MUSCLE_MEM_STORE``); ``store=``
    takes a :class:`Store`, a URL (``sqlite:///cache.db``, ``postgresql://...``) or a
    path ending in ``.db``.
    ``match_task=False`` keys the cache by tags alone, ignoring the task's arguments.
    ``on_divergence`` says what happens when replay stops half-way: ``"handoff"``
    (default), ``"restart"`` or ``"raise"``. ``secret`` signs what is stored (HMAC) so
    that rows nobody with the secret wrote are never replayed.
    ``mode`` says how runs use the cache, unless a call says otherwise: ``"auto"``
    (default: replay, else call the agent and learn), ``"replay"`` (never call the
    agent: raise :class:`~muscle_mem.ReplayMissError`), ``"record"`` (call the agent
    and record, replaying nothing) or ``"off"`` (call the agent; replay, record and log
    nothing).
    ``provenance`` (default True) records where each value the agent passed came from
    (a param, an earlier step's result, or its own choice) and replays values from
    results by reading this run's results, never the recorded ones: what makes one path
    safe to replay for another customer. ``provenance=False`` records literals, as
    versions before 0.3 did: a path recorded for one customer then replays that
    customer's ids for every other one whose checks happen to pass.
    ``approved_only=True`` replays only the paths a person approved (``muscle-mem
    approve``, :meth:`Store.approve <muscle_mem.store.Store.approve>`, or an edited
    ``muscle-mem export --dir``); any other path is a miss whose reason says how to
    approve it. Made for ``mode="replay"`` (a strict replay in production: nothing runs
    that nobody reviewed), it works with every mode. Paths recorded from then on start
    unapproved.
    """

    def __init__(
        self,
        store: Store | str | Path | None = None,
        *,
        match_task: bool = True,
        on_divergence: str | OnDivergence = OnDivergence.HANDOFF,
        secret: str | bytes | None = None,
        mode: str | Mode = Mode.AUTO,
        provenance: bool = True,
        approved_only: bool = False,
    ) -> None:
        self.on_divergence = _policy(on_divergence)  # checked first: a bad one opens nothing
        self.mode = _mode(mode)
        self.provenance = _flag(provenance, "provenance")
        self.approved_only = _flag(approved_only, "approved_only")
        self.match_task = match_task
        self.store = open_store(store, secret=secret)
        self._owns_store = not isinstance(store, Store)
        self._agent: Callable[..., Any] | None = None
        self._contexts: list[Any] = []
        self._tools: dict[str, Tool] = {}

    def __repr__(self) -> str:
        return (
            f"Engine(store={self.store!r}, tools={len(self._tools)}, "
            f"on_divergence={self.on_divergence.value!r}, mode={self.mode.value!r})"
        )

    def close(self) -> None:
        """Close the store if the engine opened it (from a URL, a path or
        ``$MUSCLE_MEM_STORE``); a :class:`Store` passed in stays open for its owner."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- building ------------------------------------------------------------------

    @overload
    def function(self, func: Callable[..., Any], /) -> Callable[..., Any]: ...
    @overload
    def function(
        self,
        /,
        *,
        pre_check: Check | None = None,
        post_check: Check | None = None,
        sensitive: Iterable[str] = (),
        name: str | None = None,
        version: str | int | None = None,
        inject: Iterable[str] = (),
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    def function(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        pre_check: Check | None = None,
        post_check: Check | None = None,
        sensitive: Iterable[str] = (),
        name: str | None = None,
        version: str | int | None = None,
        inject: Iterable[str] = (),
    ) -> Any:
        """Make a function a tool: its calls during a run are recorded and replayable.

        Works as ``@engine.function`` and as ``@engine.function(pre_check=...)``.
        ``sensitive`` names arguments (passwords, tokens) that are never stored: they
        must be params of the run, and a call where one is not is not replayable.

        ``name`` is the tool's name in what is recorded, in place of its module and
        qualified name, so steps survive moving or renaming it. ``version`` stands for
        the tool's code: editing its body keeps its steps until the version changes.
        Its checks' code still counts, so a changed check never replays old steps.

        ``inject`` names arguments that belong to the run, not the call (a framework's
        ``ctx``, a client): they are left out of the recorded step, so they need not be
        data, and replay passes the values the run was given with ``inject={name:
        value}`` (``engine(..., inject=...)``, ``engine.session(..., inject=...)``).
        Checks' captures still receive them.
        """
        return self._decorator(func, False, pre_check, post_check, sensitive, name, version, inject)

    @overload
    def method(self, func: Callable[..., Any], /) -> Callable[..., Any]: ...
    @overload
    def method(
        self,
        /,
        *,
        pre_check: Check | None = None,
        post_check: Check | None = None,
        sensitive: Iterable[str] = (),
        name: str | None = None,
        version: str | int | None = None,
        inject: Iterable[str] = (),
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    def method(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        pre_check: Check | None = None,
        post_check: Check | None = None,
        sensitive: Iterable[str] = (),
        name: str | None = None,
        version: str | int | None = None,
        inject: Iterable[str] = (),
    ) -> Any:
        """Make a method a tool. ``self`` is not recorded: replay injects the object
        given to :meth:`set_context`. Checks' captures receive ``self`` too. Takes the
        same arguments as :meth:`function`."""
        return self._decorator(func, True, pre_check, post_check, sensitive, name, version, inject)

    def tool(
        self,
        call: Callable[..., Any],
        /,
        *,
        name: str,
        version: str | int | None = None,
        pre_check: Check | None = None,
        post_check: Check | None = None,
        sensitive: Iterable[str] = (),
        inject: Iterable[str] = (),
    ) -> Callable[..., Any]:
        """Register a callable you may not own (an MCP tool's proxy, a framework's tool,
        a lambda, a ``functools.partial``, a callable object) as the tool ``name``, and
        return it wrapped: calls to the wrapper during a run are recorded, and
        :meth:`Session.call <muscle_mem.Session.call>` calls it by name. Sync or async
        (an ``async def``, or an object whose ``__call__`` is one) alike.

        ``version`` stands for the tool's code, e.g. a hash of an MCP tool's description
        and input schema: steps recorded under another version are never replayed.
        Without it the callable's code is fingerprinted (a partial's function, a
        callable object's ``__call__``). Registering ``name`` again replaces the earlier
        registration (an adapter re-wrapping its tools); a name taken by a decorated
        function or method is refused. The other arguments are :meth:`function`'s.
        """
        if type(name) is not str or not name.strip():
            raise ConfigurationError(
                f"engine.tool(call, name=...) takes a non-empty string, e.g. "
                f"name='mcp:files/read'; got {name!r}"
            )
        if not callable(call) or isinstance(call, Check):
            raise ConfigurationError(
                f"engine.tool(call, name=...) takes the callable to run as its first "
                f"argument, got {type(call).__qualname__}"
            )
        register = self._decorator(
            None, False, pre_check, post_check, sensitive, name, version, inject, by_name=True
        )
        wrapped: Callable[..., Any] = register(call)
        return wrapped

    def _decorator(
        self,
        func: Callable[..., Any] | None,
        is_method: bool,
        pre_check: Check | None,
        post_check: Check | None,
        sensitive: Iterable[str],
        name: str | None = None,
        version: str | int | None = None,
        inject: Iterable[str] = (),
        *,
        by_name: bool = False,
    ) -> Any:
        kind = "tool" if by_name else "method" if is_method else "function"
        label = "engine.tool" if by_name else f"@engine.{kind}"  # how messages name the call
        if name is not None and (type(name) is not str or not name.strip()):
            raise ConfigurationError(
                f"{label}(name=...) takes a non-empty string, e.g. name='greet'; got {name!r}"
            )
        if version is not None:
            if type(version) not in (str, int) or str(version).strip() == "":
                raise ConfigurationError(
                    f"{label}(version=...) takes a non-empty string or an int, "
                    f"e.g. version='2'; got {version!r}"
                )
            version = str(version)  # version=2 and version="2" are one version
        secret_names = keys.strings(
            sensitive,
            f"{label}(sensitive=...) takes a list of argument names, e.g. sensitive=['password']",
        )
        injected = keys.strings(
            inject,
            f"{label}(inject=...) takes a list of argument names, e.g. inject=['ctx']",
        )
        both = sorted(set(injected) & set(secret_names))
        if both:
            raise ConfigurationError(
                f"{label}: {', '.join(map(repr, both))} is both sensitive= and "
                "inject=; an injected argument is never stored, so inject= alone says it"
            )
        for option, check in (("pre_check", pre_check), ("post_check", post_check)):
            if check is not None and not isinstance(check, Check):
                raise ConfigurationError(
                    f"{label}({option}=...) takes a Check(capture, compare), "
                    f"got {type(check).__qualname__}"
                )

        def register(target: Callable[..., Any]) -> Callable[..., Any]:
            if isinstance(target, (staticmethod, classmethod)) or not callable(target):
                raise ConfigurationError(
                    f"{label} decorates a plain function or method, got {type(target).__qualname__}"
                )
            unknown = _unknown_arguments(target, secret_names)
            if unknown:
                raise ConfigurationError(
                    f"{label}(sensitive=...) names {', '.join(map(repr, unknown))}, "
                    f"not arguments of {getattr(target, '__qualname__', target)}"
                )
            # Parameters annotated with a registered context type are injected too.
            detected = context_parameters(target, is_method)
            if set(detected) & set(secret_names):
                raise ConfigurationError(
                    f"{label}(sensitive=...) names a framework context argument of "
                    f"{getattr(target, '__qualname__', target)} ({', '.join(detected)}), "
                    "which is never stored anyway: leave it out of sensitive="
                )
            tool = Tool(
                self,
                target,
                is_method=is_method,
                pre_check=pre_check,
                post_check=post_check,
                sensitive=secret_names,
                name=name,
                version=version,
                inject=tuple(dict.fromkeys((*injected, *detected))),
                by_name=by_name,
            )
            self._register(tool, kind)
            return tool.wrap()

        if func is None:
            return register
        if isinstance(func, Check):
            raise ConfigurationError(
                f"{label} got a Check as its argument; pass it by name: "
                f"{label}(pre_check=Check(...))"
            )
        return register(func)

    def _register(self, tool: Tool, kind: str) -> None:
        """Add a tool. The same definition decorated again (a module reloaded, a notebook
        cell re-run) replaces its earlier registration, under whatever name that had; a
        different one under a taken name would replay the other's steps, so it is refused.
        A tool registered by name (:meth:`tool`) replaces one registered so under that
        name, and only such a one."""
        taken = self._tools.get(tool.name)
        if taken is not None and not taken.same_definition(tool):
            hint = (
                "engine.tool(name=...) registers only names no decorated tool has"
                if taken.by_name or tool.by_name
                else f"give one of them another @engine.{kind}(name=...)"
            )
            raise ConfigurationError(
                f"two tools are named {tool.name!r} on this engine: {taken.qualified_name} "
                f"and {tool.qualified_name}; {hint}"
            )
        for old_name, old in list(self._tools.items()):
            if old.same_definition(tool):
                del self._tools[old_name]
        self._tools[tool.name] = tool

    def set_agent(self, agent: Callable[..., Any]) -> Engine:
        """The agent to call on a cache miss, with the arguments the engine was given."""
        if not callable(agent):
            raise ConfigurationError(
                f"set_agent() takes a callable, got {type(agent).__qualname__}"
            )
        self._agent = agent
        return self

    def set_context(self, context: Any) -> Engine:
        """An object to inject as ``self`` when replaying its class's method tools.

        Call it once per class; a later object of the same class replaces the earlier.
        """
        self._contexts = [c for c in self._contexts if type(c) is not type(context)]
        self._contexts.append(context)
        return self

    def finalize(self) -> Engine:
        """Check that the engine has all it needs to run, and say what is missing."""
        if self._agent is None:
            raise ConfigurationError("the engine has no agent: call engine.set_agent(agent)")
        if not self._tools:
            raise ConfigurationError(
                "the engine has no tools: decorate the agent's tools with "
                "@engine.function() or @engine.method()"
            )
        missing = sorted(
            f"{tool.name} (needs a {tool.owner})"
            for tool in self._tools.values()
            if tool.is_method and self._context_for(tool) is None
        )
        if missing:
            raise ConfigurationError(
                "method tools without a context object: "
                + ", ".join(missing)
                + "; pass an instance with engine.set_context(obj)"
            )
        return self

    def _context_for(self, tool: Tool) -> Any:
        name = tool.func.__name__
        for context in self._contexts:
            attribute = inspect.getattr_static(type(context), name, None)
            if getattr(attribute, "__muscle_mem_tool__", None) is tool:
                return context
        return None

    # -- running -------------------------------------------------------------------

    def __call__(
        self,
        *args: Any,
        tags: Iterable[str] | None = None,
        params: Mapping[str, Any] | None = None,
        about: Any = None,
        mode: str | Mode | None = None,
        inject: Mapping[str, Any] | None = None,
        approved_only: bool | None = None,
        **kwargs: Any,
    ) -> Outcome:
        """Run a task: replay it from cache if the checks allow, else call the agent.

        Every argument but ``tags``, ``params``, ``about``, ``mode``, ``inject`` and
        ``approved_only`` goes to the agent unchanged. ``about`` names what the run was
        about (a memory bank entity, or a ``"kind:id"`` string): the run log records it,
        and the bank lists the run among that entity's episodes. ``mode`` and
        ``approved_only`` override the engine's for this run. ``inject`` gives, by
        argument name, the values replay passes to tools' injected arguments (``inject=``
        of the tool); they are not part of the task key.
        The result is truthy exactly on a full cache hit.
        """
        with self._run(args, kwargs, tags, params, about, mode, inject, approved_only) as run:
            if run.replay_steps():
                return run.finish()
            with run.agent() as agent:
                result = agent(*args, **kwargs)
                if inspect.isawaitable(result):
                    if inspect.iscoroutine(result):
                        result.close()
                    raise ConfigurationError(
                        "the agent returned an awaitable: for an async agent use "
                        "`await engine.arun(...)`"
                    )
            return run.finish(result)

    async def arun(
        self,
        *args: Any,
        tags: Iterable[str] | None = None,
        params: Mapping[str, Any] | None = None,
        about: Any = None,
        mode: str | Mode | None = None,
        inject: Mapping[str, Any] | None = None,
        approved_only: bool | None = None,
        **kwargs: Any,
    ) -> Outcome:
        """:meth:`__call__` for async agents and tools: awaits what the agent returns."""
        with self._run(args, kwargs, tags, params, about, mode, inject, approved_only) as run:
            if await run.areplay_steps():
                return run.finish()
            with run.agent() as agent:
                result = agent(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
            return run.finish(result)

    def session(
        self,
        *args: Any,
        tags: Iterable[str] | None = None,
        params: Mapping[str, Any] | None = None,
        about: Any = None,
        mode: str | Mode | None = None,
        inject: Mapping[str, Any] | None = None,
        approved_only: bool | None = None,
        **kwargs: Any,
    ) -> Session:
        """A run of the task that a framework drives, step by step, instead of
        :meth:`__call__` calling the agent: see :class:`~muscle_mem.Session`.

        Takes :meth:`__call__`'s arguments: the task's own (``args`` and ``kwargs``,
        which make the task key as they do there, so ``engine.session(task, params=p)``
        and ``engine(task, params=p)`` share one cache entry), ``tags``, ``params``,
        ``about``, ``mode``, ``inject`` and ``approved_only``. The engine needs no agent
        for it.
        """
        run = self._run(args, kwargs, tags, params, about, mode, inject, approved_only, agent=False)
        return Session(run, self._tools)

    def _run(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        tags: Iterable[str] | None,
        params: Mapping[str, Any] | None,
        about: Any,
        mode: str | Mode | None = None,
        inject: Mapping[str, Any] | None = None,
        approved_only: bool | None = None,
        *,
        agent: bool = True,
    ) -> Run:
        started = (time.time(), time.perf_counter())
        if agent and self._agent is None:
            raise ConfigurationError("the engine has no agent: call engine.set_agent(agent)")
        values = _inject_values(inject)
        run_mode = self.mode if mode is None else _mode(mode)
        checked_tags, checked_params = keys.tags(tags), keys.params(params)
        return Run(
            scope=self,
            store=self.store,
            tools=self._tools,
            context_for=self._context_for,
            agent=self._agent,
            policy=self.on_divergence,
            task_key=keys.task_key(self.match_task, checked_tags, checked_params, args, kwargs),
            tags=checked_tags,
            params=checked_params,
            about=keys.about(about),
            started=started,
            mode=run_mode,
            provenance=self.provenance,
            inject=values,
            text=lambda: keys.task_text(checked_params, args, kwargs),
            approved_only=self.approved_only
            if approved_only is None
            else _flag(approved_only, "approved_only"),
        )

    def clear(self) -> int:
        """Forget everything this engine's store has cached, every task key's tree; returns
        how many steps were removed. The run log is history and stays."""
        return self.store.clear()

    def stats(
        self, *, since: float | datetime | timedelta | None = None, tags: Iterable[str] = ()
    ) -> Stats:
        """Whether the cache pays: hits, divergences and what they saved, per task key and
        in total, over the runs since ``since`` (epoch seconds, a datetime, or a timedelta
        meaning "the last ...") that carry all of ``tags``. What ``muscle-mem stats`` shows.
        """
        if isinstance(since, timedelta):
            since = time.time() - since.total_seconds()
        elif isinstance(since, datetime):
            since = since.timestamp()
        tags = keys.strings(tags, keys.TAGS_EXPECTED)
        return compute(self.store.runs(since=since), tags=tags)

    def task_key(
        self,
        *args: Any,
        tags: Iterable[str] | None = None,
        params: Mapping[str, Any] | None = None,
        about: Any = None,
        **kwargs: Any,
    ) -> str:
        """The cache key a call with these arguments would use (``about`` is not part of it)."""
        keys.about(about)
        return keys.task_key(self.match_task, keys.tags(tags), keys.params(params), args, kwargs)


def _inject_values(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run's ``inject=``: the values of tools' injected arguments, by argument name."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigurationError(
            "inject= takes a dict of argument name to value, e.g. inject={'ctx': ctx}, "
            f"got {value!r}"
        )
    return dict(value)


def _unknown_arguments(func: Callable[..., Any], names: tuple[str, ...]) -> list[str]:
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return []  # a builtin: nothing to check against
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return []
    return [n for n in names if n not in parameters]


def _flag(value: Any, option: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{option}= takes True or False, got {value!r}")
    return value


def _mode(value: str | Mode) -> Mode:
    return _choice(Mode, value, "mode", "a mode")


def _policy(value: str | OnDivergence) -> OnDivergence:
    return _choice(OnDivergence, value, "on_divergence", "a policy")


E = TypeVar("E", Mode, OnDivergence)


def _choice(kind: type[E], value: str | E, option: str, what: str) -> E:
    """``value`` as one of the str enum ``kind``'s members, or an error listing them."""
    try:
        return kind(value)
    except ValueError:
        valid = ", ".join(repr(member.value) for member in kind)
        raise ConfigurationError(f"{option}={value!r} is not {what}; use one of {valid}") from None
