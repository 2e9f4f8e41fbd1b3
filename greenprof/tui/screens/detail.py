"""One run in detail: settings, carbon source, per-device breakdown, per-epoch table.

Step energies carry their error bound (``± x``, >= 95 %) where the store has the steps'
bounds: the run's step total and each epoch's are window bounds
(:mod:`greenprof.step_windows`: shared step boundaries cancel), not sums of the steps'
bounds. They take one pass over the steps, so they come after the rest of the screen.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Static
from textual.widgets.data_table import ColumnKey

from greenprof import formatting as fmt
from greenprof.errors import StoreError
from greenprof.metrics import j_per_sample, run_j_per_sample, run_samples_per_kwh
from greenprof.records import EpochRecord, RunInfo
from greenprof.step_windows import StepWindowBounds, step_window_bounds
from greenprof.summary import plus_minus
from greenprof.tui.screens.base import StoreRef, StoreScreen
from greenprof.tui.text import plain, plain_lines


def run_summary_text(run: RunInfo, bounds: StepWindowBounds | None = None) -> Text:
    """The run's settings and totals as display lines (literal text, never markup);
    ``bounds``: the step energy's error bound, stated beside it once known."""
    carbon = run.carbon
    if carbon is None:
        carbon_line = "carbon: no grid intensity recorded"
    else:
        place = carbon.region or carbon.country or "unknown location"
        carbon_line = (
            f"carbon: {fmt.co2(run.co2_g)} CO2e = {fmt.energy_wh(run.energy_j)}"
            f" × PUE {carbon.pue:g}"
            f" × {carbon.intensity_g_per_kwh:g} g/kWh ({place}); source: {carbon.source or '–'}"
        )
    lines = [
        f"{run.name}  #{run.run_id}  {run.status}   started {fmt.timestamp(run.started_at)}",
        f"host {run.host} pid {run.pid}"
        + ("" if run.rank is None else f" rank {run.rank}")
        + f"  framework {run.framework or '–'}  tags {fmt.tags(run.tags) or '–'}",
        f"energy {fmt.energy_wh(run.energy_j)}, in steps "
        f"{fmt.energy_wh(run.step_energy_j)}{_bound(bounds, None)}"
        f"  duration {fmt.duration(run.duration_s)}  "
        f"steps {fmt.number(run.steps)}"
        + ("" if run.expected_steps is None else f" of {fmt.number(run.expected_steps)}"),
        phase_line(run),
        f"J/sample {fmt.number(run_j_per_sample(run))}  "
        f"samples/kWh {fmt.number(run_samples_per_kwh(run))}",
        carbon_line,
    ]
    if run.error:
        lines.append(f"error: {run.error}")
    return plain_lines(lines)


def _bound(bounds: StepWindowBounds | None, epoch: int | None) -> str:
    """`` ± x`` for the run's steps (``epoch`` None) or one epoch's; nothing before the
    bounds are read or for a run without steps."""
    if bounds is None:
        return ""
    if epoch is None:
        return plus_minus(bounds.run_j) if bounds.run_j is not None or bounds.epoch_j else ""
    return plus_minus(bounds.epoch_j.get(epoch)) if epoch in bounds.epoch_j else ""


def phase_line(run: RunInfo) -> str:
    """Where the run's energy went besides its steps: the setup before the first step
    (imports, data, compilation) and the rest between steps (loading, evaluation,
    checkpoints). Both are in the run's energy and its J/sample, not in J/step."""
    outside_j = max(0.0, run.energy_j - run.step_energy_j - run.setup_energy_j)
    share = (
        "" if run.energy_j <= 0 else f" ({fmt.percent(100 * outside_j / run.energy_j)} of the run)"
    )
    return (
        f"setup {fmt.duration(run.setup_s)}, {fmt.energy_wh(run.setup_energy_j)} before the "
        f"first step; between steps {fmt.energy_wh(outside_j)}{share}"
    )


class RunDetailScreen(StoreScreen):
    """Per-epoch and per-device breakdown of one run."""

    HELP = """\
[b]Run details[/b]
  escape   back to the list
Device energy is each device's whole-run energy; 'share' is its fraction of the run.
Epoch rows are sums of that epoch's steps. Setup is the time and energy before the first
step; "between steps" is the rest of the run's energy outside steps (data loading,
evaluation, checkpoints). ± is the error bound of a step energy (>= 95 %): of the sum,
not the sum of the steps' bounds; n/a where a step's is not known (recovered steps)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.back", "Back")]

    def __init__(self, location: StoreRef, run_id: int) -> None:
        super().__init__(location)
        self.run_id = run_id
        self._run: RunInfo | None = None
        self._energy_column: ColumnKey | str = "energy"

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("loading…", id="detail-summary")
            yield Static("[b]devices[/b]", classes="section")
            yield DataTable(id="detail-devices", cursor_type="none")
            yield Static("[b]epochs[/b]", classes="section")
            yield DataTable(id="detail-epochs", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        """Load in a worker thread."""
        self.query_one("#detail-devices", DataTable).add_columns(
            "device", "kind", "method", "name", "energy", "share", "idle", "note"
        )
        columns = self.query_one("#detail-epochs", DataTable).add_columns(
            "epoch", "steps", "duration", "samples", "energy", "J/sample"
        )
        self._energy_column = columns[4]
        self.load()

    @work(thread=True, exclusive=True)
    def load(self) -> None:
        """Read the run, its device energies and its epochs."""
        try:
            with self.store_lock:
                run = self.store.run(self.run_id)
                payload: tuple[RunInfo, dict[str, float], list[EpochRecord]] | str = (
                    run,
                    self.store.device_energy_j(self.run_id),
                    self.store.epochs(self.run_id),
                )
        except StoreError as exc:
            payload = str(exc)
        self.deliver(self._show, payload)
        if isinstance(payload, str) or not payload[0].steps:
            return
        try:
            with self.store_lock:
                bounds = step_window_bounds(self.store.iter_step_bounds(self.run_id))
        except StoreError:
            return  # the energies stand without their bounds
        self.deliver(self._show_bounds, bounds)

    def _show_bounds(self, bounds: StepWindowBounds) -> None:
        """State the step energies' error bounds beside them."""
        if self._run is not None:
            self.query_one("#detail-summary", Static).update(run_summary_text(self._run, bounds))
        table = self.query_one("#detail-epochs", DataTable)
        for row_key in table.rows:
            epoch = int(str(row_key.value))
            energy = table.get_cell(row_key, self._energy_column)
            table.update_cell(row_key, self._energy_column, f"{energy}{_bound(bounds, epoch)}")

    def _show(self, payload: tuple[RunInfo, dict[str, float], list[EpochRecord]] | str) -> None:
        summary = self.query_one("#detail-summary", Static)
        if isinstance(payload, str):
            summary.update(plain(payload))
            return
        run, energies, epochs = payload
        self._run = run
        summary.update(run_summary_text(run))
        devices = self.query_one("#detail-devices", DataTable)
        total = sum(energies.values())
        for info in run.devices:
            energy_j = energies.get(info.device, 0.0)
            devices.add_row(
                plain(info.device),
                plain(info.kind),
                plain(info.method),
                plain(info.name or "–"),
                fmt.energy_wh(energy_j),
                fmt.percent(100 * energy_j / total) if total > 0 else fmt.MISSING,
                fmt.power(info.idle_power_w),
                plain(info.note or ""),
            )
        table = self.query_one("#detail-epochs", DataTable)
        for epoch in epochs:
            table.add_row(
                str(epoch.epoch),
                fmt.number(epoch.steps),
                fmt.duration(epoch.duration_s),
                fmt.number(epoch.samples),
                fmt.energy_wh(epoch.energy_j),
                fmt.number(j_per_sample(epoch.energy_j, epoch.samples)),
                key=str(epoch.epoch),
            )
