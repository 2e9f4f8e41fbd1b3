"""A run's power and cumulative energy over time, for the report's chart.

The store buckets the samples (:meth:`~greenprof.store.RunStore.sample_timeline`); this
module turns the buckets into one power value per device per bucket and one cumulative
energy of all devices. Power is the sensor's mean power where it reports one, else the
rise of the device's cumulative counter since the last bucket that had a reading
(:func:`greenprof.metrics.power_from_energy_w`), so a bucket without a sample leaves a
gap the chart bridges instead of a drop to zero or a spike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from greenprof.metrics import mean_power_w, power_from_energy_w
from greenprof.records import RunInfo

if TYPE_CHECKING:
    from greenprof.store.api import TimelineCell
    from greenprof.store.reader import RunStore

CHART_POINTS = 150


@dataclass(frozen=True)
class Timeline:
    """Power per device and cumulative energy of all devices, on a shared time grid."""

    times_s: list[float]
    """The middle of each bucket, seconds since the run started."""
    power_w: dict[str, list[float | None]]
    energy_j: list[float | None]
    source: str
    """'samples' (sensor readings) or 'steps' (step energies, when no samples were stored)."""


def timeline(store: RunStore, run: RunInfo, points: int = CHART_POINTS) -> Timeline:
    """Bucket a run's samples (else its steps) into about ``points`` intervals (the store
    does the bucketing)."""
    span = run.duration_s
    if span <= 0:
        span = store.last_sample_time_s(run.run_id) or 0.0
    width = max(span / points, 1e-3)
    cells = store.sample_timeline(run.run_id, width_s=width, points=points)
    source = "samples"
    if not cells:
        source = "steps"
        cells = store.step_timeline(run.run_id, width_s=width, points=points)
    return _from_cells(cells, width, source)


def _from_cells(cells: list[TimelineCell], width: float, source: str) -> Timeline:
    buckets = max((cell.bucket for cell in cells), default=-1) + 1
    devices = sorted({cell.device for cell in cells})
    power: dict[str, list[float | None]] = {d: [None] * buckets for d in devices}
    level: dict[str, list[float | None]] = {d: [None] * buckets for d in devices}
    for cell in cells:
        power[cell.device][cell.bucket] = cell.power_w
        level[cell.device][cell.bucket] = cell.energy_j
    cumulative: list[float | None] = [None] * buckets
    for device in devices:
        running = 0.0
        last = (0.0, 0.0)  # (time_s, level): a run's counters start at 0 at its start
        for b in range(buckets):
            value, end_s = level[device][b], (b + 1) * width
            if source == "steps":  # per-bucket sums: accumulate, derive power
                running += value or 0.0
                power[device][b] = mean_power_w(value or 0.0, width)
            elif value is not None:  # cumulative counter: power from its rise
                if power[device][b] is None:
                    power[device][b] = power_from_energy_w(last, (end_s, value))
                running, last = value, (end_s, value)
            elif power[device][b] is not None:  # power-only sensor: integrate
                running += (power[device][b] or 0.0) * width
            cumulative[b] = (cumulative[b] or 0.0) + running
    times = [(b + 0.5) * width for b in range(buckets)]
    return Timeline(times, power, cumulative, source)
