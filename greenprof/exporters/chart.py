"""Charts for reports as inline SVG strings (no JavaScript, no network) and text sparklines.

Pure functions of numbers: what to plot is decided by :mod:`greenprof.exporters.report`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from greenprof.formatting import axis_tick, significant
from greenprof.textsafe import html_text as escape

CHAR_WIDTH_EM = 0.62
"""Widest mean advance of a character of system-ui sans-serif, in font sizes: an upper
bound for digits and lower-case text, so that what is laid out with it fits."""

PALETTE = ("#1b7f5b", "#3b6fb6", "#d98c1f", "#a23b72", "#6b6b6b", "#5aa02c", "#8c564b")
_SPARKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Series:
    """One line: a label and its y values (None = no data) over the shared x values."""

    label: str
    values: Sequence[float | None]


def text_width(text: str, font_px: float = 11.0) -> float:
    """The width ``text`` takes at ``font_px`` (an upper estimate: SVG has no layout)."""
    return len(text) * font_px * CHAR_WIDTH_EM


def fit_text(text: str, width_px: float, font_px: float = 11.0) -> str:
    """``text`` shortened with ``…`` to fit ``width_px``."""
    if text_width(text, font_px) <= width_px:
        return text
    chars = max(1, int(width_px / (font_px * CHAR_WIDTH_EM)) - 1)
    return text[:chars] + "…"


def svg_open(width: float, height: float, title: str) -> list[str]:
    """A chart's first SVG lines: the root element, its accessible title, the heading."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        'font-family="system-ui, sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="10" y="18" font-size="13" font-weight="600">'
        f"{escape(fit_text(title, width - 20, 13))}</text>",
    ]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        high = low + 1.0
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def tick_label(value: float) -> str:
    """Short tick text: 1.5k, 250, 0.25, 40µ (never an exponent such as 4e-05): the one
    rule of :func:`greenprof.formatting.axis_tick`."""
    return axis_tick(value)


def time_axis(seconds: float) -> tuple[float, str]:
    """Divisor and unit name for a time axis spanning ``seconds``."""
    if seconds >= 3 * 3600:
        return 3600.0, "h"
    if seconds >= 180:
        return 60.0, "min"
    return 1.0, "s"


def line_chart(
    x: Sequence[float],
    left: Sequence[Series],
    *,
    left_unit: str,
    right: Series | None = None,
    right_unit: str = "",
    title: str = "",
    width: int = 760,
    height: int = 300,
) -> str:
    """An SVG line chart: ``left`` series on the left axis, one ``right`` series (dashed).

    Every text fits: the margins grow with the tick labels, the legend wraps onto as
    many rows as it needs (the chart grows taller), and lines bridge missing values
    (a bucket without a reading is not a break in the power line).
    """
    legend = [(s.label, PALETTE[i % len(PALETTE)], False) for i, s in enumerate(left)]
    if right is not None:
        legend.append((right.label, "#222", True))
    rows = _legend_rows([label for label, _, _ in legend], width - 20)
    left_vals = [v for s in left for v in s.values if v is not None]
    y_ticks = nice_ticks(0.0, max(left_vals, default=1.0) or 1.0)
    r_ticks: list[float] = []
    if right is not None:
        right_vals = [v for v in right.values if v is not None]
        r_ticks = nice_ticks(0.0, max(right_vals, default=1.0) or 1.0)
    pad_l = math.ceil(30 + max(text_width(tick_label(t)) for t in y_ticks))
    pad_r = math.ceil(34 + max(text_width(tick_label(t)) for t in r_ticks)) if right else 20
    pad_t, pad_b = 34, 46 + 16 * len(rows)
    height += 16 * (len(rows) - 1)
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    x_max = max(x) if x else 1.0
    x_div, x_unit = time_axis(x_max)
    x_ticks = nice_ticks(0.0, x_max / x_div)
    x_top = x_ticks[-1] * x_div or 1.0

    def px(value: float) -> float:
        return pad_l + plot_w * value / x_top

    y_top = y_ticks[-1] or 1.0

    def py(value: float, top: float) -> float:
        return pad_t + plot_h * (1 - value / top)

    out = svg_open(width, height, title)
    out.insert(2, f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>')
    for tick in y_ticks:
        y = py(tick, y_top)
        out.append(
            f'<line x1="{pad_l}" x2="{pad_l + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e4e4"/>'
            f'<text x="{pad_l - 6}" y="{y + 4:.1f}" text-anchor="end">{tick_label(tick)}</text>'
        )
    for tick in x_ticks:
        x_px = px(tick * x_div)
        out.append(
            f'<line x1="{x_px:.1f}" x2="{x_px:.1f}" y1="{pad_t + plot_h}" '
            f'y2="{pad_t + plot_h + 4}" stroke="#888"/>'
            f'<text x="{x_px:.1f}" y="{pad_t + plot_h + 16}" text-anchor="middle">'
            f"{tick_label(tick)}</text>"
        )
    out.append(
        f'<line x1="{pad_l}" x2="{pad_l + plot_w}" y1="{pad_t + plot_h}" y2="{pad_t + plot_h}" '
        'stroke="#888"/>'
        f'<text x="{pad_l + plot_w / 2}" y="{pad_t + plot_h + 32}" text-anchor="middle">'
        f"time since start ({x_unit})</text>"
        f'<text transform="translate(14 {pad_t + plot_h / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(fit_text(left_unit, plot_h))}</text>'
    )
    for index, series in enumerate(left):
        color = PALETTE[index % len(PALETTE)]
        out.extend(_polyline(x, series.values, px, lambda v: py(v, y_top), color, dashed=False))
    if right is not None:
        r_top = r_ticks[-1] or 1.0
        for tick in r_ticks:
            out.append(
                f'<text x="{pad_l + plot_w + 6}" y="{py(tick, r_top) + 4:.1f}">'
                f"{tick_label(tick)}</text>"
            )
        out.append(
            f'<text transform="translate({width - 12} {pad_t + plot_h / 2}) rotate(90)" '
            f'text-anchor="middle">{escape(fit_text(right_unit, plot_h))}</text>'
        )
        out.extend(_polyline(x, right.values, px, lambda v: py(v, r_top), "#222", dashed=True))
    colors = {label: (color, dashed) for label, color, dashed in legend}
    for row_index, row in enumerate(rows):
        x_legend = 10.0
        y = height - 10 - 16 * (len(rows) - 1 - row_index)
        for label in row:
            color, dashed = colors[label]
            dash = ' stroke-dasharray="5 3"' if dashed else ""
            out.append(
                f'<line x1="{x_legend:.1f}" x2="{x_legend + 18:.1f}" y1="{y - 4}" y2="{y - 4}" '
                f'stroke="{color}" stroke-width="2"{dash}/>'
                f'<text x="{x_legend + 22:.1f}" y="{y}">{escape(label)}</text>'
            )
            x_legend += _legend_width(label)
    out.append("</svg>")
    return "".join(out)


def _legend_width(label: str) -> float:
    """Room one legend entry takes: its line sample, the label and a gap."""
    return 22 + text_width(label) + 16


def _legend_rows(labels: Sequence[str], width: float) -> list[list[str]]:
    """The legend's labels in rows that each fit ``width`` (at least one row)."""
    rows: list[list[str]] = [[]]
    used = 0.0
    for label in labels:
        room = _legend_width(label)
        if rows[-1] and used + room > width:
            rows.append([])
            used = 0.0
        rows[-1].append(label)
        used += room
    return rows


def _polyline(
    x: Sequence[float],
    values: Sequence[float | None],
    px: object,
    py: object,
    color: str,
    *,
    dashed: bool,
) -> list[str]:
    """One polyline through every known value: a missing value (a bucket without a
    reading) is bridged, not drawn as a break (the line was broken into segments)."""
    assert callable(px)
    assert callable(py)
    points = [
        f"{px(x_val):.1f},{py(y_val):.1f}"
        for x_val, y_val in zip(x, values, strict=False)
        if y_val is not None
    ]
    if not points:
        return []
    dash = ' stroke-dasharray="5 3"' if dashed else ""
    return [
        f'<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} '
        f'points="{" ".join(points)}"/>'
    ]


def bar_chart(
    items: Sequence[tuple[str, float]],
    *,
    unit: str,
    title: str,
    width: int = 760,
    value_texts: Sequence[str] | None = None,
) -> str:
    """Horizontal bars, one per (label, value), for comparing runs.

    ``value_texts`` are what is written after each bar (default: the value with three
    significant digits and ``unit``). The label column is as wide as the longest label
    (up to 40 % of the chart, longer labels end in ``…``) and the bars leave room for
    the longest value text, so no text is clipped.
    """
    texts = list(value_texts or [f"{significant(value)} {unit}" for _, value in items])
    bar_h, gap, pad_t = 18, 8, 30
    label_room = min(width * 0.4, max((text_width(label) for label, _ in items), default=0.0))
    pad_l = math.ceil(16 + label_room)
    pad_r = math.ceil(16 + max((text_width(text) for text in texts), default=0.0))
    height = pad_t + len(items) * (bar_h + gap) + 10
    top = max((value for _, value in items), default=1.0) or 1.0
    plot_w = max(10.0, width - pad_l - pad_r)
    out = svg_open(width, height, title)
    for index, ((label, value), text) in enumerate(zip(items, texts, strict=False)):
        y = pad_t + index * (bar_h + gap)
        bar = plot_w * max(value, 0.0) / top
        out.append(
            f'<text x="{pad_l - 8}" y="{y + 13}" text-anchor="end">'
            f"{escape(fit_text(label, label_room))}</text>"
            f'<rect x="{pad_l}" y="{y}" width="{bar:.1f}" height="{bar_h}" '
            f'fill="{PALETTE[index % len(PALETTE)]}"/>'
            f'<text x="{pad_l + bar + 6:.1f}" y="{y + 13}">{escape(text)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def sparkline(values: Sequence[float | None], *, width: int = 40) -> str:
    """Unicode sparkline of ``values`` (scaled from 0) in ``width`` characters (' ' = no data)."""
    known = [v for v in values if v is not None]
    if not known:
        return ""
    low, high = min(0.0, *known), max(known)
    step = max(1, math.ceil(len(values) / width))
    chars = []
    for start in range(0, len(values), step):
        chunk = [v for v in values[start : start + step] if v is not None]
        if not chunk:
            chars.append(" ")
            continue
        mean = sum(chunk) / len(chunk)
        level = 0 if high == low else round((mean - low) / (high - low) * (len(_SPARKS) - 1))
        chars.append(_SPARKS[level])
    return "".join(chars)
