"""Pure view-models of the terminal UI: store records in, display rows and series out.

Nothing here imports Textual or touches the database, so every figure the screens show
is tested on plain records. The live model keeps running totals: each refresh feeds it
only the new steps and samples.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import TypeVar

from greenprof import formatting as fmt
from greenprof import metrics
from greenprof.metrics import Forecast as Forecast  # noqa: PLC0414 (re-export)
from greenprof.records import DeviceInfo, RunInfo, SampleRecord, StepRecord, device_kind

_T = TypeVar("_T", int, float)

# History ---------------------------------------------------------------------------------

HISTORY_COLUMNS: tuple[str, ...] = (
    "id",
    "name",
    "status",
    "steps",
    "duration",
    "energy",
    "CO2e",
    "J/sample",
    "samples/kWh",
    "tags",
    "framework",
    "devices",
    "started",
)
"""Efficiency figures first, so they fit an 80-column terminal; the rest scrolls."""


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One run as a row of the history table (display strings plus sortable values)."""

    run_id: int
    cells: tuple[str, ...]
    sort_values: tuple[float | str, ...]
    search_text: str

    def matches(self, query: str) -> bool:
        """Whether every word of ``query`` occurs in the row (case-insensitive)."""
        return all(word in self.search_text for word in query.lower().split())


j_per_sample = metrics.run_j_per_sample
"""Whole-run energy per training sample (:mod:`greenprof.metrics`)."""
samples_per_kwh = metrics.run_samples_per_kwh
"""Training samples per kWh of run energy (:mod:`greenprof.metrics`)."""
forecast = metrics.forecast
"""The live forecast (:func:`greenprof.metrics.forecast`)."""


def devices_label(devices: Sequence[DeviceInfo]) -> str:
    """``gpu:0,gpu:1,cpu:0`` (``–`` when none are known)."""
    return ",".join(device.device for device in devices) or "–"


def history_row(run: RunInfo, *, zone: tzinfo | None = None) -> HistoryRow:
    """The history table's row for ``run`` (start time in ``zone``, default local)."""
    jps = j_per_sample(run)
    spk = samples_per_kwh(run)
    co2_g = run.co2_g
    tag_text = fmt.tags(run.tags)
    device_text = devices_label(run.devices)
    cells = (
        str(run.run_id),
        run.name,
        run.status,
        fmt.number(run.steps),
        fmt.duration(run.duration_s),
        fmt.energy_wh(run.energy_j),
        fmt.co2(co2_g),
        fmt.number(jps),
        fmt.number(spk),
        tag_text,
        run.framework or "–",
        device_text,
        fmt.timestamp(run.started_at, zone=zone),
    )
    missing = float("-inf")
    sort_values: tuple[float | str, ...] = (
        run.run_id,
        run.name.lower(),
        run.status,
        run.steps,
        run.duration_s,
        run.energy_j,
        missing if co2_g is None else co2_g,
        missing if jps is None else jps,
        missing if spk is None else spk,
        tag_text,
        run.framework,
        device_text,
        run.started_at,
    )
    search = " ".join((run.name, run.status, tag_text, run.framework, device_text)).lower()
    return HistoryRow(run.run_id, cells, sort_values, search)


def history_rows(
    runs: Iterable[RunInfo],
    *,
    query: str = "",
    sort_column: int = 0,
    reverse: bool = True,
    zone: tzinfo | None = None,
) -> list[HistoryRow]:
    """Rows for ``runs`` that match ``query``, sorted by column index ``sort_column``."""
    rows = [row for row in (history_row(run, zone=zone) for run in runs) if row.matches(query)]
    rows.sort(key=lambda row: (row.sort_values[sort_column], row.run_id), reverse=reverse)
    return rows


# Live ------------------------------------------------------------------------------------


def idle_energy_j(devices: Sequence[DeviceInfo], duration_s: float) -> float | None:
    """Energy the devices with a known idle baseline would use idling for ``duration_s``."""
    known = [device.idle_power_w for device in devices if device.idle_power_w is not None]
    if not known:
        return None
    return sum(known) * duration_s


@dataclass
class DeviceLive:
    """Latest state and recent power of one device."""

    info: DeviceInfo
    power_w: deque[float]
    utilization_pct: float | None = None
    memory_used_bytes: int | None = None
    temperature_c: float | None = None
    last_energy: tuple[float, float] | None = None
    """(time_s, cumulative energy_j) of the last sample, to derive power from counters."""

    @property
    def power_now_w(self) -> float | None:
        return self.power_w[-1] if self.power_w else None


@dataclass(frozen=True, slots=True)
class LiveView:
    """Everything the live screen shows, as display strings and chart series."""

    title: str
    simulated: bool
    totals: tuple[tuple[str, str], ...]
    devices: tuple[tuple[str, ...], ...]
    power_series_w: tuple[float, ...]
    step_energy_series_j: tuple[float, ...]
    forecast_line: str
    baseline_line: str
    notes: tuple[str, ...]


LIVE_DEVICE_COLUMNS = ("device", "method", "power", "util", "memory", "temp", "energy")


@dataclass
class LiveModel:
    """Running state of one watched run, fed incrementally.

    ``last_step`` and ``last_sample_s`` tell the next query where to start.
    """

    run: RunInfo
    window: int = 240
    steps_seen: int = 0
    step_energy_j: float = 0.0
    samples_seen: int = 0
    last_step: int | None = None
    last_sample_s: dict[str, float] = field(default_factory=dict)
    step_energies_j: deque[float] = field(init=False)
    step_ends_s: deque[float] = field(init=False)
    devices: dict[str, DeviceLive] = field(init=False)

    def __post_init__(self) -> None:
        self.step_energies_j = deque(maxlen=self.window)
        self.step_ends_s = deque(maxlen=self.window)
        self.devices = {}
        self.update_run(self.run)

    def update_run(self, run: RunInfo) -> None:
        """Take the run's latest row (status, whole-run totals, devices)."""
        self.run = run
        for info in run.devices:
            if info.device in self.devices:
                self.devices[info.device].info = info
            else:
                self.devices[info.device] = DeviceLive(info, deque(maxlen=self.window))

    def seed_totals(self, steps: int, step_energy_j: float, samples: int, last_step: int) -> None:
        """Start from aggregates of the rows already stored (attaching to a long run)."""
        self.steps_seen = steps
        self.step_energy_j = step_energy_j
        self.samples_seen = samples
        self.last_step = last_step if steps else None

    def add_steps(self, steps: Sequence[StepRecord]) -> None:
        """Fold new steps (in step order) into the running totals and series."""
        for record in steps:
            self.steps_seen += 1
            self.step_energy_j += record.energy_j
            self.samples_seen += record.samples or 0
            self.step_energies_j.append(record.energy_j)
            self.step_ends_s.append(record.end_s)
        if steps:
            self.last_step = steps[-1].step

    def add_samples(self, samples: Sequence[SampleRecord]) -> None:
        """Fold new sensor samples (time order) into per-device state and the power chart."""
        for sample in samples:
            live = self.devices.get(sample.device)
            if live is None:
                info = DeviceInfo(sample.device, device_kind(sample.device), "model")
                live = self.devices[sample.device] = DeviceLive(info, deque(maxlen=self.window))
            watts = sample.power_w
            if watts is None and sample.energy_j is not None and live.last_energy is not None:
                watts = metrics.power_from_energy_w(
                    live.last_energy, (sample.time_s, sample.energy_j)
                )
            if sample.energy_j is not None:
                live.last_energy = (sample.time_s, sample.energy_j)
            if watts is not None:
                live.power_w.append(watts)
            live.utilization_pct = _newer(sample.utilization_pct, live.utilization_pct)
            live.memory_used_bytes = _newer(sample.memory_used_bytes, live.memory_used_bytes)
            live.temperature_c = _newer(sample.temperature_c, live.temperature_c)
            self.last_sample_s[sample.device] = sample.time_s

    def total_power_series_w(self) -> list[float]:
        """Power of all devices together, over the recent samples.

        Devices are polled together, so their series are aligned from the newest sample.
        """
        series = [list(d.power_w) for d in self.devices.values() if d.power_w]
        if not series:
            return []
        length = min(len(values) for values in series)
        return [sum(values[len(values) - length + i] for values in series) for i in range(length)]

    def steps_per_s(self) -> float | None:
        """Recent training throughput from the last steps' end times."""
        if len(self.step_ends_s) < 2:
            return None
        span = self.step_ends_s[-1] - self.step_ends_s[0]
        return (len(self.step_ends_s) - 1) / span if span > 0 else None

    def view(self, device_energy_j: dict[str, float] | None = None) -> LiveView:
        """The screen's content now."""
        run = self.run
        energy_j = max(run.energy_j, self.step_energy_j)
        carbon = run.carbon
        mean_j = self.step_energy_j / self.steps_seen if self.steps_seen else None
        jps = metrics.j_per_sample(energy_j, self.samples_seen)  # run energy, as everywhere
        rate = self.steps_per_s()
        total_power = self.total_power_series_w()
        totals = (
            ("energy", fmt.energy_wh(energy_j)),
            (
                "carbon",
                "no intensity set" if carbon is None else f"{fmt.co2(carbon.co2_g(energy_j))} CO2e",
            ),
            ("duration", fmt.duration(run.duration_s)),
            ("steps", fmt.number(self.steps_seen)),
            ("steps/s", fmt.number(rate)),
            ("J/step", fmt.number(mean_j)),
            ("J/sample", fmt.number(jps)),
            ("power", fmt.power(total_power[-1] if total_power else None)),
        )
        energies = device_energy_j or {}
        devices = tuple(
            (
                name,
                live.info.method,
                fmt.power(live.power_now_w),
                fmt.percent(live.utilization_pct).replace(" ", ""),
                fmt.memory(live.memory_used_bytes),
                "–" if live.temperature_c is None else f"{live.temperature_c:.0f}°C",
                fmt.energy(energies.get(name)),
            )
            for name, live in sorted(self.devices.items())
        )
        simulated = any(d.info.method == "simulated" for d in self.devices.values())
        status = run.status.upper()
        title = f"{run.name}  #{run.run_id}  {status}"
        return LiveView(
            title=title,
            simulated=simulated,
            totals=totals,
            devices=devices,
            power_series_w=tuple(total_power),
            step_energy_series_j=tuple(self.step_energies_j),
            forecast_line=self._forecast_line(energy_j),
            baseline_line=self._baseline_line(energy_j),
            notes=tuple(d.info.note for d in self.devices.values() if d.info.note),
        )

    def _forecast_line(self, energy_j: float) -> str:
        run = self.run
        projected = forecast(
            expected_steps=run.expected_steps,
            steps_done=self.steps_seen,
            step_energy_j=self.step_energy_j,
            run_energy_j=energy_j,
            duration_s=run.duration_s,
            carbon=run.carbon,
        )
        if projected is None:
            return "forecast: the run did not declare its length (expected_steps)"
        carbon = "" if projected.co2_g is None else f", {fmt.co2(projected.co2_g)} CO2e"
        if projected.overrun:
            return (
                f"past the planned {fmt.number(projected.expected_steps)} steps "
                f"(step {fmt.number(projected.steps_done)}): "
                f"{fmt.energy_wh(projected.energy_j)}{carbon} so far; end unknown"
            )
        return (
            f"forecast at step {fmt.number(projected.expected_steps)}: "
            f"{fmt.energy_wh(projected.energy_j)}{carbon}; "
            f"{projected.progress:.0%} done, {fmt.duration(projected.remaining_s)} left"
        )

    def _baseline_line(self, energy_j: float) -> str:
        idle_j = idle_energy_j(self.run.devices, self.run.duration_s)
        if idle_j is None:
            return "idle baseline: unknown"
        idle_w = sum(d.idle_power_w or 0.0 for d in self.run.devices)
        above = max(0.0, energy_j - idle_j)
        return f"idle baseline {fmt.power(idle_w)}: {fmt.energy_wh(above)} above idle"


def _newer(value: _T | None, previous: _T | None) -> _T | None:
    return previous if value is None else value
