"""What a run's numbers look like to an experiment tracker (MLflow, W&B): pure.

:class:`TrackerFeed` turns the steps stored since the last call into a few metric points:
one point per call (the observers call about once a second), never one per step, so a
run of a million 1 ms steps logs about one point a second, not a million. Epoch totals
are logged once each, when the next epoch starts and at the end.

Metric names (the same in every tracker):

- ``greenprof/energy_j``: the run's energy so far, every device, between steps too (J).
- ``greenprof/co2_g``: its emissions (gCO2e; absent when the run has no carbon settings).
- ``greenprof/j_per_sample``: run energy so far over samples so far (J), the same
  definition as ``greenprof show`` (:mod:`greenprof.metrics`).
- ``greenprof/power_w``: mean power of all devices during the steps since the last point.
- ``greenprof_epoch/energy_j``, ``greenprof_epoch/co2_g``, ``greenprof_epoch/duration_s``:
  one epoch's steps, at the epoch's number.

Step points are at the last step number they cover (``greenprof/step`` in W&B); epoch
points at the epoch number (``greenprof_epoch/epoch``). The last point of a run carries
its stored totals, so the curves end where ``greenprof show`` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from greenprof.metrics import j_per_sample
from greenprof.records import CarbonSettings, RunInfo, StepRecord

STEP_PREFIX = "greenprof/"
EPOCH_PREFIX = "greenprof_epoch/"
STEP_AXIS = STEP_PREFIX + "step"
EPOCH_AXIS = EPOCH_PREFIX + "epoch"


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One value of one metric at one step (or epoch) number."""

    key: str
    value: float
    step: int


@dataclass(frozen=True, slots=True)
class _Epoch:
    epoch: int
    energy_j: float
    duration_s: float


class TrackerFeed:
    """Accumulates a run's steps and says which points to log (no I/O, no clock).

    Example::

        feed = TrackerFeed(carbon)
        points = feed.points(new_steps, run_energy_j=stats.energy_j)
        points += feed.final_points(run_info)
    """

    def __init__(self, carbon: CarbonSettings | None) -> None:
        self.carbon = carbon
        self.last_step = -1
        self.samples = 0
        self._epoch: _Epoch | None = None

    def points(
        self, steps: Iterable[StepRecord], *, run_energy_j: float | None
    ) -> list[MetricPoint]:
        """The points for ``steps`` (those stored since the last call, in order), with
        the run's energy so far (None: not known yet, or the run's totals follow from
        :meth:`final_points`); none when there is no new step."""
        out: list[MetricPoint] = []
        window_j = window_s = 0.0
        new = 0
        for step in steps:
            if step.step <= self.last_step:
                continue  # already seen (a re-read after a failed log)
            out += self._enter_epoch(step)
            self.last_step = step.step
            new += 1
            self.samples += step.samples or 0
            window_j += step.energy_j
            window_s += max(0.0, step.end_s - step.start_s)
        if not new:
            return out
        if run_energy_j is not None and run_energy_j > 0:
            out += self._run_points(run_energy_j, self.samples)
        if window_s > 0:
            out.append(MetricPoint(STEP_PREFIX + "power_w", window_j / window_s, self.last_step))
        return out

    def final_points(self, run: RunInfo) -> list[MetricPoint]:
        """The last epoch and the run's stored totals (call after the last
        :meth:`points`); nothing for a run without steps."""
        if self.last_step < 0:
            return []
        out = self._epoch_points(self._epoch) if self._epoch is not None else []
        self._epoch = None
        return out + self._run_points(run.energy_j, run.samples or self.samples)

    def totals(self, run: RunInfo) -> dict[str, float]:
        """The run's totals by metric name (a tracker's run summary)."""
        out = {STEP_PREFIX + "energy_j": run.energy_j}
        if run.co2_g is not None:
            out[STEP_PREFIX + "co2_g"] = run.co2_g
        per_sample = j_per_sample(run.energy_j, run.samples)
        if per_sample is not None:
            out[STEP_PREFIX + "j_per_sample"] = per_sample
        return out

    def _run_points(self, energy_j: float, samples: int) -> list[MetricPoint]:
        step = self.last_step
        out = [MetricPoint(STEP_PREFIX + "energy_j", energy_j, step)]
        if self.carbon is not None:
            out.append(MetricPoint(STEP_PREFIX + "co2_g", self.carbon.co2_g(energy_j), step))
        per_sample = j_per_sample(energy_j, samples)
        if per_sample is not None:
            out.append(MetricPoint(STEP_PREFIX + "j_per_sample", per_sample, step))
        return out

    def _enter_epoch(self, step: StepRecord) -> list[MetricPoint]:
        """Add ``step`` to its epoch; the points of the epoch it closes, if any."""
        current = self._epoch
        duration_s = max(0.0, step.end_s - step.start_s)
        if current is None or current.epoch == step.epoch:
            energy = step.energy_j + (current.energy_j if current else 0.0)
            seconds = duration_s + (current.duration_s if current else 0.0)
            self._epoch = _Epoch(step.epoch, energy, seconds)
            return []
        self._epoch = _Epoch(step.epoch, step.energy_j, duration_s)
        return self._epoch_points(current)

    def _epoch_points(self, epoch: _Epoch) -> list[MetricPoint]:
        out = [
            MetricPoint(EPOCH_PREFIX + "energy_j", epoch.energy_j, epoch.epoch),
            MetricPoint(EPOCH_PREFIX + "duration_s", epoch.duration_s, epoch.epoch),
        ]
        if self.carbon is not None:
            co2_g = self.carbon.co2_g(epoch.energy_j)
            out.append(MetricPoint(EPOCH_PREFIX + "co2_g", co2_g, epoch.epoch))
        return out
