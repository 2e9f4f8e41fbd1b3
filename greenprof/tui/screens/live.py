"""The live screen (``greenprof top``): one run's power, energy per step, totals, forecast.

A thread worker polls the store about once a second for the rows added since the last
poll (``after_step`` / ``after_s``) and folds them into a :class:`LiveModel`; the UI
thread only receives finished :class:`LiveView` snapshots. Before the store exists (a
first training run not started yet) the screen waits for it and says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Sparkline, Static

from greenprof import formatting as fmt
from greenprof.errors import StoreError
from greenprof.records import RunInfo
from greenprof.textsafe import terminal_text
from greenprof.tui.live_model import LIVE_DEVICE_COLUMNS, LiveModel, LiveView
from greenprof.tui.screens.base import StoreRef, StoreScreen
from greenprof.tui.text import plain, plain_lines
from greenprof.tui.widgets.power_chart import PowerChart

SAMPLE_BACKFILL_S = 60.0
EMPTY_TEXT = (
    "No runs yet in {path}.\n\nRun `greenprof demo` to create one (or `greenprof top --demo` "
    "to watch a simulated run), then `greenprof top` to watch it here."
)
WAITING_TEXT = (
    "Waiting for the first run: no greenprof database at {path} yet.\n\n"
    "Start a training run with greenprof (or `greenprof demo`) and it appears here; "
    "this screen checks every {refresh}. Press q to quit."
)
STATE_STYLES = {"running": "green", "setup": "cyan", "paused": "bold yellow", "ended": "bold"}


class LiveScreen(StoreScreen):
    """Watch one run as it trains; ``n`` switches between running runs.

    Without an explicit run it watches the newest running run and follows the next one
    when it ends (as ``greenprof top`` in a second terminal should).
    """

    HELP = """\
[b]Live run[/b]  (refreshes about once a second, reading only new rows)
  n        next running run (newest first)
  p        pause / resume refreshing
  h        history of all runs
Totals count every device of the run. J/sample is the run's energy (between steps too)
over its samples, as everywhere in greenprof; J/step is the mean energy inside a step;
steps/s is over the last steps; ± after the last step's energy is its error bound
(>= 95 %). The forecast projects the run's energy to its declared
length (expected_steps, or an `epochs` tag times the steps of a finished epoch) from
the mean J/step so far; past the plan it says so instead of projecting. The power chart
has one band per device, each on its own scale from 0 W. PAUSED: no new step for a
while (20 s or 10 mean steps); ENDED: the run finished, failed or was interrupted."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "next_run", "Next run"),
        Binding("p", "toggle_pause", "Pause"),
    ]

    def __init__(
        self,
        location: StoreRef,
        run_id: int | None = None,
        *,
        refresh_s: float = 1.0,
        banner: str | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(location)
        self.wall_clock = wall_clock
        self.run_id = run_id
        self.follow = run_id is None
        """Without an explicit run, move on to the newest running run when this one ends."""
        self.refresh_s = refresh_s
        self.banner = banner
        self.model: LiveModel | None = None
        self.paused = False
        self.polls = 0
        self._poll_lock = threading.Lock()
        self._switch_to: int | None = None

    def compose(self) -> ComposeResult:
        yield Static(self.banner or "", id="live-banner", classes="banner")
        yield Static("waiting for data…", id="live-title")
        with Horizontal(id="live-top"):
            yield Static("", id="live-totals")
            yield DataTable(id="live-devices", cursor_type="none", show_cursor=False)
        yield Static("", id="live-forecast")
        yield Static("", id="live-baseline")
        yield Static("power per device", id="live-power-label", classes="chart-label")
        yield PowerChart(id="live-power")
        yield Static("energy per step (J)", id="live-steps-label", classes="chart-label")
        yield Sparkline([], id="live-steps")
        yield Footer()

    def on_mount(self) -> None:
        """Start polling."""
        self.query_one("#live-banner").display = self.banner is not None
        table = self.query_one("#live-devices", DataTable)
        table.add_columns(*LIVE_DEVICE_COLUMNS)
        self.poll()
        self.set_interval(self.refresh_s, self.poll)

    def action_toggle_pause(self) -> None:
        """Stop or resume refreshing."""
        self.paused = not self.paused
        self.notify("paused" if self.paused else "resumed", timeout=1.5)

    def action_next_run(self) -> None:
        """Watch the next running run."""
        self._switch_to = -1
        self.poll()

    @work(thread=True, group="live-poll")
    def poll(self) -> None:
        """Read the new rows (worker thread) and hand a snapshot to the UI thread."""
        if self.paused or not self._poll_lock.acquire(blocking=False):
            return  # the previous poll is still running: skip this tick
        try:
            with self.store_lock:
                view: LiveView | str | None = self._poll_once()
        except StoreError as exc:
            view = self._waiting_text() or f"cannot read {self.location.display}: {exc}"
        finally:
            self._poll_lock.release()
        self.polls += 1
        self.deliver(self._show, view)

    def _waiting_text(self) -> str | None:
        """The waiting message when the store is a SQLite file that does not exist yet."""
        location = self.location
        if location.kind != "sqlite" or self._store is not None or Path(location.target).exists():
            return None
        return WAITING_TEXT.format(path=location.display, refresh=fmt.duration(self.refresh_s))

    def _choose_run(self) -> RunInfo | None:
        store = self.store
        if self._switch_to is not None and self.model is not None:
            self._switch_to = None
            candidates = store.runs(status="running") or store.runs(limit=20)
            ids = [run.run_id for run in candidates]
            current = self.model.run.run_id
            if not ids:
                return None
            index = (ids.index(current) + 1) % len(ids) if current in ids else 0
            return candidates[index]
        if self.run_id is not None:
            return store.run(self.run_id)
        running = store.runs(status="running", limit=1)
        if running:
            return running[0]
        newest = store.runs(limit=1)
        return newest[0] if newest else None

    def _start_watching(self, run: RunInfo) -> LiveModel:
        """Start watching ``run``: totals of the stored steps, then the recent tail."""
        store = self.store
        model = LiveModel(run)
        aggregate = store.step_aggregate(run.run_id)
        tail = store.steps(run.run_id, after_step=aggregate.last_step - model.window)
        model.seed_totals(
            aggregate.steps - len(tail),
            aggregate.energy_j - sum(s.energy_j for s in tail),
            aggregate.samples - sum(s.samples or 0 for s in tail),
            last_step=tail[0].step - 1 if tail else aggregate.last_step,
        )
        if run.tags.get("epochs"):
            model.seed_epochs({e.epoch: e.steps for e in store.epochs(run.run_id)})
            for record in tail:  # the tail is counted again by add_steps
                model.epoch_steps[record.epoch] = model.epoch_steps.get(record.epoch, 0) - 1
        model.add_steps(tail)
        for device in run.devices:
            last = store.last_sample_time_s(run.run_id, device.device)
            if last is not None:
                model.last_sample_s[device.device] = last - SAMPLE_BACKFILL_S
        self.run_id = run.run_id
        return model

    def _poll_once(self) -> LiveView | None:
        store = self.store
        model = self.model
        if model is None or self._switch_to is not None:
            run = self._choose_run()
            if run is None:
                return None
            if model is None or run.run_id != model.run.run_id:
                model = self.model = self._start_watching(run)
        else:
            model.update_run(store.run(model.run.run_id))
            if self.follow and model.run.status != "running":
                running = store.runs(status="running", limit=1)
                if running and running[0].run_id != model.run.run_id:
                    model = self.model = self._start_watching(running[0])
        run_id = model.run.run_id
        model.add_steps(store.steps(run_id, after_step=model.last_step))
        for device in list(model.devices):
            model.add_samples(
                store.samples(run_id, device=device, after_s=model.last_sample_s.get(device))
            )
        return model.view(store.device_energy_j(run_id), now_at=self.wall_clock())

    def _show(self, view: LiveView | str | None) -> None:
        title = self.query_one("#live-title", Static)
        if view is None or isinstance(view, str):
            text = view or EMPTY_TEXT.format(path=self.location.display)
            title.update(plain_lines(text.split("\n")))
            title.add_class("empty")
            return
        title.remove_class("empty")
        heading = plain(view.title, style="bold")
        if view.simulated:
            heading.append("  ")
            heading.append(" SIMULATED — not a measurement ", style="reverse")
        if view.state_line:
            heading.append("  ")
            heading.append_text(plain(view.state_line, style=STATE_STYLES.get(view.state, "")))
        title.update(heading)
        totals = Text(end="")
        for index, (name, value) in enumerate(view.totals):
            totals.append(("\n" if index else "") + f"{terminal_text(name):>9} ")
            totals.append_text(plain(value, style="bold"))
        self.query_one("#live-totals", Static).update(totals)
        table = self.query_one("#live-devices", DataTable)
        table.clear()
        for row in view.devices:
            table.add_row(*(plain(cell) for cell in row))
        self.query_one("#live-forecast", Static).update(plain(view.forecast_line))
        self.query_one("#live-baseline", Static).update(plain(view.baseline_line))
        power = view.power_series_w
        power_text = (
            ""
            if not power
            else f": all devices {fmt.power(power[-1])} (max {fmt.power(max(power))})"
        )
        self.query_one("#live-power-label", Static).update(f"power per device{power_text}")
        self.query_one("#live-power", PowerChart).set_bands(view.power_bands)
        steps = view.step_energy_series_j
        bound_j = view.last_step_bound_j
        bound = "" if bound_j is None else f" ± {fmt.energy(bound_j)}"
        steps_text = (
            ""
            if not steps
            else f"  last {fmt.energy(steps[-1])}{bound}, max {fmt.energy(max(steps))}"
        )
        self.query_one("#live-steps-label", Static).update(f"energy per step{steps_text}")
        self.query_one("#live-steps", Sparkline).data = list(steps)
