"""Code identity: a stable fingerprint of a tool's code and of its checks' code.

A step recorded with other code is never replayed: change a tool and its old
trajectories fall silent, the way joblib.Memory forgets results of a changed function.
Fingerprints never raise: what has no readable source falls back to its code object,
and what has no code object to its name.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import inspect
import sys
import textwrap
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .checks import Check

# Weak keys: the memo must not keep a decorated tool's closure (and all it captured)
# alive after its engine is gone.
_fingerprints: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def fingerprint(func: Callable[..., Any] | None) -> str:
    """A stable hash of a function's code, prefixed by how it was taken.

    ``ast1:`` hashes the source's syntax tree without decorators, so reformatting and
    comments don't count; ``code1-pyX.Y:`` hashes the code object where the source
    can't be read (a REPL, a lambda sharing its line); ``name:`` is all a builtin has.
    """
    if func is None:
        return "none:"
    target = _code_of(inspect.unwrap(func))
    try:
        cached = _fingerprints.get(target)
    except TypeError:  # unhashable, or not weakly referenceable (a builtin): not memoised
        cached = None
    if cached is not None:
        return cached
    result = _source_fingerprint(target) or _code_fingerprint(target) or f"name:{tool_name(target)}"
    with contextlib.suppress(TypeError):
        _fingerprints[target] = result
    return result


def _code_of(func: Any) -> Any:
    """What holds a callable's code: a partial's function, a callable object's
    ``__call__`` (else every partial, every instance of a class, would share one
    fingerprint, its type's name, and editing the code behind it would change nothing)."""
    while isinstance(func, functools.partial):
        func = func.func
    if not (inspect.isroutine(func) or inspect.isclass(func)):
        call = inspect.getattr_static(type(func), "__call__", None)
        if inspect.isfunction(call):
            return call
    return func


def digest(data: str | bytes) -> str:
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
    if definition.name != getattr(func, "__name__", None):
        # A lambda on a decorator's line: its source reads as the decorated function's,
        # whose fingerprint leaves the decorator (and so the lambda) out.
        return None
    definition.decorator_list = []
    return "ast1:" + digest(ast.dump(definition, annotate_fields=False, include_attributes=False))


def _code_fingerprint(func: Any) -> str | None:
    code = getattr(func, "__code__", None)
    if code is None:
        return None
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return f"code1-py{version}:" + digest(_code_bytes(code))


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


def tool_name(func: Any) -> str:
    """A callable's qualified name: its module's import name and its qualname (a lambda
    adds its line). A function defined in the script being run is named after the module
    the script is when imported (see :func:`main_module_name`), so a step recorded by
    ``python agent.py`` replays under ``import agent``."""
    module = getattr(func, "__module__", None) or "?"
    if module == "__main__":
        module = main_module_name()
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    name = f"{module}.{qualname or type(func).__qualname__}"
    code = getattr(func, "__code__", None)
    if code is not None and code.co_name == "<lambda>":
        name += f"@{code.co_firstlineno}"  # lambdas all share one qualified name
    return name


def main_module_name() -> str:
    """The name ``__main__`` would have if it were imported rather than run.

    1. Run with ``python -m pkg.agent``: the name its spec was found under, ``pkg.agent``.
    2. Run as a file, ``python path/to/agent.py``: the file's stem, prefixed by the
       regular packages (directories with an ``__init__.py``) that enclose it, e.g.
       ``pkg.agent`` for ``src/pkg/agent.py`` beside ``src/pkg/__init__.py``. This is the
       name it has when imported through its top package, whatever ``sys.path`` this
       process happens to have; it does not guess namespace packages, which any
       directory could be. A script imported some other way needs ``name=``.
    3. Anything else (a REPL, ``python -c``, a notebook): ``__main__``, as it is.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    spec_name = getattr(spec, "name", None)
    if spec_name and spec_name != "__main__":  # `python some_dir/` has a spec named __main__
        return str(spec_name)
    file = getattr(main, "__file__", None)
    if not file:
        return "__main__"
    path = Path(file).resolve()
    if path.suffix != ".py":
        return "__main__"  # a zip file or a directory run as a script: no module name
    parts = [] if path.stem == "__init__" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.name.isidentifier():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts) or "__main__"


def check_fingerprint(check: Check | None) -> str:
    if check is None:
        return "-"
    return f"{fingerprint(check.capture)}|{fingerprint(check.compare)}|{check.threshold!r}"
