"""Pure model of the live screen (``greenprof top``): one watched run, fed incrementally.

Each refresh feeds :class:`LiveModel` only the new steps and samples; :meth:`LiveModel.view`
turns its running totals into a :class:`LiveView` of display strings and chart series.
The wall clock is an argument (``now_at``), so "how long ago", "paused" and "ended"
are tested with any time, and the screen's "now" keeps moving after the run ends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from greenprof import formatting as fmt
from greenprof import metrics
from greenprof.records import DeviceInfo, RunInfo, SampleRecord, StepRecord, device_kind

_T = TypeVar("_T", int, float)

Point = tuple[float, float]
LiveState = Literal["setup", "running", "paused", "ended"]

PAUSE_MIN_S = 20.0
"""A running run is *paused* after this long without a new step ..."""
PAUSE_STEPS = 10.0
"""... or this many of its mean step times, whichever is longer (slow steps are not
pauses)."""
EPOCHS_TAG = "epochs"
"""A run that declares its length in epochs (tag ``epochs=N``) gets an ETA from them."""

LIVE_DEVICE_COLUMNS = ("device", "power", "energy", "util", "memory", "temp", "method")
"""Power and energy first: at 80 columns the table keeps them and cuts the method."""


def declared_epochs(run: RunInfo) -> int | None:
    """The run's declared epoch count (tag ``epochs``: ``3`` or ``"3"``), if positive."""
    value = run.tags.get(EPOCHS_TAG)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = int(value) if value.isdigit() else 0
    elif isinstance(value, float):
        value = int(value) if value.is_integer() else 0
    return value if value > 0 else None


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
    power_times_s: deque[float] = field(default_factory=deque)
    """When each ``power_w`` value was read (seconds since the run started)."""

    @property
    def power_now_w(self) -> float | None:
        return self.power_w[-1] if self.power_w else None

    def power_points(self) -> tuple[Point, ...]:
        """(seconds since start, watts) of the recent readings."""
        return tuple(zip(self.power_times_s, self.power_w, strict=False))


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
    power_bands: tuple[tuple[str, tuple[Point, ...]], ...] = ()
    """Per device: (device, ((seconds since start, watts), ...)), for the power chart."""
    state: LiveState = "running"
    state_line: str = ""
    """What the run is doing now: running, paused since when, or ended how long ago."""
    last_step_bound_j: float | None = None
    """The error bound (>= 95 %) of the last step's energy; None where not stored."""


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
    last_step_end_s: float | None = None
    last_sample_s: dict[str, float] = field(default_factory=dict)
    epoch_steps: dict[int, int] = field(default_factory=dict)
    """Steps counted per epoch number (for an ETA from a declared epoch count)."""
    last_step_bound_j: float | None = None
    """The last step's error bound (None: not stored, e.g. a recovered step)."""
    step_energies_j: deque[float] = field(init=False)
    step_ends_s: deque[float] = field(init=False)
    devices: dict[str, DeviceLive] = field(init=False)

    def __post_init__(self) -> None:
        self.step_energies_j = deque(maxlen=self.window)
        self.step_ends_s = deque(maxlen=self.window)
        self.devices = {}
        self.update_run(self.run)

    def _device(self, info: DeviceInfo) -> DeviceLive:
        return DeviceLive(info, deque(maxlen=self.window), power_times_s=deque(maxlen=self.window))

    def update_run(self, run: RunInfo) -> None:
        """Take the run's latest row (status, whole-run totals, devices)."""
        self.run = run
        for info in run.devices:
            if info.device in self.devices:
                self.devices[info.device].info = info
            else:
                self.devices[info.device] = self._device(info)

    def seed_totals(self, steps: int, step_energy_j: float, samples: int, last_step: int) -> None:
        """Start from aggregates of the rows already stored (attaching to a long run)."""
        self.steps_seen = steps
        self.step_energy_j = step_energy_j
        self.samples_seen = samples
        self.last_step = last_step if steps else None

    def seed_epochs(self, epoch_steps: dict[int, int]) -> None:
        """Steps per epoch of the rows already stored (before the tail is added)."""
        self.epoch_steps = dict(epoch_steps)

    def add_steps(self, steps: Sequence[StepRecord]) -> None:
        """Fold new steps (in step order) into the running totals and series."""
        for record in steps:
            self.steps_seen += 1
            self.step_energy_j += record.energy_j
            self.samples_seen += record.samples or 0
            self.step_energies_j.append(record.energy_j)
            self.step_ends_s.append(record.end_s)
            self.epoch_steps[record.epoch] = self.epoch_steps.get(record.epoch, 0) + 1
        if steps:
            self.last_step = steps[-1].step
            self.last_step_end_s = steps[-1].end_s
            self.last_step_bound_j = steps[-1].energy_uncertainty_j

    def add_samples(self, samples: Sequence[SampleRecord]) -> None:
        """Fold new sensor samples (time order) into per-device state and the power chart."""
        for sample in samples:
            live = self.devices.get(sample.device)
            if live is None:
                info = DeviceInfo(sample.device, device_kind(sample.device), "model")
                live = self.devices[sample.device] = self._device(info)
            watts = sample.power_w
            if watts is None and sample.energy_j is not None and live.last_energy is not None:
                watts = metrics.power_from_energy_w(
                    live.last_energy, (sample.time_s, sample.energy_j)
                )
            if sample.energy_j is not None:
                live.last_energy = (sample.time_s, sample.energy_j)
            if watts is not None:
                live.power_w.append(watts)
                live.power_times_s.append(sample.time_s)
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

    def elapsed_s(self, now_at: float | None) -> float:
        """How long the run has been going: to ``now_at`` while it runs (the stored
        duration lags by a flush), its stored duration once it ended."""
        run = self.run
        if run.status != "running" or now_at is None:
            return run.duration_s
        return max(run.duration_s, now_at - run.started_at)

    def state(self, now_at: float | None) -> tuple[LiveState, str]:
        """The run's state now and the line that says it."""
        run = self.run
        if run.status != "running":
            ended_at = run.ended_at if run.ended_at is not None else run.started_at
            ended_at = max(ended_at, run.started_at + run.duration_s)
            if now_at is None:
                return "ended", f"ENDED at {fmt.timestamp(ended_at, seconds=True)}"
            return "ended", f"ENDED {fmt.duration(max(0.0, now_at - ended_at))} ago"
        elapsed = self.elapsed_s(now_at)
        if self.last_step_end_s is None and self.steps_seen == 0:
            return "setup", f"setting up: no step yet after {fmt.duration(elapsed)}"
        last_end = self.last_step_end_s if self.last_step_end_s is not None else elapsed
        idle_s = max(0.0, elapsed - last_end)
        rate = self.steps_per_s()
        threshold = max(PAUSE_MIN_S, PAUSE_STEPS / rate if rate else 0.0)
        if now_at is not None and idle_s > threshold:
            return "paused", f"PAUSED: no new step for {fmt.duration(idle_s)}"
        return "running", f"running for {fmt.duration(elapsed)}"

    def view(
        self, device_energy_j: dict[str, float] | None = None, now_at: float | None = None
    ) -> LiveView:
        """The screen's content at Unix time ``now_at`` (None: as stored, no clock)."""
        run = self.run
        energy_j = max(run.energy_j, self.step_energy_j)
        carbon = run.carbon
        mean_j = self.step_energy_j / self.steps_seen if self.steps_seen else None
        jps = metrics.j_per_sample(energy_j, self.samples_seen)  # run energy, as everywhere
        rate = self.steps_per_s()
        total_power = self.total_power_series_w()
        state, state_line = self.state(now_at)
        ended = state == "ended"
        power = (
            ("power", f"{fmt.power(metrics.mean_power_w(energy_j, run.duration_s))} mean")
            if ended
            else ("power", fmt.power(total_power[-1] if total_power else None))
        )
        totals = (
            ("energy", fmt.energy_wh(energy_j)),
            (
                "carbon",
                "no intensity" if carbon is None else f"{fmt.co2(carbon.co2_g(energy_j))} CO2e",
            ),
            ("duration", fmt.duration(self.elapsed_s(now_at))),
            ("steps", fmt.number(self.steps_seen)),
            ("steps/s", "–" if ended else fmt.number(rate)),
            ("J/step", fmt.number(mean_j)),
            ("J/sample", fmt.number(jps)),
            power,
        )
        energies = device_energy_j or {}
        devices = tuple(
            (
                name,
                "–" if ended else fmt.power(live.power_now_w),
                fmt.energy_wh(energies.get(name)),
                fmt.percent(live.utilization_pct).replace(" ", ""),
                fmt.memory(live.memory_used_bytes),
                "–" if live.temperature_c is None else f"{live.temperature_c:.0f}°C",
                live.info.method,
            )
            for name, live in sorted(self.devices.items())
        )
        simulated = any(d.info.method == "simulated" for d in self.devices.values())
        return LiveView(
            title=f"{run.name}  #{run.run_id}  {run.status.upper()}",
            simulated=simulated,
            totals=totals,
            devices=devices,
            power_series_w=tuple(total_power),
            step_energy_series_j=tuple(self.step_energies_j),
            last_step_bound_j=self.last_step_bound_j,
            forecast_line=self._forecast_line(energy_j, now_at),
            baseline_line=self._baseline_line(energy_j),
            notes=tuple(d.info.note for d in self.devices.values() if d.info.note),
            power_bands=tuple(
                (name, live.power_points())
                for name, live in sorted(self.devices.items())
                if live.power_w
            ),
            state=state,
            state_line=state_line,
        )

    def planned_steps(self) -> tuple[int, str] | None:
        """The run's planned length in steps and where it comes from: ``expected_steps``,
        else a declared epoch count (tag ``epochs``) times the steps of a finished epoch."""
        run = self.run
        if run.expected_steps:
            return run.expected_steps, ""
        epochs = declared_epochs(run)
        if epochs is None or not self.epoch_steps:
            return None
        current = max(self.epoch_steps)
        finished = [count for epoch, count in self.epoch_steps.items() if epoch != current]
        if not finished:
            return None
        per_epoch = sum(finished) / len(finished)
        return round(per_epoch * epochs), f" ({epochs} epochs × {fmt.number(per_epoch)} steps)"

    def _forecast_line(self, energy_j: float, now_at: float | None) -> str:
        run = self.run
        plan = self.planned_steps()
        if plan is None:
            if declared_epochs(run) is not None and run.status == "running":
                return "forecast: after the first epoch (the run declared its epochs)"
            return "forecast: the run did not declare its length (expected_steps or epochs)"
        expected, source = plan
        projected = metrics.forecast(
            expected_steps=expected,
            steps_done=self.steps_seen,
            step_energy_j=self.step_energy_j,
            run_energy_j=energy_j,
            duration_s=self.elapsed_s(now_at),
            carbon=run.carbon,
        )
        if projected is None:
            return f"forecast: waiting for the first step of {fmt.number(expected)}{source}"
        carbon = "" if projected.co2_g is None else f", {fmt.co2(projected.co2_g)} CO2e"
        if projected.overrun:
            return (
                f"past the planned {fmt.number(projected.expected_steps)} steps{source} "
                f"(step {fmt.number(projected.steps_done)}): "
                f"{fmt.energy_wh(projected.energy_j)}{carbon} so far; end unknown"
            )
        if run.status != "running":
            return (
                f"stopped at step {fmt.number(projected.steps_done)} of "
                f"{fmt.number(projected.expected_steps)}{source} ({projected.progress:.0%})"
            )
        return (
            f"forecast at step {fmt.number(projected.expected_steps)}{source}: "
            f"{fmt.energy_wh(projected.energy_j)}{carbon}; "
            f"{projected.progress:.0%} done, ETA {fmt.duration(projected.remaining_s)}"
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
