"""Tools registered by name (``engine.tool``) and arguments injected by the run
(``inject=``): what framework adapters build on.

Runs on every store kind (see conftest), but for misuse, settled before any store is read.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Annotated, Generic, Optional, TypeVar

import pytest

from muscle_mem import Check, ConfigurationError, register_context_type
from muscle_mem.tools import context_parameters


class Browser:
    """A framework's context object: not data, so it can never be recorded."""

    def __init__(self, page: str = "v1") -> None:
        self.page = page
        self.typed: list[tuple[str, str]] = []


def _type_into(browser: Browser, field: str, value: str) -> str:
    browser.typed.append((field, value))
    return f"{field}={value}"


def _shout(mark: str, text: str) -> str:
    return text.upper() + mark


class Clicker:
    """A tool object the user doesn't own: a callable instance."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def __call__(self, button: str) -> str:
        self.log.append(button)
        return f"clicked {button}"


class AsyncFetcher:
    async def __call__(self, url: str) -> str:
        await asyncio.sleep(0)
        return f"<html {url}>"


# -- engine.tool -------------------------------------------------------------------------


def test_a_lambda_a_partial_and_a_callable_object_register_by_name_and_replay(engine):
    log: list[str] = []
    greet = engine.tool(lambda who: log.append(f"hi {who}") or who, name="greet")
    shout = engine.tool(functools.partial(_shout, "!"), name="shout", version="1")
    click = engine.tool(Clicker(log), name="click", version="1")

    def agent(task, name):
        greet(name)
        shout(name)
        return click("send")

    engine.set_agent(agent).finalize()
    assert engine("greet", "Jo", params={"name": "Jo"}).status == "miss"
    log.clear()
    hit = engine("greet", "Al", params={"name": "Al"})
    assert (hit.status, hit.result) == ("hit", "clicked send")
    assert log == ["hi Al", "send"]  # the lambda and the object ran, with the new param
    assert [(s.tool, s.arguments, s.result) for s in hit.steps] == [
        ("greet", {"who": "Al"}, "Al"),
        ("shout", {"text": "Al"}, "AL!"),  # the partial's own arguments, by name
        ("click", {"button": "send"}, "clicked send"),
    ]


def test_an_async_callable_object_is_an_async_tool(engine):
    fetch = engine.tool(AsyncFetcher(), name="fetch", version="1")

    async def agent(task):
        return await fetch("https://example.com")

    engine.set_agent(agent).finalize()
    assert asyncio.run(engine.arun("fetch")).status == "miss"
    hit = asyncio.run(engine.arun("fetch"))
    assert (hit.status, hit.steps[0].result) == ("hit", "<html https://example.com>")


def test_a_new_version_stops_the_old_steps_and_the_old_version_finds_them_again(engine):
    calls: list[str] = []

    def register(version):
        return engine.tool(lambda q: calls.append(q), name="mcp:docs/search", version=version)

    search = register("schema-a")
    engine.set_agent(lambda task: search("muscle")).finalize()
    assert engine("search").status == "miss"
    assert engine("search").status == "hit"

    search = register("schema-b")  # the server changed the tool's input schema
    changed = engine("search")
    assert changed.status == "miss" and "changed since it was recorded" in changed.reason
    assert engine("search").status == "hit"  # the new schema's path, recorded just now

    search = register("schema-a")  # back: its old path is still there
    assert engine("search").status == "hit"


def test_without_a_version_the_code_behind_a_partial_or_object_is_its_identity(memory_engine):
    def one(x):
        return x

    def two(x):
        return x + 1

    a = memory_engine.tool(functools.partial(one), name="a")
    b = memory_engine.tool(functools.partial(two), name="b")
    c = memory_engine.tool(Clicker([]), name="c")
    codes = {name: memory_engine._tools[name].code for name in "abc"}
    assert len(set(codes.values())) == 3
    assert callable(a) and callable(b) and callable(c)


def test_a_name_registers_again_but_never_takes_a_decorated_tools_name(memory_engine):
    first = memory_engine.tool(lambda: 1, name="ping")
    second = memory_engine.tool(lambda: 2, name="ping")  # an adapter re-wrapping: replaced
    assert memory_engine._tools["ping"].func is second.__wrapped__
    assert first() == 1 and second() == 2

    @memory_engine.function(name="pong")
    def pong():
        return 3

    with pytest.raises(ConfigurationError, match=r"'pong'.*no decorated tool has"):
        memory_engine.tool(lambda: 4, name="pong")
    with pytest.raises(ConfigurationError, match=r"'ping'.*no decorated tool has"):
        memory_engine.function(name="ping")(pong)
    other = memory_engine.tool(lambda: 5, name="other")  # two lambdas of one line stay two
    assert {"ping", "other", "pong"} <= set(memory_engine._tools) and other() == 5


@pytest.mark.parametrize(
    ("call", "options", "message"),
    [
        (lambda: 1, {"name": ""}, r"engine\.tool\(call, name=\.\.\.\) takes a non-empty"),
        (lambda: 1, {"name": 3}, r"non-empty string"),
        ("not callable", {"name": "x"}, r"takes the callable to run"),
        (lambda: 1, {"name": "x", "version": ""}, r"engine\.tool\(version=\.\.\.\)"),
        (lambda a: 1, {"name": "x", "sensitive": ["b"]}, r"'b', not arguments"),
        (lambda a: 1, {"name": "x", "inject": "a"}, r"inject=\.\.\.\) takes a list"),
    ],
)
def test_engine_tool_misuse_says_what_to_do(memory_engine, call, options, message):
    with pytest.raises(ConfigurationError, match=message):
        memory_engine.tool(call, **options)


def test_a_missing_name_is_a_type_error_of_the_call_itself(memory_engine):
    with pytest.raises(TypeError, match="name"):
        memory_engine.tool(lambda: 1)  # type: ignore[call-arg]


# -- inject= -----------------------------------------------------------------------------


def test_an_injected_context_is_left_out_of_the_step_and_supplied_at_replay(engine):
    seen: list[Browser] = []

    def page(browser, field, value):  # captures still receive the injected argument
        seen.append(browser)
        return browser.page

    type_into = engine.function(inject=["browser"], pre_check=Check(capture=page))(_type_into)
    browsers = {"John": Browser(), "Jane": Browser()}

    def agent(task, name):
        browser = browsers[name]
        type_into(browser, "name", name)  # by position
        type_into(field="greeting", value=f"Hello {name}!", browser=browser)  # by name
        return "done"

    engine.set_agent(agent).finalize()
    assert engine("sign up", "John", params={"name": "John"}).status == "miss"
    assert seen[-1] is browsers["John"]

    jane = Browser()  # a different object than the agent would use: replay passes this one
    hit = engine("sign up", "Jane", params={"name": "Jane"}, inject={"browser": jane})
    assert hit.status == "hit"
    assert jane.typed == [("name", "Jane"), ("greeting", "Hello Jane!")]
    assert seen[-1] is jane
    assert [s.arguments for s in hit.steps] == [
        {"field": "name", "value": "Jane"},
        {"field": "greeting", "value": "Hello Jane!"},
    ]
    assert [(s.args, s.kwargs) for s in hit.steps] == [
        ((), {"field": "name", "value": "Jane"}),
        ((), {"field": "greeting", "value": "Hello Jane!"}),
    ]

    jane.page = "v2"  # the capture reads the injected object: its check still decides
    again = engine("sign up", "Jane", params={"name": "Jane"}, inject={"browser": jane})
    assert again.status == "miss" and "pre-check of" in again.reason


def test_a_run_without_the_injected_value_does_not_replay_and_says_how_to_give_it(engine):
    type_into = engine.function(inject=["browser"])(_type_into)
    engine.set_agent(lambda task: type_into(Browser(), "name", "x")).finalize()
    engine("sign up")
    missed = engine("sign up")
    assert missed.status == "miss"
    assert "takes its argument 'browser' from the run" in missed.reason
    assert "inject={'browser': ...}" in missed.reason


def test_positional_and_keyword_contexts_record_one_step(engine):
    type_into = engine.function(inject=["browser"])(_type_into)
    forms = iter(
        [
            lambda b: type_into(b, "name", "x"),
            lambda b: type_into(b, field="name", value="x"),
            lambda b: type_into(field="name", browser=b, value="x"),
        ]
    )
    engine.set_agent(lambda task: next(forms)(Browser())).finalize()
    for _ in range(3):
        engine("sign up", mode="record")
    [task] = engine.store.tasks()
    assert (task.nodes, task.paths) == (1, 1)


def test_a_context_in_the_middle_and_at_the_end_is_put_back_where_it_belongs(engine):
    got: list[tuple] = []

    @engine.function(inject=["ctx", "client"])
    def move(x, ctx, y, client=None, *, z=0):
        got.append((x, ctx, y, client, z))

    engine.set_agent(lambda task: move(1, Browser(), 2, Browser(), z=3)).finalize()
    engine("move")
    ctx, client = Browser(), Browser()
    hit = engine("move", inject={"ctx": ctx, "client": client})
    assert hit.status == "hit"
    assert got[-1] == (1, ctx, 2, client, 3)
    assert hit.steps[0].arguments == {"x": 1, "y": 2, "z": 3}
    # An injected argument with a default may be left out: the tool gets its default.
    assert engine("move", inject={"ctx": ctx}).status == "hit"
    assert got[-1] == (1, ctx, 2, None, 3)


def test_an_injected_argument_of_an_async_tool_and_of_a_method(engine):
    class Page:
        def __init__(self) -> None:
            self.clicks: list[tuple[str, Browser]] = []

        @engine.method(inject=["browser"])
        def click(self, browser, button):
            self.clicks.append((button, browser))

    @engine.function(inject=["ctx"])
    async def read(ctx, path):
        await asyncio.sleep(0)
        return ctx.page + path

    page = Page()
    engine.set_context(page)

    async def agent(task):
        page.click(Browser(), "ok")
        return await read(Browser("v1"), "/a")

    engine.set_agent(agent).finalize()
    assert asyncio.run(engine.arun("click")).status == "miss"
    browser = Browser("v9")
    hit = asyncio.run(engine.arun("click", inject={"browser": browser, "ctx": browser}))
    assert (hit.status, hit.steps[1].result) == ("hit", "v9/a")
    assert page.clicks[-1] == ("ok", browser)
    assert hit.steps[0].arguments == {"button": "ok"}


def test_inject_changes_a_tools_identity_so_old_steps_with_the_argument_are_not_replayed(
    engine,
):
    def make(inject):
        return engine.function(name="type", version="1", inject=inject)(
            lambda browser, field: field
        )

    tool = make(())
    engine.set_agent(lambda task: tool("plain data", "name")).finalize()
    engine("type")
    tool = make(["browser"])
    changed = engine("type", inject={"browser": Browser()})
    assert changed.status == "miss" and "changed since it was recorded" in changed.reason


def _positional_only(ctx, /, a):
    return a


def _star_args(ctx, *rest):
    return rest


@pytest.mark.parametrize(
    ("func", "inject", "message"),
    [
        (_type_into, ["ctx"], r"'ctx', not an argument of _type_into; name the parameter"),
        (_positional_only, ["ctx"], r"positional-only"),
        (_star_args, ["ctx"], r"takes \*args.*keyword-only"),
        (_star_args, ["rest"], r"the \*rest of"),
        (_type_into, ["field", "field"], None),  # duplicates are one name
    ],
)
def test_inject_naming_what_the_function_cannot_take_is_refused(
    memory_engine, func, inject, message
):
    if message is None:
        memory_engine.function(inject=inject)(func)
        return
    with pytest.raises(ConfigurationError, match=message):
        memory_engine.function(inject=inject)(func)


def test_inject_misuse_on_methods_sensitive_and_runs(memory_engine):
    class Page:
        def click(self, button):
            return button

    with pytest.raises(ConfigurationError, match=r"the instance of method.*set_context"):
        memory_engine.method(inject=["self"])(Page.click)
    with pytest.raises(ConfigurationError, match=r"both sensitive= and inject="):
        memory_engine.function(inject=["value"], sensitive=["value"])(_type_into)
    memory_engine.function(inject=["extra"])(lambda **kwargs: kwargs)  # **kwargs takes it
    memory_engine.set_agent(lambda task: None)
    with pytest.raises(ConfigurationError, match=r"inject= takes a dict of argument name"):
        memory_engine("task", inject=["browser"])
    with pytest.raises(ConfigurationError, match=r"inject= takes a dict"):
        memory_engine.session("task", inject={1: "x"})


def test_inject_values_are_not_part_of_the_task_key(memory_engine):
    key = memory_engine.task_key("sign up", params={"name": "x"})
    memory_engine.set_agent(lambda task: None)
    outcome = memory_engine("sign up", params={"name": "x"}, inject={"browser": Browser()})
    assert outcome.task_key == key


def test_a_call_with_too_many_arguments_fails_as_python_says_and_records_nothing(engine):
    type_into = engine.function(inject=["browser"])(_type_into)

    def agent(task):
        with pytest.raises(TypeError, match="takes 3 positional arguments but 4"):
            type_into(Browser(), "name", "x", "extra")

    engine.set_agent(agent).finalize()
    assert "nothing was recorded" in engine("sign up").reason


# -- context types: injected without inject= ---------------------------------------------

Deps = TypeVar("Deps")


class RunCtx(Generic[Deps]):
    """A framework's context type, as PydanticAI's RunContext[Deps]: what adapters register."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps


class ToolCtx(RunCtx[Deps]):
    """A subclass, as the Agents SDK's ToolContext is of RunContextWrapper."""


class InjectedArg:
    """A marker in Annotated[...], as LangChain's InjectedToolArg."""


class InjectedId(InjectedArg):
    pass


register_context_type(RunCtx, InjectedArg)


def test_parameters_annotated_with_a_registered_type_are_detected_in_every_form():
    def tool(
        ctx: RunCtx[Browser],
        field: str,
        sub: ToolCtx[int],
        maybe: RunCtx[int] | None = None,
        old: Optional[RunCtx[int]] = None,  # noqa: UP045 - the typing spelling, on purpose
        call_id: Annotated[str, InjectedId] = "",
        state: Annotated[dict | None, InjectedArg()] = None,
        *args: RunCtx[int],
        **kwargs: RunCtx[int],
    ) -> None: ...

    assert context_parameters(tool, False) == (
        "ctx", "sub", "maybe", "old", "call_id", "state"
    )  # fmt: skip

    class Page:
        def click(self: RunCtx, ctx: RunCtx[int], button: str) -> None: ...

    assert context_parameters(Page.click, True) == ("ctx",)  # self is the method's own
    assert context_parameters(lambda ctx, x: x, False) == ()  # no annotation, no guess
    assert context_parameters(len, False) == ()


def test_a_tool_taking_a_registered_context_records_without_inject_and_replays(engine):
    @engine.function
    def type_into(ctx: RunCtx[Browser], field: str, value: str) -> str:
        ctx.deps.typed.append((field, value))
        return f"{field}={value}"

    def agent(task, name):
        ctx = RunCtx(Browser())
        type_into(ctx, "name", name)
        type_into(field="greeting", value=f"Hello {name}!", ctx=ctx)
        return "done"

    engine.set_agent(agent).finalize()
    assert engine("sign up", "John", params={"name": "John"}).status == "miss"  # recorded

    jane = RunCtx(Browser())
    hit = engine("sign up", "Jane", params={"name": "Jane"}, inject={"ctx": jane})
    assert hit.status == "hit"
    assert jane.deps.typed == [("name", "Jane"), ("greeting", "Hello Jane!")]
    assert [s.arguments for s in hit.steps] == [
        {"field": "name", "value": "Jane"},
        {"field": "greeting", "value": "Hello Jane!"},
    ]
    missed = engine("sign up", "Jo", params={"name": "Jo"})  # no context for replay to pass
    assert "inject={'ctx': ...}" in missed.reason


def test_context_types_misuse_says_what_to_do(memory_engine):
    with pytest.raises(ConfigurationError, match="takes classes"):
        register_context_type("RunContext")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="never stored anyway"):

        @memory_engine.function(sensitive=["ctx"])
        def login(ctx: RunCtx[int], password: str) -> None: ...
