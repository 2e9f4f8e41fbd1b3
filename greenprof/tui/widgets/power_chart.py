"""Power over time, one band per device, each with its own scale, on one time axis.

A CPU at 20 W and a GPU at 300 W on one scale would flatten the CPU into the floor; a
band per device (as nvtop draws one graph per GPU) keeps each readable. Each band's
scale runs from 0 to a little above its peak, so constant power is a visible level line
(a min..max scale would have no height to draw it in), and the time axis below names
the window's start and end in run time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget

from greenprof import formatting
from greenprof.textsafe import terminal_text
from greenprof.tui.widgets.chart import SERIES_STYLES, Point, rasterize

HEADROOM = 1.1
"""A band's top is 10 % above its peak, so a flat line sits below the band's top edge."""
MIN_BAND_ROWS = 2


NICE_STEPS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def nice_ceiling(value: float) -> float:
    """The smallest of NICE_STEPS × 10^n at or above ``value`` (> 0): a scale top that
    reads at a glance (300 W, not 284.3 W)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in NICE_STEPS if step * power >= value * (1 - 1e-9))


def band_scale_w(points: Sequence[Point]) -> tuple[float, float]:
    """The band's power range: 0 to a round number a little above the peak (1 W when
    all are 0)."""
    peak = max((p[1] for p in points), default=0.0)
    low = min(0.0, min((p[1] for p in points), default=0.0))
    return (low, nice_ceiling(peak * HEADROOM) if peak > 0 else 1.0)


def band_rows(height: int, bands: int) -> list[int]:
    """Rows per band for ``bands`` bands in ``height`` rows (at least MIN_BAND_ROWS each;
    the bands that do not fit are dropped, the first ones kept)."""
    shown = max(0, min(bands, height // MIN_BAND_ROWS))
    if shown == 0:
        return []
    base, extra = divmod(height, shown)
    return [base + (1 if index < extra else 0) for index in range(shown)]


class PowerChart(Widget):
    """Per-device power bands sharing a time axis (seconds since the run started)."""

    DEFAULT_CSS = """
    PowerChart { height: 1fr; min-height: 4; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._bands: list[tuple[str, list[Point]]] = []
        self._empty = "no power readings yet"

    def set_bands(self, bands: Sequence[tuple[str, Sequence[Point]]], *, empty: str = "") -> None:
        """Replace the bands: (device, [(seconds since start, watts)]), and redraw."""
        self._bands = [(terminal_text(name), list(points)) for name, points in bands if points]
        if empty:
            self._empty = empty
        self.refresh()

    def render(self) -> Text:
        """Legend, one band per device with its scale on the left, the time axis below."""
        width, height = self.size.width, self.size.height
        if not self._bands:
            return Text(self._empty, style="dim")
        rows = band_rows(max(1, height - 2), len(self._bands))
        bands = self._bands[: len(rows)]
        times = [p[0] for _, points in bands for p in points]
        x_range = (min(times), max(times))
        scales = [band_scale_w(points) for _, points in bands]
        labels = [(formatting.axis_tick(top), formatting.axis_tick(low)) for low, top in scales]
        axis_w = max(len(text) for pair in labels for text in pair) + 2
        plot_w = max(1, width - axis_w)
        out = Text(no_wrap=True, overflow="crop")
        for index, (name, points) in enumerate(bands):
            style = SERIES_STYLES[index % len(SERIES_STYLES)]
            out.append(f"━ {name} {formatting.power(points[-1][1])}  ", style=style)
        hidden = len(self._bands) - len(bands)
        if hidden:
            out.append(f"(+{hidden} more: taller terminal)", style="dim")
        out.append("\n")
        for index, ((_, points), band_h, scale) in enumerate(zip(bands, rows, scales, strict=True)):
            style = SERIES_STYLES[index % len(SERIES_STYLES)]
            grid = rasterize([points], plot_w, band_h, x_range=x_range, y_range=scale)
            top, bottom = labels[index]
            for row_index, row in enumerate(grid):
                label = top if row_index == 0 else bottom if row_index == band_h - 1 else ""
                edge = "┤" if row_index in (0, band_h - 1) else "│"
                out.append((label + "W" if label else "").rjust(axis_w - 1) + edge, style="dim")
                # one append per row (a band has one colour): cheap at 1 Hz on wide terminals
                out.append("".join(chr(0x2800 + bits) if bits else " " for bits, _ in row), style)
                out.append("\n")
        left = formatting.duration(x_range[0])
        right = formatting.duration(x_range[1])
        middle = "time since start".center(max(0, plot_w - len(left) - len(right)))
        out.append(" " * axis_w + left + middle + right, style="dim")
        return out
