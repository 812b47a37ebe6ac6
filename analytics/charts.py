"""Server-side SVG charts for the dashboards: no JavaScript, no inline styles (CSP-friendly).

Every text that reaches the markup is escaped; colours are SVG presentation attributes. Each
chart carries a <title> and <desc> for screen readers, and the pages show a table of the same
numbers under it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 36
COLOURS = ("#2f6fb3", "#d9822b", "#2e8540", "#b32f4f", "#6b4fb3")


@dataclass(frozen=True)
class Series:
    """One line of a line chart: a name and a value per label (None: no data there)."""

    name: str
    values: Sequence[float | None]


def _number(value: float) -> str:
    return f"{value:.4g}"


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(power * f for f in (1, 2, 5, 10) if power * f >= value)


def line_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    unit: str = "",
    y_max: float | None = None,
) -> SafeString:
    """A line chart of `series` over `labels` (points where a value is None are left out)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [v for s in series for v in s.values if v is not None]
    top = y_max if y_max is not None else _nice_max(max(values, default=0.0))
    count = max(len(labels), 1)

    def x(i: int) -> float:
        return LEFT + (plot_w * (i + 0.5) / count)

    def y(v: float) -> float:
        return TOP + plot_h - plot_h * min(v, top) / top

    parts = [_grid(unit, top)]
    for index, line in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        points = [(x(i), y(v), v) for i, v in enumerate(line.values) if v is not None]
        # A gap (a bucket without data) breaks the line rather than bridging it.
        run: list[str] = []
        for i, v in enumerate([*line.values, None]):
            if v is not None:
                run.append(f"{x(i):.1f},{y(v):.1f}")
                continue
            if len(run) > 1:
                parts.append(
                    format_html(
                        '<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>',
                        " ".join(run),
                        colour,
                    )
                )
            run = []
        for px, py, v in points:
            parts.append(
                format_html(
                    '<circle cx="{}" cy="{}" r="3" fill="{}"><title>{}: {}{}</title></circle>',
                    f"{px:.1f}",
                    f"{py:.1f}",
                    colour,
                    line.name,
                    _number(v),
                    unit,
                )
            )
    parts.append(_x_labels(labels, x))
    parts.append(_legend(series))
    return _svg(title, parts, f"{len(labels)} buckets; see the table below for the numbers.")


def bar_chart(*, title: str, items: Sequence[tuple[str, float]], unit: str = "") -> SafeString:
    """A horizontal bar chart: one bar per (label, value), longest scale at the largest value."""
    row = 22
    height = TOP + BOTTOM // 2 + row * max(len(items), 1)
    label_w = 200
    plot_w = WIDTH - label_w - RIGHT - 60
    top = _nice_max(max((v for _, v in items), default=0.0))
    parts: list[str] = []
    for i, (label, value) in enumerate(items):
        y = TOP + i * row
        width = plot_w * value / top
        short = label if len(label) <= 30 else label[:29] + "…"
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="end" font-size="12">{}</text>'
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
                "<title>{}: {}{}</title></rect>"
                '<text x="{}" y="{}" font-size="12">{}{}</text>',
                label_w - 6,
                y + 15,
                short,
                label_w,
                y + 3,
                f"{width:.1f}",
                row - 6,
                COLOURS[0],
                label,
                _number(value),
                unit,
                f"{label_w + width + 4:.1f}",
                y + 15,
                _number(value),
                unit,
            )
        )
    if not items:
        parts.append(format_html('<text x="{}" y="{}" font-size="12">No data</text>', LEFT, 28))
    return _svg(title, parts, f"{len(items)} bars.", height=height)


def _grid(unit: str, top: float) -> str:
    plot_h = HEIGHT - TOP - BOTTOM
    lines = []
    for step in range(5):
        value = top * step / 4
        y = TOP + plot_h - plot_h * step / 4
        lines.append(
            format_html(
                '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ddd"/>'
                '<text x="{}" y="{}" text-anchor="end" font-size="11">{}{}</text>',
                LEFT,
                f"{y:.1f}",
                WIDTH - RIGHT,
                f"{y:.1f}",
                LEFT - 4,
                f"{y + 4:.1f}",
                _number(value),
                unit,
            )
        )
    return "".join(lines)


def _x_labels(labels: Sequence[str], x: Callable[[int], float]) -> str:
    # At most 8 labels, evenly spaced, so they never overlap.
    every = max(1, -(-len(labels) // 8))
    return "".join(
        format_html(
            '<text x="{}" y="{}" text-anchor="middle" font-size="10">{}</text>',
            f"{x(i):.1f}",
            HEIGHT - BOTTOM + 14,
            label,
        )
        for i, label in enumerate(labels)
        if i % every == 0
    )


def _legend(series: Sequence[Series]) -> str:
    return "".join(
        format_html(
            '<rect x="{}" y="{}" width="10" height="10" fill="{}"/>'
            '<text x="{}" y="{}" font-size="11">{}</text>',
            LEFT + i * 140,
            HEIGHT - 14,
            COLOURS[i % len(COLOURS)],
            LEFT + i * 140 + 14,
            HEIGHT - 5,
            s.name,
        )
        for i, s in enumerate(series)
    )


def _svg(title: str, parts: Sequence[str], desc: str, *, height: int = HEIGHT) -> SafeString:
    head = format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="verdict-chart" role="img" '
        'viewBox="0 0 {} {}" width="{}" height="{}"><title>{}</title><desc>{}</desc>',
        WIDTH,
        height,
        WIDTH,
        height,
        title,
        desc,
    )
    # Every part was built with format_html (escaped), so the join is safe.
    return mark_safe(head + "".join(parts) + "</svg>")  # noqa: S308
