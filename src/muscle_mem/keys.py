"""A run's inputs, checked, and the cache key they make.

The key is the tags (an unordered set) and the task's arguments with every param value
replaced by its name, so runs that differ only in their params share one cache entry,
and one task's trajectory is never replayed for another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from .codec import encode
from .errors import ConfigurationError, EncodeError
from .models import TASK_KEY_PREFIX, Param, Text
from .templates import Templater

TEXT_LIMIT = 2_000  # characters of a task's text a store keeps: a label, not an archive

TAGS_EXPECTED = "tags must be a list of strings, e.g. tags=['signup']"


def strings(value: Iterable[str], expected: str) -> tuple[str, ...]:
    """``value`` as a tuple of strings, read once (a generator can only be read once);
    ``expected`` says what was expected when it is not."""
    given = None if isinstance(value, str) or not isinstance(value, Iterable) else tuple(value)
    if given is None or not all(isinstance(s, str) for s in given):
        raise ConfigurationError(f"{expected}, got {value!r}")
    return given


def tags(value: Iterable[str] | None) -> tuple[str, ...]:
    """A run's tags, sorted and de-duplicated: their order never matters."""
    if value is None:
        return ()
    return tuple(sorted(set(strings(value, TAGS_EXPECTED))))


def params(value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"params must be a dict of name to value, e.g. params={{'name': 'John'}}, got {value!r}"
        )
    for name in value:
        if not isinstance(name, str):
            raise ConfigurationError(f"param names must be strings, got {name!r}")
    return dict(value)


def about(value: Any) -> str | None:
    """The "kind:id" reference of what a run is about: a bank entity's ``ref``, or a str.

    Checked before the agent runs: the run log keeps it, and a reference no store can
    hold (a lone surrogate, a NUL) would otherwise fail the run's write after the agent
    had done its work.
    """
    ref = getattr(value, "ref", value)
    if ref is None:
        return None
    if isinstance(ref, str) and ref.partition(":")[0] and ref.partition(":")[2]:
        if "\0" in ref or not _encodable(ref):
            raise ConfigurationError(
                f"about={ref!r} holds a NUL or a lone surrogate, which no store can keep; "
                "pass the reference as plain text, e.g. about='campaign:summer-sale'"
            )
        return ref
    raise ConfigurationError(
        "about= takes a memory bank entity or a 'kind:id' string, e.g. "
        f"about='campaign:summer-sale', got {value!r}"
    )


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def task_text(params: dict[str, Any], args: Any, kwargs: Any) -> str:
    """The task's own words as the store keeps them beside its key: the task's first
    argument when it is a string (else its ``task=`` argument), with param values
    replaced by ``{name}`` as the key templates them, so ``engine("fill the form for
    John", params={"name": "John"})`` reads ``"fill the form for {name}"``; "" when the
    task has no such words.

    Only that argument: the others reach the key as a hash, and may be what no store
    should keep in clear (a password passed to the agent). Cut at :data:`TEXT_LIMIT`;
    what no store can hold (a NUL, a lone surrogate) is replaced.
    """
    words = args[0] if args else kwargs.get("task")
    if not isinstance(words, str):
        return ""
    templated = Templater(params, words=True).template(words)
    if isinstance(templated, Param):
        text = f"{{{templated.name}}}"
    elif isinstance(templated, Text):
        text = "".join(p if isinstance(p, str) else f"{{{p.name}}}" for p in templated.parts)
    else:
        text = templated
    if len(text) > TEXT_LIMIT:
        text = text[: TEXT_LIMIT - 1] + "…"
    return text.replace("\0", "\ufffd").encode(errors="replace").decode()


def task_key(
    match_task: bool, tags: tuple[str, ...], params: dict[str, Any], args: Any, kwargs: Any
) -> str:
    """The cache key of a run (``tags`` and ``params`` as checked above)."""
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
