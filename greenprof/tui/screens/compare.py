"""The compare screen (``greenprof compare RUN RUN ...``): runs side by side.

Totals, J/step and J/sample distributions, samples per kWh, time, carbon and per-device
shares, each with its percent difference from the first run; a verdict line; the
cumulative-energy curves overlaid; energy to reach a loss when steps logged one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Input, Static

from greenprof.errors import StoreError
from greenprof.tui import format as fmt
from greenprof.tui.comparison import Comparison, RunSummary, compare, summarize
from greenprof.tui.queries import step_digest
from greenprof.tui.screens.base import StoreScreen
from greenprof.tui.text import plain, plain_lines
from greenprof.tui.widgets.chart import LineChart

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def load_summaries(screen: StoreScreen, refs: Sequence[str]) -> list[RunSummary]:
    """Summaries of the runs ``refs`` (ids or names), in the given order."""
    store = screen.store
    summaries = []
    for ref in refs:
        run = store.run(ref)
        digest = step_digest(store, run.run_id)
        summaries.append(summarize(run, digest, store.device_energy_j(run.run_id)))
    return summaries


class CompareScreen(StoreScreen):
    """Two or more runs side by side, with percent differences and a verdict."""

    HELP = """\
[b]Compare runs[/b]
  l        set the loss target for "energy to loss ≤ target"
  escape   back
Δ columns are percent differences from run A. J/step and J/sample show the median and
the 90th percentile over steps; "J/sample (run)" is whole-run energy over all samples.
The verdict compares whole-run J/sample (J/step median when samples were not counted).
The chart overlays cumulative step energy against step number."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "loss_target", "Loss target"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, db_path: Path, refs: Sequence[str]) -> None:
        super().__init__(db_path)
        self.refs = list(refs)
        self.summaries: list[RunSummary] = []
        self.comparison: Comparison | None = None

    def compose(self) -> ComposeResult:
        yield Input(placeholder="loss target, e.g. 0.5 (enter to apply)", id="compare-loss")
        with VerticalScroll(id="compare-body"):
            yield Static("comparing…", id="compare-verdict")
            yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
            yield Static("cumulative energy (J) vs step", classes="chart-label")
            yield LineChart(id="compare-chart", y_format=fmt.number, x_label="step")
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
        with contextlib.suppress(RuntimeError):
            self.app.call_from_thread(self._loaded, result)

    def _loaded(self, result: list[RunSummary] | str) -> None:
        if isinstance(result, str):
            self.query_one("#compare-verdict", Static).update(plain(result))
            return
        self.summaries = result
        self.show(compare(result))
        chart = self.query_one("#compare-chart", LineChart)
        chart.set_series(
            [(f"{LETTERS[i % 26]} {s.label}", s.curve) for i, s in enumerate(self.summaries)]
        )

    def show(self, comparison: Comparison) -> None:
        """Render a comparison."""
        self.comparison = comparison
        verdict = plain_lines((f"▶ {line}" for line in comparison.verdicts), style="bold")
        if comparison.note:
            verdict.append("\n")
            verdict.append_text(plain(comparison.note, style="dim"))
        self.query_one("#compare-verdict", Static).update(verdict)
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
                cells.append(plain(value))
                if index:
                    cells.append(plain(row.deltas[index]))
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
        if self.summaries:
            self.show(compare(self.summaries, loss_target=target))
