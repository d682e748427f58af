"""A tool's identity: its name across a script run and an import, ``name=`` and
``version=``, and two tools claiming one name.

The subprocess tests run on SQLite and PostgreSQL (one store shared by two processes);
the rest run once, on engines sharing a ``MemoryStore`` where a test needs two engines.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import kinds
from muscle_mem import Check, ConfigurationError, Engine, MemoryStore

AGENT = """
import json, os, sys
from muscle_mem import Engine

engine = Engine(store=os.environ["STORE"])


@engine.function
def greet(name):
    return "hello " + name


def agent(task):
    greet("Ann")


engine.set_agent(agent)


def run():
    outcome = engine("say hello")
    print(json.dumps([outcome.status, outcome.reason, sorted(engine._tools)]))
    engine.close()


if __name__ == "__main__":
    run()
"""


def python(args, cwd, store_url, pythonpath=None):
    env = dict(os.environ, STORE=store_url)
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@kinds("sqlite", "postgres")
def test_a_tool_recorded_by_a_script_replays_when_the_script_is_imported(tmp_path, store_url):
    (tmp_path / "agent.py").write_text(AGENT)
    status, _, tools = python(["agent.py"], tmp_path, store_url)
    assert (status, tools) == ("miss", ["agent.greet"])
    status, reason, _ = python(
        ["-c", "import agent; agent.run()"], tmp_path / "..", store_url, pythonpath=tmp_path
    )
    assert (status, reason) == ("hit", None)


@kinds("sqlite", "postgres")
@pytest.mark.parametrize(
    "record",
    [["-m", "pkg.agent"], [os.path.join("pkg", "agent.py")]],
    ids=["python -m pkg.agent", "python pkg/agent.py"],
)
def test_a_tool_in_a_package_is_named_after_its_import_path(tmp_path, store_url, record):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "agent.py").write_text(AGENT)
    status, _, tools = python(record, tmp_path, store_url)
    assert (status, tools) == ("miss", ["pkg.agent.greet"])
    status, _, _ = python(["-c", "import pkg.agent; pkg.agent.run()"], tmp_path, store_url)
    assert status == "hit"


def test_a_tool_defined_where_no_module_name_can_be_found_keeps_main(tmp_path):
    script = (
        "from muscle_mem import Engine\n"
        "e = Engine()\n"
        "def greet(name): return name\n"
        "print(e.function(greet).__muscle_mem_tool__.name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "__main__.greet"


# -- name= and version= -----------------------------------------------------------------


def load(tmp_path, module, source):
    """A module named ``module`` from a file of its own, so its functions have source."""
    path = tmp_path / module / f"{module}.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(module, path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


GREET = """
LOG = []


def greet(name):
    LOG.append(("{tag}", name))
    return "hello " + name
"""

OTHER = """
def greet(name):
    return "bye " + name
"""


def engine_with(store, func, **identity):
    engine = Engine(store=store)
    tool = engine.function(**identity)(func)
    engine.set_agent(lambda task: tool("Ann"))
    return engine


def test_a_named_tool_replays_after_moving_to_another_module(tmp_path):
    store = MemoryStore()
    before = load(tmp_path, "agent_v1", GREET.format(tag="v1"))
    after = load(tmp_path, "tools_v2", GREET.format(tag="v1"))
    assert engine_with(store, before.greet, name="greet")("t").status == "miss"
    assert engine_with(store, after.greet, name="greet")("t").hit
    # Without name=, the qualified name moved with it: not the same tool.
    assert not engine_with(store, after.greet)("t").hit


@pytest.mark.parametrize(
    ("version_then", "version_now", "hit"),
    [("1", "1", True), ("1", "2", False), (3, "3", True), (None, "1", False)],
    ids=["same version", "bumped", "int and str", "version added"],
)
def test_a_version_stands_for_the_tools_code(tmp_path, version_then, version_now, hit):
    store = MemoryStore()
    before = load(tmp_path, "before", GREET.format(tag="v1"))
    after = load(tmp_path, "after", GREET.format(tag="v2"))  # the body was edited
    engine_with(store, before.greet, name="greet", version=version_then)("t")
    outcome = engine_with(store, after.greet, name="greet", version=version_now)("t")
    assert outcome.hit is hit
    if hit:
        assert after.LOG == [("v2", "Ann")]  # the edited body is what replay runs
    else:
        assert "changed" in outcome.reason


def test_a_changed_check_invalidates_a_versioned_tools_steps(tmp_path):
    store = MemoryStore()
    env = {"page": "home", "title": "home"}
    tool = load(tmp_path, "agent", GREET.format(tag="v1")).greet
    old = Check(lambda name: env["page"])
    new = Check(lambda name: env["title"])
    engine_with(store, tool, name="greet", version="1", pre_check=old)("t")
    assert engine_with(store, tool, name="greet", version="1", pre_check=old)("t").hit
    outcome = engine_with(store, tool, name="greet", version="1", pre_check=new)("t")
    assert outcome.status == "miss" and "changed" in outcome.reason


# -- one name, one tool -----------------------------------------------------------------


def test_two_different_tools_under_one_name_are_refused_at_decoration(tmp_path, memory_engine):
    first = load(tmp_path, "first", GREET.format(tag="v1"))
    second = load(tmp_path, "second", OTHER)
    memory_engine.function(name="greet")(first.greet)
    with pytest.raises(ConfigurationError, match=r"two tools are named 'greet'.*name="):
        memory_engine.function(name="greet")(second.greet)
    with pytest.raises(ConfigurationError, match=r"first\.greet and second\.greet"):
        memory_engine.method(name="greet")(second.greet)


def test_a_named_tool_cannot_take_another_tools_qualified_name(tmp_path, memory_engine):
    first = load(tmp_path, "first", GREET.format(tag="v1"))
    second = load(tmp_path, "second", OTHER)
    memory_engine.function(first.greet)
    with pytest.raises(ConfigurationError, match=r"'first\.greet'"):
        memory_engine.function(name="first.greet")(second.greet)


def test_two_callable_objects_of_one_class_under_one_name_are_refused(memory_engine):
    memory_engine.function(functools.partial(max, 1))
    with pytest.raises(ConfigurationError, match=r"functools\.partial"):
        memory_engine.function(functools.partial(max, 2))


@pytest.mark.parametrize("identity", [{}, {"name": "greet"}, {"name": "greet", "version": 1}])
def test_a_module_reloaded_decorates_its_tools_again(tmp_path, identity):
    store, path = MemoryStore(), tmp_path / "reloaded.py"
    engine = Engine(store=store)

    def reload(tag):
        path.write_text(GREET.format(tag=tag))
        spec = importlib.util.spec_from_file_location("reloaded", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module, engine.function(**identity)(module.greet)

    module, tool = reload("v1")
    engine.set_agent(lambda task: tool("Ann"))
    engine("t")
    assert engine("t").hit
    module, tool = reload("v1")  # the same code reloaded: still the same steps
    assert engine("t").hit and module.LOG == [("v1", "Ann")]
    module, tool = reload("v2")  # edited and reloaded: the new code is the tool
    outcome = engine("t")
    assert outcome.hit is ("version" in identity)
    assert module.LOG == [("v2", "Ann")]
    assert len(engine._tools) == 1


def test_a_tool_decorated_again_under_another_name_drops_the_old_name(tmp_path):
    store = MemoryStore()
    greet = load(tmp_path, "agent", GREET.format(tag="v1")).greet
    engine_with(store, greet, name="hello")("t")
    engine = Engine(store=store)
    engine.function(name="hello")(greet)
    renamed = engine.function(name="greet")(greet)
    engine.set_agent(lambda task: renamed("Ann"))
    outcome = engine("t")
    assert outcome.status == "miss" and "hello is not a tool of this engine" in outcome.reason


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": ""}, "name=.*non-empty string"),
        ({"name": 3}, "name=.*non-empty string"),
        ({"version": ""}, "version=.*non-empty string or an int"),
        ({"version": 1.5}, "version=.*non-empty string or an int"),
        ({"version": True}, "version=.*non-empty string or an int"),
    ],
)
def test_a_bad_name_or_version_is_refused(memory_engine, options, message):
    with pytest.raises(ConfigurationError, match=message):
        memory_engine.function(**options)
    with pytest.raises(ConfigurationError, match=message):
        memory_engine.method(**options)
