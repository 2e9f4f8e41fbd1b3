"""Step attribution for one device: step intervals x the knot curve -> energy per step.

The energy of a step is ``Ê(end) - Ê(start)`` on a reconstruction Ê that passes through
every knot of :class:`~greenprof.energy.curve.KnotCurve` and, inside a knot interval,
follows :func:`~greenprof.energy.split.split_interval`. Because contiguous steps share
their boundary value, their energies telescope: the sum of step energies equals the
counter delta over the steps exactly (conservation by construction, whatever the
accuracy of the split inside each knot interval).

**Readiness and memory.** A step is ready when the knot interval holding its end can no
longer change: a knot exists at or after the end, the boundaries inside the interval are
known (the next step has been added past that knot, or the caller promised with
:meth:`StepAttributor.no_steps_before` that none will come before it: a run between
steps, in validation or a pause, still gets its last steps attributed), and two more
knots follow (for the rate on the right). Each finished knot interval is split once and
kept, so work per reading and per step is O(log n); history older than
:data:`RETENTION_S` before the oldest pending step (or the last step's end) is dropped.

**Uncertainty.** Each step also gets a bound on its error (:class:`Bounds`, meant to hold
>= 95 % of the time; the model is in :mod:`~greenprof.energy.uncertainty`): computed where
its boundaries are evaluated, from the knots around them, the lattice's spread and the
bounds the curve keeps on its knots' jumps. A contiguous step reuses the previous step's
end bound as its start bound, as it reuses its value.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from greenprof.energy.buffer import RowBuffer
from greenprof.energy.curve import RATE_INTERVALS, KnotCurve
from greenprof.energy.split import Split, split_interval
from greenprof.energy.uncertainty import (
    NO_BOUNDS,
    Bounds,
    IntervalCache,
    boundary_bound_j,
    split_bounds_j,
    split_point_bound_j,
)
from greenprof.records import Reading

__all__ = ["MAX_KNOTS", "RETENTION_S", "Bounds", "StepAttributor", "StepEnergy"]

RETENTION_S = 10.0
"""History kept before the oldest pending step, for ``energy_between`` (idle baselines
over the last seconds) and the rates that splits read left of an interval."""
MAX_KNOTS = 36_000
"""Hard cap on retained knots (one hour at 10 Hz) when a step stays pending for long."""

_Steps = tuple[list[int], list[float], list[float]]
_BATCH_POINTS = 8
"""A split with more cuts than this has its cuts' bounds computed in one loop
(:func:`~greenprof.energy.uncertainty.split_bounds_j`), not one call per step."""


@dataclass(frozen=True, slots=True)
class StepEnergy:
    """Energy of one step on one device."""

    step: int
    energy_j: float
    interpolated: bool
    """The step is shorter than the sensor's update period (or lies beyond the last
    reading): its energy is interpolated; sums over windows of such steps stay exact."""
    bounds: Bounds = NO_BOUNDS
    """Error bounds at its start, its end and inside (see :mod:`greenprof.energy.uncertainty`;
    combine over windows with :func:`~greenprof.energy.uncertainty.window_uncertainty_j`)."""
    counter_reset: bool = False
    """The device's counter was reset (went backwards) during the step: the energy from its
    last update to the reset is estimated, not measured."""

    @property
    def energy_uncertainty_j(self) -> float:
        """Bound on ``|energy_j - true energy|``, meant to hold >= 95 % of the time."""
        return self.bounds.total_j


class _Splits:
    """Splits of knot intervals by run-wide index.

    Final splits (the interval can no longer change) are kept until their knots are
    trimmed. The others are valid until the next input only; keeping them that long
    spares many steps inside one knot interval from re-splitting it once per step.
    """

    __slots__ = ("final", "provisional")

    def __init__(self) -> None:
        self.final: dict[int, Split] = {}
        self.provisional: dict[int, Split] = {}

    def get(self, j: int) -> Split | None:
        split = self.final.get(j)
        return split if split is not None else self.provisional.get(j)

    def keep(self, j: int, split: Split, *, final: bool) -> None:
        (self.final if final else self.provisional)[j] = split

    def new_input(self) -> None:
        """A reading or a step arrived: splits not yet final may change."""
        if self.provisional:
            self.provisional.clear()

    def evict(self, first: int, stop: int) -> None:
        """Knots ``first .. stop - 1`` were trimmed: their splits are no longer needed."""
        for j in range(first, stop):
            self.final.pop(j, None)


class StepAttributor:
    """Incremental attribution of ONE device's energy to step intervals.

    Feed readings (in time order) and steps (in step order, non-overlapping, on the same
    monotonic clock) as they come; collect results with :meth:`pop_ready` and, at the end
    of the run, :meth:`finish`. ``update_period_s`` is the sensor's declared update
    period, a prior for the update lattice (see :mod:`greenprof.energy.lattice`).

    Example::

        attributor = StepAttributor()
        for reading in readings:
            attributor.add_reading(reading)
        attributor.add_step(0, start_s=1.0, end_s=2.0)
        done = attributor.pop_ready() + attributor.finish()
    """

    def __init__(
        self, *, update_period_s: float | None = None, power_window_s: float | None = None
    ) -> None:
        self.curve = KnotCurve(update_period_s=update_period_s, power_window_s=power_window_s)
        self._steps: RowBuffer[_Steps] = RowBuffer(([], [], []))
        self._s_step, self._s_start, self._s_end = self._steps.columns
        self._next = 0  # run-wide index of the next step to emit
        self._anchor: tuple[float, float, float] | None = None
        # (end, Ê, bound at the end) of the last emitted step
        self._splits = _Splits()
        self._horizon_s = -math.inf  # no step boundary will be added before this

    # ------------------------------------------------------------------ public API

    @property
    def total_energy_j(self) -> float:
        """Device energy between its first and last reading."""
        return self.curve.total_j

    @property
    def update_period_s(self) -> float | None:
        """Detected update period of the counter (None until known, or for power)."""
        return self.curve.update_period_s

    @property
    def retained_steps(self) -> int:
        """Steps held in memory: the pending ones and a few seconds before them."""
        return len(self._steps)

    def add_reading(self, reading: Reading) -> None:
        """Add one reading of this device (in time order)."""
        self._splits.new_input()
        self.curve.add_reading(reading)

    def add_step(self, step: int, start_s: float, end_s: float) -> None:
        """Add a finished step (in step order; an overlap with the previous is clipped).
        A boundary in an interval already finalized reads that interval's kept split."""
        if end_s < start_s:
            raise ValueError(f"step {step} ends before it starts ({start_s} > {end_s})")
        self._splits.new_input()
        ends = self._s_end
        if ends and start_s < ends[-1]:
            start_s = ends[-1]
            end_s = max(end_s, start_s)
        self._s_step.append(step)
        self._s_start.append(start_s)
        ends.append(end_s)

    def add_steps(self, steps: list[int], starts_s: list[float], ends_s: list[float]) -> None:
        """:meth:`add_step` for many steps at once (a poll's worth of marks, in step order)."""
        if not steps:
            return
        self._splits.new_input()
        s_step, s_start, s_end = self._s_step, self._s_start, self._s_end
        previous_s = s_end[-1] if s_end else -math.inf
        clean = True  # no step ends before it starts and none overlaps the previous one
        for start_s, end_s in zip(starts_s, ends_s, strict=True):
            if end_s < start_s or start_s < previous_s:
                clean = False
                break
            previous_s = end_s
        if not clean:
            for step, start_s, end_s in zip(steps, starts_s, ends_s, strict=True):
                self.add_step(step, start_s, end_s)
            return
        s_step.extend(steps)
        s_start.extend(starts_s)
        s_end.extend(ends_s)

    def no_steps_before(self, time_s: float) -> None:
        """No step boundary is expected before ``time_s``: knot intervals up to it are
        finalized without waiting for the next step. A boundary that comes later anyway (a
        late mark) reads the kept split of its interval: consistent with what was emitted,
        a little less exact inside that interval."""
        self._horizon_s = max(self._horizon_s, time_s)

    def note_gap(self, start_s: float, end_s: float) -> None:
        """This device was not read between ``start_s`` and ``end_s`` (a long poll gap, in
        time order; tell it before the reading that ends it): the bounds of step boundaries
        in knot intervals overlapping it are wider (:data:`~greenprof.energy.uncertainty.
        GAP_RATE_MARGIN`)."""
        self.curve.note_gap(start_s, end_s)

    def pop_ready(self) -> list[StepEnergy]:
        """Steps whose energy can no longer change; each returned once, in order."""
        ready: list[StepEnergy] = []
        ends, times = self._s_end, self.curve.times
        first = self._next - self._steps.base
        if first < len(ends) and len(times) > RATE_INTERVALS:
            # the last final knot: two knots after it, and a step ending at or after it
            last = len(times) - 1 - RATE_INTERVALS
            known_s = max(ends[-1], self._horizon_s)  # every boundary before it is known
            if known_s < times[last]:
                last = bisect_right(times, known_s) - 1
            if last >= 0:
                stop = bisect_right(ends, times[last], first)
                self._emit_until(stop, ready, final=True)
        self._trim()
        return ready

    def finish(self) -> list[StepEnergy]:
        """End of run: every remaining step, attributed with what is known."""
        done: list[StepEnergy] = []
        self._emit_until(len(self._s_end), done, final=False)
        self._trim()
        return done

    def energy_between(self, t0_s: float, t1_s: float) -> float:
        """Energy on the reconstructed curve within the retained history."""
        times = self.curve.times
        if len(times) < 2:
            return 0.0
        lo_s, hi_s = times[0], times[-1]
        t0_s, t1_s = min(max(t0_s, lo_s), hi_s), min(max(t1_s, lo_s), hi_s)
        return self._energy_at(t1_s, final=False) - self._energy_at(t0_s, final=False)

    # ------------------------------------------------------------------ steps → energies

    def _is_final(self, j: int) -> bool:
        """Knot interval j (run-wide index of its right knot) can no longer change."""
        times = self.curve.times
        i = j - self.curve.knots.base
        if i + RATE_INTERVALS >= len(times):
            return False  # the rate right of the interval needs two more knots
        known_s = max(self._s_end[-1], self._horizon_s) if self._s_end else self._horizon_s
        return known_s >= times[i]

    def _emit_until(self, stop: int, out: list[StepEnergy], *, final: bool) -> None:
        """Emit the pending steps before position ``stop``, in order.

        Every step boundary inside a knot interval is a point of that interval's split,
        so a step's end is looked up by walking the split's points: one bisect per knot
        interval, not per step; its bound reads what the interval shares from a cache and
        knows from its place among the points whether another boundary lies between it and
        a knot (no bisect over the steps). A step starting where the previous one ended
        shares its value and bound (contiguous steps telescope).
        """
        first = self._next - self._steps.base
        if stop <= first:
            return
        steps, starts, ends = self._s_step, self._s_start, self._s_end
        times, knot_base = self.curve.times, self.curve.knots.base
        lo_s = times[0] if times else math.inf
        hi_s = times[-1] if times else -math.inf
        resolution_s = self.curve.resolution_s()
        anchor_s, anchor_j, anchor_b = self._anchor or (math.nan, 0.0, 0.0)
        curve = self.curve
        cache: IntervalCache = {}
        points: list[float] = []
        cumulative: list[float] = []
        k = i = 0
        u1 = -math.inf
        point_bounds: list[float] | None = None
        resets = curve.resets
        interior = bool(curve.jump_j2) and curve.jump_j2[-1] != curve.jump_j2[0]
        for idx in range(first, stop):
            start_s, end_s = starts[idx], ends[idx]
            if lo_s < end_s < hi_s:
                if end_s > u1:  # into the next knot interval holding a step end
                    i = bisect_left(times, end_s)
                    points, cumulative = self._interval(knot_base + i, final=final)
                    u1, k = points[-1], 1
                    point_bounds = None
                while points[k] < end_s:
                    k += 1
                end_j = cumulative[k]
                if points[k] == end_s:  # a point of the split: the neighbours tell the sides
                    if len(points) > _BATCH_POINTS:  # many steps in one interval: all at once
                        if point_bounds is None:
                            point_bounds = split_bounds_j(curve, i, points, cumulative, cache=cache)
                        end_b = point_bounds[k]
                    else:
                        end_b = split_point_bound_j(
                            curve,
                            i,
                            end_s,
                            end_j,
                            alone_left=k == 1,
                            alone_right=k >= len(points) - 2,
                            cache=cache,
                        )
                else:  # a boundary added after its interval's split was kept (a late mark)
                    t0, t1, e0 = points[k - 1], points[k], cumulative[k - 1]
                    if t1 > t0:
                        end_j = e0 + (end_j - e0) * (end_s - t0) / (t1 - t0)
                    end_b = boundary_bound_j(curve, end_s, end_j, starts, ends, cache=cache)
            else:
                end_j = self._energy_at(end_s, final=final)
                end_b = boundary_bound_j(curve, end_s, end_j, starts, ends, cache=cache)
            if start_s == anchor_s:  # contiguous steps telescope
                start_j, start_b = anchor_j, anchor_b
            else:
                start_j = self._energy_at(start_s, final=final)
                start_b = boundary_bound_j(curve, start_s, start_j, starts, ends, cache=cache)
            interior_j = self._interior_j(start_s, end_s) if interior else 0.0
            bounds = Bounds(start_b, end_b, interior_j)
            anchor_s, anchor_j, anchor_b = end_s, end_j, end_b
            interpolated = start_s < lo_s or end_s > hi_s or end_s - start_s < resolution_s
            reset = bool(resets) and any(u0 < end_s and start_s < u1 for u0, u1 in resets)
            out.append(StepEnergy(steps[idx], end_j - start_j, interpolated, bounds, reset))
        self._anchor = (anchor_s, anchor_j, anchor_b)
        self._next = self._steps.base + stop

    def _interior_j(self, start_s: float, end_s: float) -> float:
        """Root-sum-square of the knot jumps' bounds over ``[start_s, end_s]`` (pro rata)."""
        jump_j2 = self.curve.jump_j2
        if not jump_j2 or jump_j2[-1] == jump_j2[0]:
            return 0.0  # every retained jump measured (a counter without a reset)
        variance_j2 = self._jump_variance_at(end_s) - self._jump_variance_at(start_s)
        return math.sqrt(max(variance_j2, 0.0))

    def _jump_variance_at(self, t_s: float) -> float:
        times, jump_j2 = self.curve.times, self.curve.jump_j2
        if not times or t_s <= times[0]:
            return jump_j2[0] if times else 0.0
        if t_s >= times[-1]:
            return jump_j2[-1]
        i = bisect_left(times, t_s)
        v0, v1 = jump_j2[i - 1], jump_j2[i]
        return v0 + (v1 - v0) * (t_s - times[i - 1]) / (times[i] - times[i - 1])

    def _energy_at(self, t_s: float, *, final: bool) -> float:
        """Ê(t): the reconstructed cumulative energy (extrapolated outside the knots)."""
        curve = self.curve
        times, energies = curve.times, curve.energies
        if not times:
            return 0.0
        if t_s <= times[0]:
            return energies[0] - curve.edge_rate_w(first=True) * (times[0] - t_s)
        if t_s >= times[-1]:
            return energies[-1] + self._beyond_last_knot_j(t_s)
        i = bisect_left(times, t_s)
        points, cumulative = self._interval(curve.knots.base + i, final=final)
        k = min(bisect_right(points, t_s), len(points) - 1)
        t0, t1 = points[k - 1], points[k]
        e0, e1 = cumulative[k - 1], cumulative[k]
        return e0 + (e1 - e0) * (t_s - t0) / (t1 - t0) if t1 > t0 else e1

    def _beyond_last_knot_j(self, t_s: float) -> float:
        """Energy from the last knot to ``t_s``: the power read since, held from one reading
        to the next (each reading from the previous one on), else the edge rate.

        A slow counter's last update can be up to a period before a run's last step ends;
        the power read meanwhile says what the step drew, where the last reading alone
        (often taken after the step, at idle) does not. Monotone in ``t_s``.
        """
        curve = self.curve
        last_s = curve.times[-1]
        power_times, powers = curve.power_times, curve.powers
        lo = bisect_right(power_times, last_s)
        hi = bisect_right(power_times, t_s)
        if hi <= lo or curve.averaged:
            return curve.edge_rate_w(first=False) * (t_s - last_s)
        energy_j, previous_s = 0.0, last_s
        for k in range(lo, hi):
            energy_j += powers[k] * (power_times[k] - previous_s)
            previous_s = power_times[k]
        after_w = powers[hi] if hi < len(powers) else powers[hi - 1]
        return energy_j + after_w * (t_s - previous_s)

    def _interval(self, j: int, *, final: bool) -> Split:
        """Knot interval j (run-wide index of its right knot) split at step boundaries.

        With ``final``, a split that can no longer change is kept for good, and the knots
        it used are frozen (a later lattice refit does not move them).
        """
        splits = self._splits
        split = splits.get(j)
        if split is None:
            i = j - self.curve.knots.base
            split = split_interval(self.curve, i, self._s_start, self._s_end)
            splits.keep(j, split, final=False)
        if final and j not in splits.final and self._is_final(j):
            splits.keep(j, split, final=True)
            self.curve.frozen = max(self.curve.frozen, j)
        return split

    # ------------------------------------------------------------------ memory

    def _trim(self) -> None:
        """Drop history no longer needed (amortized O(1): in chunks)."""
        curve = self.curve
        times = curve.times
        if not times:
            return
        pending = self._next - self._steps.base
        if pending < len(self._s_start):
            pending_s = self._s_start[pending]
        else:  # a late mark may still start a step where the last one ended
            pending_s = self._anchor[0] if self._anchor is not None else math.inf
        cutoff_s = min(pending_s, times[-1]) - RETENTION_S
        k = max(bisect_left(times, cutoff_s) - RATE_INTERVALS - 1, len(times) - MAX_KNOTS)
        if curve.knots.drop_oldest(k):
            self._splits.evict(curve.knots.base - k, curve.knots.base)
        curve.readings.drop_oldest(bisect_left(curve.power_times, times[0] - RETENTION_S))
        curve.forget_gaps_before(times[0])
        s = min(pending - 1, bisect_left(self._s_end, cutoff_s))
        self._steps.drop_oldest(s)
