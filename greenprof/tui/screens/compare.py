"""The compare screen (``greenprof compare RUN RUN ...``): runs side by side.

Totals, J/step and J/sample distributions, samples per kWh, time, carbon and per-device
shares, each with its percent difference from the first run (green where the run does
better than A, red where worse); a verdict on the metric the user chose (energy to the
loss target once set) that names it; caveats for failed or partial runs; the
cumulative-energy curves overlaid against samples, time or step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Input, Static

from greenprof import formatting
from greenprof.errors import StoreError
from greenprof.tui import plain as plain_views
from greenprof.tui.comparison import (
    AXES,
    LETTERS,
    VERDICT_METRICS,
    Axis,
    Comparison,
    RunSummary,
    VerdictMetric,
    compare,
    curve_points,
)
from greenprof.tui.screens.base import StoreRef, StoreScreen
from greenprof.tui.text import plain, plain_lines
from greenprof.tui.widgets.chart import LineChart

AXIS_LABELS: dict[Axis, str] = {"samples": "samples", "time": "time (s)", "step": "step"}
JUDGEMENT_STYLES = {"better": "green", "worse": "red", "": ""}


def load_summaries(screen: StoreScreen, refs: Sequence[str]) -> list[RunSummary]:
    """Summaries of the runs ``refs`` (ids or names), in the given order: the one loader
    of the screen and of ``compare`` on a pipe (:func:`greenprof.tui.plain.load_summaries`)."""
    return plain_views.load_summaries(screen.store, refs)


class CompareScreen(StoreScreen):
    """Two or more runs side by side, with percent differences and a verdict."""

    HELP = """\
[b]Compare runs[/b]
  l        set the loss target for "energy to loss ≤ target" (the verdict then uses it)
  v        verdict metric: J/sample (run), J/step median, energy to the loss target
  x        chart x-axis: samples, time, step
  escape   back
Δ columns are percent differences from run A: green where the run does better than A,
red where worse. J/step and J/sample show the median and the 90th percentile over steps;
"J/sample (run)" is whole-run energy over all samples (energy between steps included,
which is why it can disagree with the medians). The verdict names the metric it ranks
by. The chart overlays cumulative step energy against samples trained (runs of
different batch sizes line up on the work done), time, or step number."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "loss_target", "Loss target"),
        Binding("v", "verdict_metric", "Verdict by"),
        Binding("x", "x_axis", "X-axis"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, location: StoreRef, refs: Sequence[str]) -> None:
        super().__init__(location)
        self.refs = list(refs)
        self.summaries: list[RunSummary] = []
        self.comparison: Comparison | None = None
        self.loss_target: float | None = None
        """The user's loss target (None until set with ``l``)."""
        self.verdict_by: VerdictMetric | None = None
        """The user's verdict metric (None: the default rule of the comparison)."""
        self.axis: Axis = "samples"

    def compose(self) -> ComposeResult:
        yield Input(placeholder="loss target, e.g. 0.5 (enter to apply)", id="compare-loss")
        with VerticalScroll(id="compare-body"):
            yield Static("comparing…", id="compare-verdict")
            yield Static("", id="compare-caveats")
            yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="compare-medians")
            yield Static("", id="compare-chart-label", classes="chart-label")
            yield LineChart(id="compare-chart", y_format=formatting.axis_tick, x_label="samples")
        yield Footer()

    def on_mount(self) -> None:
        """Load the runs in a worker thread."""
        self.query_one("#compare-loss").display = False
        self.query_one("#compare-table").focus()  # not the hidden loss prompt
        self.load()

    @work(thread=True, exclusive=True)
    def load(self) -> None:
        """Read each run's step digest (few rows even for long runs) and summarise."""
        try:
            with self.store_lock:
                result: list[RunSummary] | str = load_summaries(self, self.refs)
        except StoreError as exc:
            result = str(exc)
        self.deliver(self._loaded, result)

    def _loaded(self, result: list[RunSummary] | str) -> None:
        if isinstance(result, str):
            self.query_one("#compare-verdict", Static).update(plain(result))
            return
        self.summaries = result
        self.refresh_comparison()
        self.draw_chart()

    def refresh_comparison(self) -> None:
        """Recompute the comparison with the user's loss target and verdict metric."""
        if self.summaries:
            self.show(compare(self.summaries, self.loss_target, self.verdict_by))

    def draw_chart(self) -> None:
        """Plot each run's cumulative energy against the chosen x-axis."""
        label = AXIS_LABELS[self.axis]
        self.query_one("#compare-chart-label", Static).update(
            f"cumulative energy (J) vs {label}   (x: switch to "
            f"{AXIS_LABELS[AXES[(AXES.index(self.axis) + 1) % len(AXES)]]})"
        )
        chart = self.query_one("#compare-chart", LineChart)
        chart.set_x_label(label)
        chart.set_series(
            [
                (f"{LETTERS[i % 26]} {s.label}", curve_points(s, self.axis))
                for i, s in enumerate(self.summaries)
            ]
        )

    def show(self, comparison: Comparison) -> None:
        """Render a comparison."""
        self.comparison = comparison
        verdict = Text(end="")
        if comparison.verdict_metric:
            verdict.append(f"verdict by {comparison.verdict_metric}  (v: change)\n", style="dim")
        verdict.append_text(
            plain_lines((f"▶ {line}" for line in comparison.verdicts), style="bold")
        )
        if comparison.note:
            verdict.append("\n")
            verdict.append_text(plain(comparison.note, style="dim"))
        self.query_one("#compare-verdict", Static).update(verdict)
        caveats = self.query_one("#compare-caveats", Static)
        caveats.display = bool(comparison.caveats)
        caveats.update(plain_lines((f"⚠ {line}" for line in comparison.caveats), style="yellow"))
        self.query_one("#compare-medians", Static).update(plain(comparison.medians_note))
        table = self.query_one("#compare-table", DataTable)
        table.clear(columns=True)
        table.add_column("metric")
        for index, label in enumerate(comparison.labels):
            letter = LETTERS[index % 26]
            table.add_column(plain(f"{letter} {label}"))
            if index:
                table.add_column(f"Δ{letter} vs A")
        for row in comparison.rows:
            cells: list[Text] = [plain(row.metric)]
            for index, value in enumerate(row.values):
                style = JUDGEMENT_STYLES[row.judgement(index)]
                cells.append(plain(value, style=style))
                if index:
                    cells.append(plain(row.deltas[index], style=style))
            table.add_row(*cells)

    def action_loss_target(self) -> None:
        """Ask for the loss target."""
        box = self.query_one("#compare-loss", Input)
        box.display = True
        if self.comparison is not None and self.comparison.loss_target is not None:
            box.value = f"{self.comparison.loss_target:g}"
        box.focus()

    async def action_back(self) -> None:
        """Close the loss prompt, else go back."""
        box = self.query_one("#compare-loss", Input)
        if box.display:
            box.display = False
            self.query_one("#compare-table").focus()
        else:
            await self.app.action_back()

    @on(Input.Submitted, "#compare-loss")
    def _loss_submitted(self, event: Input.Submitted) -> None:
        try:
            target = float(event.value)
        except ValueError:
            self.notify(f"not a number: {event.value!r}", severity="error", markup=False)
            return
        event.input.display = False
        self.query_one("#compare-table").focus()
        self.loss_target = target
        self.verdict_by = "loss"  # the user just chose it: the verdict follows
        self.refresh_comparison()

    def action_verdict_metric(self) -> None:
        """Rank by the next metric (energy to the loss target only once one is set)."""
        choices = [m for m in VERDICT_METRICS if m != "loss" or self.loss_target is not None]
        current = self.verdict_by
        if current is None and self.comparison is not None:
            current = "loss" if self.loss_target is not None else "sample"
        index = choices.index(current) if current in choices else -1
        self.verdict_by = choices[(index + 1) % len(choices)]
        self.refresh_comparison()

    def action_x_axis(self) -> None:
        """Plot against the next x-axis (samples, time, step)."""
        self.axis = AXES[(AXES.index(self.axis) + 1) % len(AXES)]
        self.draw_chart()
