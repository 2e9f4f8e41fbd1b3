"""A small multi-series line chart drawn with braille dots (2×4 dots per cell).

Textual's PlotextPlot costs ~80 ms a replot; this widget rasterises a few hundred points
in well under a millisecond and needs no extra dependency. Each series ends with its
label's first letter so curves stay distinguishable without colour (``NO_COLOR``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text
from textual.widget import Widget

from greenprof.formatting import axis_tick, significant
from greenprof.textsafe import terminal_text

Point = tuple[float, float]
Series = tuple[str, Sequence[Point]]

_DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
SERIES_STYLES = ("green", "magenta", "cyan", "yellow", "red", "blue")


def rasterize(
    series: Sequence[Sequence[Point]],
    width: int,
    height: int,
    *,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
) -> list[list[tuple[int, int]]]:
    """Braille cells ``(dot bits, series index or -1)`` for the series, row 0 at the top.

    All series share one scale (min..max of every point, unless ``x_range``/``y_range``
    fix it; points outside are clamped to the edge); consecutive points are joined.
    """
    grid = [[(0, -1) for _ in range(width)] for _ in range(height)]
    points = [p for line in series for p in line]
    if not points or width <= 0 or height <= 0:
        return grid
    x_low, x_high = x_range or (min(p[0] for p in points), max(p[0] for p in points))
    y_low, y_high = y_range or (min(p[1] for p in points), max(p[1] for p in points))
    x_span = (x_high - x_low) or 1.0
    y_span = (y_high - y_low) or 1.0
    dots_w, dots_h = width * 2 - 1, height * 4 - 1

    def plot(dx: int, dy: int, index: int) -> None:
        row, col = (dots_h - dy) // 4, dx // 2
        bits, _ = grid[row][col]
        grid[row][col] = (bits | _DOTS[dx % 2][(dots_h - dy) % 4], index)

    for index, line in enumerate(series):
        previous: tuple[int, int] | None = None
        for x, y in line:
            dot = (
                min(dots_w, max(0, round((x - x_low) / x_span * dots_w))),
                min(dots_h, max(0, round((y - y_low) / y_span * dots_h))),
            )
            if previous is None:
                plot(*dot, index)
            else:
                for dx, dy in _segment(previous, dot):
                    plot(dx, dy, index)
            previous = dot
    return grid


def _tick(value: float) -> float:
    """An axis end rounded to 3 significant digits: a label, not a measurement
    (``3650``, not ``3645.91``)."""
    return float(significant(value))


def _segment(start: tuple[int, int], end: tuple[int, int]) -> list[tuple[int, int]]:
    steps = max(abs(end[0] - start[0]), abs(end[1] - start[1]), 1)
    return [
        (
            round(start[0] + (end[0] - start[0]) * i / steps),
            round(start[1] + (end[1] - start[1]) * i / steps),
        )
        for i in range(1, steps + 1)
    ]


class LineChart(Widget):
    """Overlaid line series with a y-axis range, an x-axis range and a legend."""

    DEFAULT_CSS = """
    LineChart { height: 12; }
    """

    def __init__(
        self,
        *,
        y_format: Callable[[float], str] = axis_tick,
        x_label: str = "",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self._series: list[Series] = []
        self._y_format = y_format
        self._x_label = x_label

    def set_x_label(self, label: str) -> None:
        """Name the x-axis (shown centred under the plot)."""
        self._x_label = label
        self.refresh()

    def set_series(self, series: Sequence[Series]) -> None:
        """Replace the plotted series (label, points) and redraw."""
        self._series = [(terminal_text(label), list(points)) for label, points in series]
        self.refresh()

    def render(self) -> Text:
        """Legend, plot area with y range on the left, x range below."""
        width, height = self.size.width, self.size.height
        points = [p for _, line in self._series for p in line]
        if not points:
            return Text("no data yet", style="dim")
        y_values = [p[1] for p in points]
        x_values = [p[0] for p in points]
        top, bottom = self._y_format(_tick(max(y_values))), self._y_format(_tick(min(y_values)))
        axis_w = max(len(top), len(bottom)) + 1
        plot_w, plot_h = max(1, width - axis_w), max(1, height - 2)
        grid = rasterize([line for _, line in self._series], plot_w, plot_h)
        out = Text(no_wrap=True, overflow="crop")
        for index, (label, _) in enumerate(self._series):
            style = SERIES_STYLES[index % len(SERIES_STYLES)]
            out.append(f"━ {label}  ", style=style)
        out.append("\n")
        ends = self._end_marks(grid)
        for row_index, row in enumerate(grid):
            label = top if row_index == 0 else bottom if row_index == plot_h - 1 else ""
            out.append(label.rjust(axis_w - 1) + "┤", style="dim")
            for col_index, (bits, series_index) in enumerate(row):
                mark = ends.get((row_index, col_index))
                style = SERIES_STYLES[series_index % len(SERIES_STYLES)] if bits else ""
                out.append(mark or (chr(0x2800 + bits) if bits else " "), style=style)
            out.append("\n")
        left, right = axis_tick(_tick(min(x_values))), axis_tick(_tick(max(x_values)))
        middle = self._x_label.center(max(0, plot_w - len(left) - len(right)))
        out.append(" " * axis_w + left + middle + right, style="dim")
        return out

    def _end_marks(self, grid: list[list[tuple[int, int]]]) -> dict[tuple[int, int], str]:
        """Put each series' initial on its rightmost cell, for monochrome terminals."""
        marks: dict[tuple[int, int], str] = {}
        if len(self._series) < 2:
            return marks
        for index, (label, _) in enumerate(self._series):
            for col in range(len(grid[0]) - 1, -1, -1):
                rows = [r for r in range(len(grid)) if grid[r][col] == (grid[r][col][0], index)]
                rows = [r for r in rows if grid[r][col][0]]
                if rows:
                    marks[(rows[0], col)] = label[:1].upper()
                    break
        return marks
