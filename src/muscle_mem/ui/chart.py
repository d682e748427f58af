"""Small SVG charts, drawn here so a page needs no script and no network to show them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from .html import Markup, el

WIDTH, HEIGHT = 420, 180
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 12, 12, 28  # room for the axes' labels


def chart(
    title: str,
    points: Sequence[tuple[str, float | None, str]],
    *,
    kind: Literal["bars", "line"],
    fmt: Callable[[float], str],
    top: float | None = None,
) -> Markup:
    """A figure of ``points`` (label, value, note) as bars or a line, the y axis from the
    least of 0 and the values to ``top`` (default: the largest value). Each point has a
    tooltip: its label, its value and its note; a bar whose value is None is not drawn
    (a period without runs has no rate)."""
    values = [value for _, value, _ in points if value is not None]
    low = min(0.0, *values) if values else 0.0
    high = max([top if top is not None else 0.0, *values]) if values else 1.0
    if high <= low:
        high = low + 1.0
    inner_w, inner_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def y(value: float) -> float:
        return round(_TOP + inner_h * (high - value) / (high - low), 1)

    slot = inner_w / max(len(points), 1)

    def x(i: int) -> float:
        return round(_LEFT + slot * (i + 0.5), 1)

    grid = [
        el(
            "g",
            el("line", x1=_LEFT, x2=WIDTH - _RIGHT, y1=y(v), y2=y(v), class_="grid"),
            el("text", fmt(v), x=_LEFT - 6, y=y(v) + 4, class_="axis", text_anchor="end"),
        )
        for v in dict.fromkeys((high, (high + low) / 2, low, 0.0))
        if low <= v <= high
    ]
    marks: list[Markup] = []
    if kind == "bars":
        zero = y(0.0)
        for i, (label, value, note) in enumerate(points):
            if value is None:
                continue
            top_y, bottom_y = sorted((y(value), zero))
            marks.append(
                el(
                    "rect",
                    el("title", _tip(label, fmt(value), note)),
                    x=round(x(i) - slot * 0.4, 1),
                    y=top_y,
                    width=round(slot * 0.8, 1),
                    height=max(round(bottom_y - top_y, 1), 0.5),
                    class_="bar",
                )
            )
    else:
        drawn = [(i, label, v, note) for i, (label, v, note) in enumerate(points) if v is not None]
        line = " ".join(f"{x(i)},{y(v)}" for i, _, v, _ in drawn)
        marks.append(el("polyline", points=line, class_="line", fill="none"))
        marks.extend(
            el("circle", el("title", _tip(label, fmt(v), note)), cx=x(i), cy=y(v), r=3)
            for i, label, v, note in drawn
        )
    ends = [(0, points[0][0])] + ([(len(points) - 1, points[-1][0])] if len(points) > 1 else [])
    axis = [
        el(
            "text",
            label,
            x=x(i),
            y=HEIGHT - 8,
            class_="axis",
            text_anchor="middle" if len(points) == 1 else "start" if i == 0 else "end",
        )
        for i, label in (ends if points else [])
    ]
    return el(
        "figure",
        el(
            "svg",
            el("title", title),
            grid,
            marks,
            axis,
            viewBox=f"0 0 {WIDTH} {HEIGHT}",
            role="img",
            aria_label=title,
            class_=f"chart chart-{kind}",
        ),
        el("figcaption", title),
        class_="chart",
    )


def _tip(label: str, value: str, note: str) -> str:
    return f"{label}: {value}" + (f" ({note})" if note else "")
