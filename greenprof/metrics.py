"""Efficiency metrics: one definition of each figure the CLI, the terminal UI and reports show.

**J/sample is run energy over samples.** The energy of the whole run (every device,
between steps too: data loading, evaluation, checkpoints) divided by the training
samples its steps counted. That is what a sample costs the user, it matches
samples/kWh (its inverse, in kWh) and the report's totals, and it is what two runs
are compared on. The energy inside steps only is a second figure, shown as per-step
distributions (median, p90 of :func:`step_j_per_sample`) and never under the bare
"J/sample" label. (Before this module the live view divided step energy and the rest
run energy: 4 % apart on one run.)

Pure functions of numbers and records; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from greenprof.records import CarbonSettings, RunInfo
from greenprof.units import J_PER_KWH


def j_per_sample(energy_j: float, samples: int | None) -> float | None:
    """Energy per training sample (None when no samples were counted).

    Example::

        j_per_sample(run.energy_j, run.samples)
    """
    return energy_j / samples if samples else None


def samples_per_kwh(samples: int | None, energy_j: float) -> float | None:
    """Training samples per kWh (None without samples or without energy measured)."""
    if not samples or energy_j <= 0:
        return None
    return samples * J_PER_KWH / energy_j


def run_j_per_sample(run: RunInfo) -> float | None:
    """A run's J/sample: run energy over the samples counted (see the module's note)."""
    return j_per_sample(run.energy_j, run.samples)


def run_samples_per_kwh(run: RunInfo) -> float | None:
    """A run's samples per kWh of its run energy."""
    return samples_per_kwh(run.samples, run.energy_j)


def step_j_per_sample(step_energy_j: float, samples: int | None) -> float | None:
    """One step's energy per sample: the figure whose median and p90 describe a run's
    steps (not the run's J/sample, which includes the energy between steps)."""
    return j_per_sample(step_energy_j, samples)


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Linear-interpolated percentile of already sorted values (``fraction`` in 0..1),
    the same definition as ``numpy.percentile``'s default; None for no values.

    Example::

        percentile(sorted(step_j), 0.9)  # p90
    """
    if not sorted_values:
        return None
    fraction = min(1.0, max(0.0, fraction))
    position = (len(sorted_values) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    weight = position - low
    return sorted_values[low] * (1 - weight) + sorted_values[high] * weight


def power_from_energy_w(earlier: tuple[float, float], later: tuple[float, float]) -> float | None:
    """Mean power between two readings of a cumulative energy counter, each
    ``(time_s, energy_j)``; None when no time passed or the counter went back (a reset
    or a wrap: that interval's power is unknown, not negative).

    Example::

        power_from_energy_w((10.0, 500.0), (10.5, 625.0))  # 250.0
    """
    elapsed_s = later[0] - earlier[0]
    rise_j = later[1] - earlier[1]
    if elapsed_s <= 0 or rise_j < 0:
        return None
    return rise_j / elapsed_s


def mean_power_w(energy_j: float, duration_s: float) -> float | None:
    """Mean power of an energy spent over a duration (None for no duration)."""
    return energy_j / duration_s if duration_s > 0 else None


@dataclass(frozen=True, slots=True)
class Forecast:
    """Where a run that declared its length is heading.

    Past its plan (``overrun``) nothing is projected: the energy is what was spent so
    far, and the end is unknown (``remaining_s`` None), never "100 % done, 0 s left".
    """

    expected_steps: int
    steps_done: int
    progress: float
    """Fraction of the expected steps done, 0..1 (1 once the plan is reached or passed)."""
    energy_j: float
    """Projected total at the planned end; the energy so far when past it."""
    co2_g: float | None
    remaining_s: float | None
    """Time to the planned end at the mean pace so far; None past the plan."""

    @property
    def overrun(self) -> bool:
        """Whether the run has gone past the number of steps it planned."""
        return self.steps_done > self.expected_steps


def forecast(
    *,
    expected_steps: int | None,
    steps_done: int,
    step_energy_j: float,
    run_energy_j: float,
    duration_s: float,
    carbon: CarbonSettings | None,
) -> Forecast | None:
    """Project the run's total energy from its mean energy per step so far.

    Total = energy so far (including time between steps) + remaining steps × mean J/step;
    remaining time = remaining steps × mean wall time per step so far. None when the run
    declared no length or has done no step yet.
    """
    if not expected_steps or steps_done <= 0:
        return None
    spent_j = max(run_energy_j, step_energy_j)
    remaining = expected_steps - steps_done
    if remaining < 0:
        projected_j, remaining_s = spent_j, None
    else:
        projected_j = spent_j + remaining * step_energy_j / steps_done
        remaining_s = remaining * duration_s / steps_done
    return Forecast(
        expected_steps=expected_steps,
        steps_done=steps_done,
        progress=min(1.0, steps_done / expected_steps),
        energy_j=projected_j,
        co2_g=None if carbon is None else carbon.co2_g(projected_j),
        remaining_s=remaining_s,
    )
