"""Engine: wraps an agent, replays what it recorded, and hands over when it must."""

from __future__ import annotations

import enum
import hashlib
import inspect
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, overload

from .checks import Check
from .codec import encode
from .errors import ConfigurationError, DivergenceError, EncodeError
from .models import TASK_KEY_PREFIX, Outcome, RunRecord, Status
from .recording import Run, Templater, current_handoff, current_run, inside_tool
from .replay import Replay
from .stats import Stats, compute
from .store import Store, open_store
from .tools import Tool
from .trie import Update, node_id

logger = logging.getLogger("muscle_mem")


class OnDivergence(str, enum.Enum):
    """What the engine does when replay cannot go on after it has started."""

    HANDOFF = "handoff"  # the agent carries on from where replay stopped
    RESTART = "restart"  # the agent starts the task over
    RAISE = "raise"  # raise DivergenceError

    @classmethod
    def parse(cls, value: str | OnDivergence) -> OnDivergence:
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(repr(p.value) for p in cls)
            raise ConfigurationError(
                f"on_divergence={value!r} is not a policy; use one of {valid}"
            ) from None


class Engine:
    """A behavior cache around an agent.

    ``Engine()`` keeps its cache in memory (or in ``$MUSCLE_MEM_STORE``); ``store=``
    takes a :class:`Store`, a URL (``sqlite:///cache.db``, ``postgresql://...``) or a
    path ending in ``.db``.
    ``match_task=False`` keys the cache by tags alone, ignoring the task's arguments.
    ``on_divergence`` says what happens when replay stops half-way: ``"handoff"``
    (default), ``"restart"`` or ``"raise"``. ``secret`` signs what is stored (HMAC) so
    that rows nobody with the secret wrote are never replayed.
    """

    def __init__(
        self,
        store: Store | str | Path | None = None,
        *,
        match_task: bool = True,
        on_divergence: str | OnDivergence = OnDivergence.HANDOFF,
        secret: str | bytes | None = None,
    ) -> None:
        self.store = open_store(store, secret=secret)
        self._owns_store = not isinstance(store, Store)
        self.match_task = match_task
        self.on_divergence = OnDivergence.parse(on_divergence)
        self._agent: Callable[..., Any] | None = None
        self._contexts: list[Any] = []
        self._tools: dict[str, Tool] = {}

    def __repr__(self) -> str:
        return (
            f"Engine(store={self.store!r}, tools={len(self._tools)}, "
            f"on_divergence={self.on_divergence.value!r})"
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
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    def function(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        pre_check: Check | None = None,
        post_check: Check | None = None,
        sensitive: Iterable[str] = (),
    ) -> Any:
        """Make a function a tool: its calls during a run are recorded and replayable.

        Works as ``@engine.function`` and as ``@engine.function(pre_check=...)``.
        ``sensitive`` names arguments (passwords, tokens) that are never stored: they
        must be params of the run, and a call where one is not is not replayable.
        """
        return self._decorator(func, False, pre_check, post_check, sensitive)

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
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    def method(
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        pre_check: Check | None = None,
        post_check: Check | None = None,
        sensitive: Iterable[str] = (),
    ) -> Any:
        """Make a method a tool. ``self`` is not recorded: replay injects the object
        given to :meth:`set_context`. Checks' captures receive ``self`` too. Takes the
        same arguments as :meth:`function`."""
        return self._decorator(func, True, pre_check, post_check, sensitive)

    def _decorator(
        self,
        func: Callable[..., Any] | None,
        is_method: bool,
        pre_check: Check | None,
        post_check: Check | None,
        sensitive: Iterable[str],
    ) -> Any:
        kind = "method" if is_method else "function"
        secret_names = _strings(
            sensitive,
            f"@engine.{kind}(sensitive=...) takes a list of argument names, "
            "e.g. sensitive=['password']",
        )
        for name, check in (("pre_check", pre_check), ("post_check", post_check)):
            if check is not None and not isinstance(check, Check):
                raise ConfigurationError(
                    f"@engine.{kind}({name}=...) takes a Check(capture, compare), "
                    f"got {type(check).__qualname__}"
                )

        def register(target: Callable[..., Any]) -> Callable[..., Any]:
            if isinstance(target, (staticmethod, classmethod)) or not callable(target):
                raise ConfigurationError(
                    f"@engine.{kind} decorates a plain function or method, got "
                    f"{type(target).__qualname__}"
                )
            unknown = _unknown_arguments(target, secret_names)
            if unknown:
                raise ConfigurationError(
                    f"@engine.{kind}(sensitive=...) names {', '.join(map(repr, unknown))}, "
                    f"not arguments of {getattr(target, '__qualname__', target)}"
                )
            tool = Tool(
                self,
                target,
                is_method=is_method,
                pre_check=pre_check,
                post_check=post_check,
                sensitive=secret_names,
            )
            self._tools[tool.name] = tool
            return tool.wrap()

        if func is None:
            return register
        if isinstance(func, Check):
            raise ConfigurationError(
                f"@engine.{kind} got a Check as its argument; pass it by name: "
                f"@engine.{kind}(pre_check=Check(...))"
            )
        return register(func)

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
        **kwargs: Any,
    ) -> Outcome:
        """Run a task: replay it from cache if the checks allow, else call the agent.

        Every argument but ``tags``, ``params`` and ``about`` goes to the agent
        unchanged. ``about`` names what the run was about (a memory bank entity, or a
        ``"kind:id"`` string): the run log records it, and the bank lists the run among
        that entity's episodes. The result is truthy exactly on a full cache hit.
        """
        session = _Session(self, args, kwargs, tags, params, about)
        replay = session.replay
        while (step := replay.next()) is not None:
            try:
                result = step.tool.call_sync(step.args, step.kwargs)
            except Exception as error:
                replay.raised(error)
            else:
                replay.done(result)
        if replay.hit:
            return session.finish(Status.HIT)
        agent = session.enter_agent()
        try:
            result = agent(*args, **kwargs)
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise ConfigurationError(
                    "the agent returned an awaitable: for an async agent use "
                    "`await engine.arun(...)`"
                )
        except BaseException as error:
            session.fail(error)
            raise
        finally:
            session.leave_agent()
        return session.finish(session.agent_status(), result)

    async def arun(
        self,
        *args: Any,
        tags: Iterable[str] | None = None,
        params: Mapping[str, Any] | None = None,
        about: Any = None,
        **kwargs: Any,
    ) -> Outcome:
        """:meth:`__call__` for async agents and tools: awaits what the agent returns."""
        session = _Session(self, args, kwargs, tags, params, about)
        replay = session.replay
        while (step := replay.next()) is not None:
            try:
                result = await step.tool.call_async(step.args, step.kwargs)
            except Exception as error:
                replay.raised(error)
            else:
                replay.done(result)
        if replay.hit:
            return session.finish(Status.HIT)
        agent = session.enter_agent()
        try:
            result = agent(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except BaseException as error:
            session.fail(error)
            raise
        finally:
            session.leave_agent()
        return session.finish(session.agent_status(), result)

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
        tags = _strings(tags, "tags must be a list of strings, e.g. tags=['signup']")
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
        _about(about)
        return _task_key(self.match_task, _tags(tags), _params(params), args, kwargs)


def _unknown_arguments(func: Callable[..., Any], names: tuple[str, ...]) -> list[str]:
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return []  # a builtin: nothing to check against
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return []
    return [n for n in names if n not in parameters]


def _strings(value: Iterable[str], expected: str) -> tuple[str, ...]:
    """``value`` as a tuple of strings, read once (a generator can only be read once)."""
    given = None if isinstance(value, str) or not isinstance(value, Iterable) else tuple(value)
    if given is None or not all(isinstance(s, str) for s in given):
        raise ConfigurationError(f"{expected}, got {value!r}")
    return given


def _tags(tags: Iterable[str] | None) -> tuple[str, ...]:
    if tags is None:
        return ()
    return tuple(
        sorted(set(_strings(tags, "tags must be a list of strings, e.g. tags=['signup']")))
    )


def _params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ConfigurationError(
            f"params must be a dict of name to value, e.g. params={{'name': 'John'}}, "
            f"got {params!r}"
        )
    for name in params:
        if not isinstance(name, str):
            raise ConfigurationError(f"param names must be strings, got {name!r}")
    return dict(params)


def _about(about: Any) -> str | None:
    """The "kind:id" reference of what a run is about: a bank entity's ``ref``, or a str."""
    ref = getattr(about, "ref", about)
    if ref is None or (isinstance(ref, str) and ref.partition(":")[0] and ref.partition(":")[2]):
        return ref
    raise ConfigurationError(
        "about= takes a memory bank entity or a 'kind:id' string, e.g. "
        f"about='campaign:summer-sale', got {about!r}"
    )


def _task_key(
    match_task: bool, tags: tuple[str, ...], params: dict[str, Any], args: Any, kwargs: Any
) -> str:
    if not match_task:
        data: Any = (tags,)
    elif not params:
        data = (tags, args, kwargs)
    else:
        templater = Templater(params, words=True)
        data = (
            tags,
            tuple(templater.template(a) for a in args),
            {k: templater.template(v) for k, v in kwargs.items()},
        )
    try:
        encoded = encode(data, "the task's arguments")
    except EncodeError as error:
        raise EncodeError(
            f"{error} They make the cache key; pass such objects to the agent another way "
            "(a closure or engine.set_context) or use Engine(match_task=False)."
        ) from None
    return TASK_KEY_PREFIX + hashlib.blake2b(encoded, digest_size=16).hexdigest()


class _Session:
    """One run of the engine, from the task key to the run log line."""

    def __init__(
        self,
        engine: Engine,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        tags: Iterable[str] | None,
        params: Mapping[str, Any] | None,
        about: Any,
    ) -> None:
        if engine._agent is None:
            raise ConfigurationError("the engine has no agent: call engine.set_agent(agent)")
        self.engine = engine
        self.started_at = time.time()
        self.started = time.perf_counter()
        self.tags = _tags(tags)
        self.params = _params(params)
        self.about = _about(about)
        self.task_key = _task_key(engine.match_task, self.tags, self.params, args, kwargs)
        self.run = Run(engine, self.params)
        self.replay = Replay(
            engine.store.tree(self.task_key), self.params, engine._tools, engine._context_for
        )
        self.policy = engine.on_divergence
        self._tokens: list[Any] = []

    def enter_agent(self) -> Callable[..., Any]:
        """Set up the context the agent runs in (recording, handoff) and return it."""
        replay = self.replay
        handoff = replay.diverged and self.policy is OnDivergence.HANDOFF
        if replay.diverged and self.policy is OnDivergence.RAISE:
            error = DivergenceError(replay.handoff())
            self.fail(error)
            raise error
        self._tokens = [
            current_run.set(self.run),
            inside_tool.set(False),
            current_handoff.set(replay.handoff() if handoff else None),
        ]
        assert self.engine._agent is not None
        return self.engine._agent

    def leave_agent(self) -> None:
        run_token, inside_token, handoff_token = self._tokens
        current_handoff.reset(handoff_token)
        inside_tool.reset(inside_token)
        current_run.reset(run_token)

    def agent_status(self) -> Status:
        return Status.HANDOFF if self.replay.diverged else Status.MISS

    def finish(self, status: Status, result: Any = None) -> Outcome:
        """Commit what the run learned and log it; the agent (if any) succeeded."""
        replay, update, calls = self.replay, self.replay.update, self.run.calls
        handed_over = status is Status.HANDOFF and self.policy is OnDivergence.HANDOFF
        if handed_over and (calls or replay.replayed):
            # The replayed prefix and what the agent did after it form one trajectory.
            update.after, update.calls = replay.node.id, calls
        else:
            update.learned.clear()  # snapshots are learned only along a handed-over path
            if status is not Status.HIT and calls:  # a miss, or a restart: a path of its own
                update.after, update.calls = replay.tree.root.id, calls
        recorded = len(update.calls) if update.after is not None else 0
        return self._log(status, update, result, recorded)

    def fail(self, error: BaseException) -> None:
        """The agent raised (or replay diverged under "raise"): keep nothing it recorded."""
        update = self.replay.update
        update.learned.clear()
        reason = self.replay.reason if isinstance(error, DivergenceError) else repr(error)
        self._log(Status.ERROR, update, None, 0, reason)

    def _log(
        self,
        status: Status,
        update: Update,
        result: Any,
        recorded: int,
        reason: str | None = None,
    ) -> Outcome:
        replay = self.replay
        duration = time.perf_counter() - self.started
        diverged_at = replay.at if replay.diverged else None
        reason = reason if reason is not None else (None if replay.hit else replay.reason)
        record = RunRecord(
            task_key=self.task_key,
            tags=self.tags,
            params=tuple(self.params),
            status=status,
            replayed=replay.replayed,
            recorded=recorded,
            diverged_at=diverged_at,
            reason=reason,
            started_at=self.started_at,
            duration_s=duration,
            tokens=self.run.tokens,
            cost=self.run.cost,
            path=_path_end(update, replay) if status is not Status.ERROR else None,
            about=self.about,
        )
        self.engine.store.commit(update, record)
        logger.debug(
            "%s %s: replayed %d, recorded %d, %.4fs%s",
            status,
            self.task_key,
            replay.replayed,
            recorded,
            duration,
            f" ({reason})" if reason else "",
        )
        return Outcome(
            status=status,
            result=result,
            replayed=replay.replayed,
            diverged_at=diverged_at,
            reason=reason,
            duration_s=duration,
            tokens=self.run.tokens,
            cost=self.run.cost,
            task_key=self.task_key,
        )


def _path_end(update: Update, replay: Replay) -> str | None:
    """The node where the run's trajectory ends: what it replayed, or what it recorded."""
    if update.after is None:
        return replay.node.id if replay.hit else None
    end = update.after
    for call in update.calls:
        end = node_id(end, call.step)
    return end
