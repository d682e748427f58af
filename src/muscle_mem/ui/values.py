"""Recorded values as HTML, in the notation of ``muscle-mem show``: params as ``{name}``,
values from earlier results as where they came from (``⟨step 1: orders[*]⟩``), what
was never stored as ``<sensitive>``, anything else as Python writes it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models import FromResult, Param, Redacted, Text, Traced
from .data import StepView, Unreadable
from .html import Markup, el, escape, joined


def call(step: StepView) -> Markup:
    """The call as ``muscle-mem show`` prints it, params and references marked."""
    if isinstance(step.call, Unreadable):
        return el(
            "code",
            step.tool,
            "(",
            el("span", f"cannot read its arguments: {step.call.reason}", class_="error"),
            ")",
        )
    args, kwargs = step.call
    shown = [value(a) for a in args] + [
        Markup(escape(name) + "=" + value(v)) for name, v in kwargs.items()
    ]
    return el("code", el("span", step.tool, class_="tool"), "(", _commas(shown), ")")


def value(item: Any) -> Markup:
    """A template value: params as ``{name}``, values from earlier results as where
    they came from, ``⟨step 1: orders[*]⟩``, after the value chosen there if any."""
    if isinstance(item, Param):
        return el("span", "{" + item.name + "}", class_="param", title="a param of the run")
    if isinstance(item, Text):
        parts = [value(part) if isinstance(part, Param) else escape(part) for part in item.parts]
        return el("span", "'", parts, "'", class_="literal")
    if isinstance(item, Redacted):
        return el("span", "<sensitive>", class_="redacted", title="never stored")
    if isinstance(item, Traced):
        sources = joined(
            " = ", (value(s) if isinstance(s, Param) else str(s) for s in item.sources)
        )
        ref = el(
            "span",
            "⟨",
            sources,
            "⟩",
            class_="ref",
            title=_ref_title(item),
        )
        return ref if item.value is None else Markup(value(item.value) + " " + ref)
    if isinstance(item, list):
        return Markup("[" + _commas([value(v) for v in item]) + "]")
    if isinstance(item, tuple):
        inner = _commas([value(v) for v in item])
        return Markup(f"({inner}{',' if len(item) == 1 else ''})")
    if isinstance(item, dict):
        pairs = [Markup(value(k) + ": " + value(v)) for k, v in item.items()]
        return Markup("{" + _commas(pairs) + "}")
    return literal(item, 60)


def _ref_title(traced: Traced) -> str:
    chosen = any(isinstance(s, FromResult) and not s.alone for s in traced.sources)
    if traced.value is not None and chosen:
        return "the agent's choice among the values an earlier step returned"
    return "taken from where it was found when recorded"


def literal(item: Any, width: int) -> Markup:
    """A value as Python writes it, cut at ``width`` characters (all of it on hover)."""
    text = " ".join(repr(item).split())
    if len(text) <= width:
        return el("span", text, class_="literal")
    return el("span", text[: width - 1] + "…", class_="literal", title=text[:2000])


def _commas(items: Sequence[Markup]) -> Markup:
    return joined(", ", items)
