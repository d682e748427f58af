"""What every command shares: how it fails, which store it works on, how ages are read,
how wide it may print."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from ..errors import ConfigurationError, MuscleMemError
from ..store import DEFAULT_PATH, ENV_VAR, Store, open_store, sqlite_path
from .output import terminal_width

DEFAULT_STORE = DEFAULT_PATH  # the store a command opens when none is named
SECRET_VAR = "MUSCLE_MEM_SECRET"
#: How a module adds a command: (name, what runs it, one line of help[, under which group]).
Command = Callable[..., argparse.ArgumentParser]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class UsageError(Exception):
    """The command cannot start: exit code 2, one line on stderr."""


class Failed(Exception):
    """The command ran but could not do what was asked: exit code 1."""


def age_ago(text: str) -> float:
    """An age (30d, 12h, 15m, 2w) read as the moment that long ago, in epoch seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age: write 30d, 12h, 15m or 2w")
    return time.time() - float(match[1]) * _UNITS[match[2]]


def store_url(args: argparse.Namespace) -> str:
    """The store named by --store, else $MUSCLE_MEM_STORE, else the default file."""
    return getattr(args, "store", None) or os.environ.get(ENV_VAR) or DEFAULT_STORE


def open_for(args: argparse.Namespace, *, create: bool = False, read_only: bool = False) -> Store:
    """The store the command works on; one that does not exist is created only if asked.
    A command that only reads opens it ``read_only``: a file it may not write is enough.

    Under :func:`muscle_mem.cli.main` it is closed when the command returns."""
    url = store_url(args)
    # A store from the environment is named as such: the user may not know it is set.
    from_env = not getattr(args, "store", None) and os.environ.get(ENV_VAR)
    source = f"${ENV_VAR}={url!r}" if from_env else ""
    if url.startswith("memory:"):
        raise UsageError(
            f"{source + ' is not a store here: ' if source else ''}"
            "a memory:// store lives inside one process; give the command a file or a "
            "server: --store sqlite:///path/to/cache.db or postgresql://..."
        )
    path = sqlite_path(url)
    if path and not create and not Path(path).exists():
        raise UsageError(
            f"no store at {path}{' (from ' + source + ')' if source else ''}: nothing was "
            f"recorded there (pass --store URL, or set ${ENV_VAR})"
        )
    try:
        store = open_store(url, secret=os.environ.get(SECRET_VAR) or None, read_only=read_only)
    except ConfigurationError as error:
        raise UsageError(f"{source} is not a store: {error}" if source else str(error)) from None
    except (MuscleMemError, ValueError) as error:  # each names the store it could not open
        raise UsageError(f"{error} (from {source})" if source else str(error)) from None
    opened = getattr(args, "opened", None)  # main()'s: closed when the command returns
    if opened is not None:
        opened.callback(store.close)
    return store


def wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def width(args: argparse.Namespace) -> int | None:
    """How wide the command may print: the terminal's width, or no limit with --wide."""
    return None if getattr(args, "wide", False) else terminal_width()


def read_input(name: str) -> str:
    """The text of the file ``name``, or of stdin for ``-``."""
    try:
        if name == "-":
            return sys.stdin.read()
        return Path(name).read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read {name}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise Failed(f"{name} is not UTF-8 text: is it the file an export wrote?") from None


@contextlib.contextmanager
def output(name: str | None) -> Iterator[TextIO]:
    """Where a command writes: the file ``name`` (replaced), or stdout when None."""
    if name is None:
        yield sys.stdout
        return
    try:
        stream = open(name, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as error:
        raise UsageError(f"cannot write {name}: {error.strerror}") from None
    with stream:
        yield stream
