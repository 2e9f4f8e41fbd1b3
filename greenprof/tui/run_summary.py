"""One run's figures for the comparison: its step digest, summary, caveats and curves.

Pure: a run's :class:`~greenprof.records.RunInfo`, its per-step columns (or their
digest) and its per-device energies in; frozen values out. :mod:`greenprof.tui.comparison`
sets these summaries side by side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from greenprof import metrics
from greenprof.records import RunInfo

CURVE_POINTS = 240
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""Runs are lettered in the order given: A is the reference of every delta."""
Axis = Literal["samples", "time", "step"]
"""The energy chart's x-axis: samples trained, seconds, or step number."""
AXES: tuple[Axis, ...] = ("samples", "time", "step")
INCOMPLETE_STATUSES = {
    "failed": "failed",
    "interrupted": "was interrupted",
    "incomplete": "lost steps",
    "running": "is still running",
}


@dataclass(frozen=True, slots=True)
class StepColumns:
    """A run's steps as parallel columns, in step order."""

    energy_j: Sequence[float]
    samples: Sequence[int | None]
    loss: Sequence[float | None]


@dataclass(frozen=True, slots=True)
class StepDigest:
    """What the comparison needs from a run's steps, exact or condensed.

    Small runs are digested exactly from all their steps (:func:`digest_columns`); large
    ones from per-bucket sums and every ``sampled_every``-th step, so that comparing two
    runs of 100,000 steps reads a few thousand rows (``greenprof.tui.queries``).
    """

    step_j: Sequence[float]
    """Energy of each (sampled) step."""
    sample_j: Sequence[float]
    """Energy per sample of each (sampled) step that counted samples."""
    curve: tuple[tuple[float, float], ...]
    """(step index, cumulative step energy J) at about CURVE_POINTS points."""
    loss_frontier: tuple[tuple[float, float], ...]
    """(best loss so far, cumulative energy J when first reached), loss strictly falling."""
    step_energy_j: float
    samples: int | None
    sampled_every: int = 1
    """1: exact. N: percentiles from 1 step in N, curve and frontier per bucket."""


def digest_columns(columns: StepColumns) -> StepDigest:
    """The exact digest of all of a run's steps."""
    pairs = zip(columns.energy_j, columns.samples, strict=True)
    per_sample = [energy / samples for energy, samples in pairs if samples]  # step J/sample
    count = len(columns.energy_j)
    stride = max(1, count // CURVE_POINTS)
    curve: list[tuple[float, float]] = []
    frontier: list[tuple[float, float]] = []
    cumulative = 0.0
    best = math.inf
    for index, (energy, loss) in enumerate(zip(columns.energy_j, columns.loss, strict=True)):
        cumulative += energy
        if index % stride == 0 or index == count - 1:
            curve.append((float(index), cumulative))
        if loss is not None and loss < best:
            best = loss
            frontier.append((loss, cumulative))
    samples = sum(s for s in columns.samples if s)
    return StepDigest(
        step_j=columns.energy_j,
        sample_j=per_sample,
        curve=tuple(curve),
        loss_frontier=tuple(frontier),
        step_energy_j=cumulative,
        samples=samples or None,
    )


percentile = metrics.percentile
"""Linear-interpolated percentile of sorted values (:func:`greenprof.metrics.percentile`)."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The figures of one run that the compare screen sets side by side."""

    run: RunInfo
    label: str
    step_j_median: float | None
    step_j_p90: float | None
    sample_j_median: float | None
    sample_j_p90: float | None
    samples: int | None
    energy_j: float
    curve: tuple[tuple[float, float], ...]
    """(step index, cumulative step energy J), down-sampled to about CURVE_POINTS."""
    loss_frontier: tuple[tuple[float, float], ...]
    """(best loss so far, cumulative energy J when first reached), loss strictly falling."""
    device_shares: dict[str, float]
    """Each device's fraction of the run's device energy."""
    sampled_every: int = 1
    """1 when the distributions are exact; see :class:`StepDigest`."""

    @property
    def j_per_sample(self) -> float | None:
        """Run energy per sample (:mod:`greenprof.metrics`)."""
        return metrics.j_per_sample(self.energy_j, self.samples)

    @property
    def samples_per_kwh(self) -> float | None:
        return metrics.samples_per_kwh(self.samples, self.energy_j)

    @property
    def co2_g(self) -> float | None:
        carbon = self.run.carbon
        return None if carbon is None else carbon.co2_g(self.energy_j)

    @property
    def best_loss(self) -> float | None:
        return self.loss_frontier[-1][0] if self.loss_frontier else None

    def energy_to_loss_j(self, target: float) -> float | None:
        """Cumulative step energy when the loss first reached ``target`` (None: never)."""
        for loss, energy_j in self.loss_frontier:
            if loss <= target:
                return energy_j
        return None


def summarize(run: RunInfo, digest: StepDigest, device_energy_j: dict[str, float]) -> RunSummary:
    """Summarise one run from its step digest (two sorts of at most a few thousand values
    for large runs)."""
    per_step = sorted(digest.step_j)
    per_sample = sorted(digest.sample_j)
    device_total = sum(device_energy_j.values())
    shares = (
        {device: energy / device_total for device, energy in device_energy_j.items()}
        if device_total > 0
        else {}
    )
    return RunSummary(
        run=run,
        label=f"{run.name} #{run.run_id}",
        step_j_median=percentile(per_step, 0.5),
        step_j_p90=percentile(per_step, 0.9),
        sample_j_median=percentile(per_sample, 0.5),
        sample_j_p90=percentile(per_sample, 0.9),
        samples=digest.samples or run.samples,
        energy_j=max(run.energy_j, digest.step_energy_j),
        curve=digest.curve,
        loss_frontier=digest.loss_frontier,
        device_shares=shares,
        sampled_every=digest.sampled_every,
    )


def default_loss_target(summaries: Sequence[RunSummary]) -> float | None:
    """The best loss that every run with a loss reached (the max of their best losses)."""
    best = [s.best_loss for s in summaries if s.best_loss is not None]
    return max(best) if best else None


def pct_diff(value: float | None, reference: float | None) -> float | None:
    """``value`` relative to ``reference``, in percent (None when undefined)."""
    if value is None or reference is None or reference == 0:
        return None
    return (value / reference - 1.0) * 100.0


def curve_points(summary: RunSummary, axis: Axis) -> tuple[tuple[float, float], ...]:
    """The run's cumulative-energy curve against ``axis``.

    ``step``: step number. ``samples``: samples trained, the run's samples spread evenly
    over its steps (exact for a fixed batch size), so runs of different batch sizes line
    up on the work done. ``time``: seconds, the run's duration spread evenly over its
    steps. Empty when the run lacks what the axis needs (samples, steps).
    """
    if axis == "step":
        return summary.curve
    steps = summary.run.steps
    if steps <= 0:
        return ()
    if axis == "samples":
        if not summary.samples:
            return ()
        scale = summary.samples / steps
    else:
        scale = summary.run.duration_s / steps
    # a curve point at step index i is the energy after i + 1 steps
    return tuple(((x + 1) * scale, energy_j) for x, energy_j in summary.curve)
