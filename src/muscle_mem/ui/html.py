"""HTML built so that what comes from the store cannot become markup.

Every string is escaped unless it is :class:`Markup`, which only this package makes:
task text, arguments, snapshots and briefs are the user's data, and a page that showed
one as HTML would run whatever script a recorded argument held.
"""

from __future__ import annotations

import html
from collections.abc import Iterable


class Markup(str):
    """HTML that is safe as it is: made by :func:`el` and :func:`escape`, never from data."""

    __slots__ = ()


#: What an element may hold: text (escaped), markup, None (nothing), or a list of them.
Content = str | Markup | None | Iterable["Content"]


def escape(value: object) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def join(children: Content) -> Markup:
    """The children as one piece of markup, text escaped."""
    if children is None:
        return Markup()
    if isinstance(children, str):
        return escape(children)
    return Markup("".join(join(child) for child in children))


def joined(separator: str, items: Iterable[Content]) -> Markup:
    """The items as markup, ``separator`` (text) between them."""
    return Markup(escape(separator).join(join(item) for item in items))


def el(tag: str, *children: Content, **attributes: object) -> Markup:
    """``<tag attributes>children</tag>``. An attribute ``class_`` is ``class``, and
    ``data_x`` is ``data-x``; None or False leaves it out, True writes it bare."""
    opened = tag + "".join(_attribute(name, value) for name, value in attributes.items())
    if tag in _VOID:
        return Markup(f"<{opened}>")
    return Markup(f"<{opened}>{join(children)}</{tag}>")


def _attribute(name: str, value: object) -> str:
    if value is None or value is False:
        return ""
    name = name.rstrip("_").replace("_", "-")
    if value is True:
        return f" {name}"
    return f' {name}="{escape(value)}"'


_VOID = frozenset({"br", "hr", "img", "input", "link", "meta", "source", "wbr"})
