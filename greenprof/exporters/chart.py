"""Charts for reports as inline SVG strings (no JavaScript, no network) and text sparklines.

Pure functions of numbers: what to plot is decided by :mod:`greenprof.exporters.report`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from greenprof.formatting import axis_tick, significant
from greenprof.textsafe import html_text as escape

PALETTE = ("#1b7f5b", "#3b6fb6", "#d98c1f", "#a23b72", "#6b6b6b", "#5aa02c", "#8c564b")
_SPARKS = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Series:
    """One line: a label and its y values (None = no data) over the shared x values."""

    label: str
    values: Sequence[float | None]


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
    """An SVG line chart: ``left`` series on the left axis, one ``right`` series (dashed)."""
    pad_l, pad_r, pad_t, pad_b = 64, 72 if right else 20, 34, 58
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    x_max = max(x) if x else 1.0
    x_div, x_unit = time_axis(x_max)
    x_ticks = nice_ticks(0.0, x_max / x_div)
    x_top = x_ticks[-1] * x_div or 1.0

    def px(value: float) -> float:
        return pad_l + plot_w * value / x_top

    left_vals = [v for s in left for v in s.values if v is not None]
    y_ticks = nice_ticks(0.0, max(left_vals, default=1.0) or 1.0)
    y_top = y_ticks[-1] or 1.0

    def py(value: float, top: float) -> float:
        return pad_t + plot_h * (1 - value / top)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        'font-family="system-ui, sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{pad_l}" y="18" font-size="13" font-weight="600">{escape(title)}</text>',
    ]
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
        f'text-anchor="middle">{escape(left_unit)}</text>'
    )
    for index, series in enumerate(left):
        color = PALETTE[index % len(PALETTE)]
        out.extend(_polyline(x, series.values, px, lambda v: py(v, y_top), color, dashed=False))
    legend = [(s.label, PALETTE[i % len(PALETTE)], False) for i, s in enumerate(left)]
    if right is not None:
        right_vals = [v for v in right.values if v is not None]
        r_ticks = nice_ticks(0.0, max(right_vals, default=1.0) or 1.0)
        r_top = r_ticks[-1] or 1.0
        for tick in r_ticks:
            out.append(
                f'<text x="{pad_l + plot_w + 6}" y="{py(tick, r_top) + 4:.1f}">'
                f"{tick_label(tick)}</text>"
            )
        out.append(
            f'<text transform="translate({width - 12} {pad_t + plot_h / 2}) rotate(90)" '
            f'text-anchor="middle">{escape(right_unit)}</text>'
        )
        out.extend(_polyline(x, right.values, px, lambda v: py(v, r_top), "#222", dashed=True))
        legend.append((right.label, "#222", True))
    x_legend = pad_l
    for label, color, dashed in legend:
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        y = height - 10
        out.append(
            f'<line x1="{x_legend}" x2="{x_legend + 18}" y1="{y - 4}" y2="{y - 4}" '
            f'stroke="{color}" stroke-width="2"{dash}/>'
            f'<text x="{x_legend + 22}" y="{y}">{escape(label)}</text>'
        )
        x_legend += 30 + 7 * len(label)
    out.append("</svg>")
    return "".join(out)


def _polyline(
    x: Sequence[float],
    values: Sequence[float | None],
    px: object,
    py: object,
    color: str,
    *,
    dashed: bool,
) -> list[str]:
    """One polyline per unbroken run of values (gaps where a value is None)."""
    assert callable(px)
    assert callable(py)
    parts: list[list[str]] = []
    current: list[str] = []
    for x_val, y_val in zip(x, values, strict=False):
        if y_val is None:
            if current:
                parts.append(current)
            current = []
            continue
        current.append(f"{px(x_val):.1f},{py(y_val):.1f}")
    if current:
        parts.append(current)
    dash = ' stroke-dasharray="5 3"' if dashed else ""
    return [
        f'<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} '
        f'points="{" ".join(points)}"/>'
        for points in parts
    ]


def bar_chart(
    items: Sequence[tuple[str, float]], *, unit: str, title: str, width: int = 760
) -> str:
    """Horizontal bars, one per (label, value), for comparing runs."""
    bar_h, gap, pad_l, pad_t = 18, 8, 210, 30
    height = pad_t + len(items) * (bar_h + gap) + 10
    top = max((value for _, value in items), default=1.0) or 1.0
    plot_w = width - pad_l - 90
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        'font-family="system-ui, sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="10" y="18" font-size="13" font-weight="600">{escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(items):
        y = pad_t + index * (bar_h + gap)
        bar = plot_w * max(value, 0.0) / top
        out.append(
            f'<text x="{pad_l - 8}" y="{y + 13}" text-anchor="end">{escape(label[:32])}</text>'
            f'<rect x="{pad_l}" y="{y}" width="{bar:.1f}" height="{bar_h}" '
            f'fill="{PALETTE[index % len(PALETTE)]}"/>'
            f'<text x="{pad_l + bar + 6:.1f}" y="{y + 13}">'
            f"{significant(value)} {escape(unit)}</text>"
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
