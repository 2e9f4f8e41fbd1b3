"""Energy of training steps from polled energy counters and power readings (pure).

A device reports either a cumulative energy counter (NVML total energy, RAPL) or
only its power (then the polled power is integrated with the trapezoid rule, the
``power_integration`` method). Either way the sampler gives *knots*: points
``(time, cumulative energy)`` of one monotone curve E(t). The energy of a step is
``Ê(end) - Ê(start)`` on a reconstruction Ê that passes through every knot. Because
contiguous steps share their boundary value, their energies telescope: the sum of
step energies equals the counter delta over the steps exactly (conservation by
construction, whatever the accuracy of the split inside each knot interval).

**Where the knots are.** NVIDIA's counter is refreshed only about every 100 ms (10-50
ms on some drivers; RAPL is effectively continuous); in between, a read returns the
stale value. A reading ``(t, E)`` therefore means "E was the energy at the last update
instant u <= t", not at t. :class:`_UpdateClock` recovers the update lattice
``u_k = phase + k * period`` from *when* the value changes: a poll interval in which
the value changed contains an update, one in which it did not contains none. The
sampler dithers its poll times, so folding these intervals modulo a candidate period
narrows the phase with every poll; the period is the candidate for which every
interval is consistent (a coarse grid first, then finer grids over a longer window).
Each knot is then placed at the last update instant inside its poll interval. Until
the lattice is known (and for counters that change at every poll) knots stay at the
poll times, which is conservative.

**Splitting a jump.** Between two knots the curve must rise by the jump ``ΔE``, but
not necessarily linearly: power changes at step boundaries, and a linear split
misattributes up to ``ΔP x 25 ms`` per boundary. A knot interval that contains step
boundaries is cut into segments at those boundaries; each segment gets a rate from
what is known about the step (or gap) it belongs to: the slope of the knots just
before or after the interval when that step extends beyond it, else the mean of the
instantaneous power readings taken during the step, else the interval's mean rate.
``ΔE`` is shared out in proportion to ``rate x duration``, so the jump is conserved
exactly and Ê stays monotone.

**Readiness and memory.** A step is ready when the knot interval holding its end can
no longer change: a knot exists at or after the end, the next step has been added
past that knot (so the boundaries inside the interval are known), and two more knots
follow (for the rate on the right). Each finished knot interval is cached once, so
work per reading and per step is O(log n); history older than a few seconds before
the oldest pending step is dropped.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from greenprof.records import Reading

__all__ = ["StepAttributor", "StepEnergy", "counter_delta", "integrate_power"]

_RATE_INTERVALS = 2
"""Knot intervals on each side of a boundary used to estimate a step's energy rate."""
_AMBIGUITY = 0.03
"""Polls this close to an estimated update (fraction of the period) are ambiguous."""
_RETENTION_S = 10.0
"""History kept before the oldest pending step, for ``energy_between`` (idle baselines)."""
_MAX_KNOTS = 36_000
"""Hard cap on retained knots (one hour at 10 Hz) when a step stays pending for long."""


def counter_delta(previous_j: float, current_j: float, wrap_j: float | None = None) -> float:
    """Energy between two raw counter values.

    A decrease is a wrap-around when the counter wraps at ``wrap_j`` (RAPL's
    ``max_energy_range_uj``), else a reset (driver reload): the energy since the reset,
    ``current_j``, is all that is known.

    >>> counter_delta(10.0, 12.5)
    2.5
    >>> counter_delta(99.0, 1.0, wrap_j=100.0)
    2.0
    >>> counter_delta(99.0, 1.0)
    1.0
    """
    if current_j >= previous_j:
        return current_j - previous_j
    if wrap_j is not None and wrap_j > 0:
        return (wrap_j - previous_j) + current_j
    return current_j


def integrate_power(times_s: Sequence[float], powers_w: Sequence[float]) -> list[float]:
    """Trapezoid rule: cumulative energy (J) at each time, starting at 0.

    >>> integrate_power([0.0, 1.0, 3.0], [100.0, 200.0, 200.0])
    [0.0, 150.0, 550.0]
    """
    if len(times_s) != len(powers_w):
        raise ValueError("times_s and powers_w must have the same length")
    cumulative_j: list[float] = []
    total_j = 0.0
    for i, (t_s, p_w) in enumerate(zip(times_s, powers_w, strict=True)):
        if i:
            total_j += 0.5 * (p_w + powers_w[i - 1]) * (t_s - times_s[i - 1])
        cumulative_j.append(total_j)
    return cumulative_j


@dataclass(frozen=True, slots=True)
class StepEnergy:
    """Energy of one step on one device."""

    step: int
    energy_j: float
    interpolated: bool
    """The step is shorter than the sensor's update period (or lies beyond the last
    reading): its energy is interpolated; sums over windows of such steps stay exact."""


# --------------------------------------------------------------------------- update clock

_Constraint = tuple[float, float, bool]
"""A poll interval ``(a, b]`` and whether the counter changed in it."""


def _fold(
    period_s: float, constraints: Sequence[_Constraint], t_ref: float
) -> tuple[int, float, float]:
    """Fold poll intervals modulo ``period_s``: (violations, slack, best phase offset).

    A changed interval must contain an update instant, an unchanged one must not. The
    best phase is the middle of the widest region satisfying the most constraints.
    """
    events: list[tuple[float, int]] = []
    violations = 0
    n_changed = 0
    for a, b, changed in constraints:
        length = b - a
        if length >= period_s:
            violations += 0 if changed else 1  # an update must have happened in there
            continue
        weight = 1 if changed else -1
        n_changed += changed
        x0 = (a - t_ref) % period_s
        x1 = x0 + length
        events.append((x0, weight))
        if x1 <= period_s:
            events.append((x1, -weight))
        else:  # the arc wraps around the circle
            events += [(period_s, -weight), (0.0, weight), (x1 - period_s, -weight)]
    events.sort()
    level, best, best_width, best_mid = 0, -(10**9), -1.0, 0.0
    for i, (x, delta) in enumerate(events):
        level += delta
        nxt = events[i + 1][0] if i + 1 < len(events) else period_s
        if nxt > x and (level > best or (level == best and nxt - x > best_width)):
            best, best_width, best_mid = level, nxt - x, 0.5 * (x + nxt)
    if not events:
        return violations, period_s, 0.0
    return violations + n_changed - best, best_width, best_mid


def _grid_search(
    constraints: Sequence[_Constraint],
    centres_s: Sequence[float],
    half_width_s: float,
    step_s: float,
) -> list[tuple[int, float, float, float]]:
    """Candidate periods on grids around ``centres_s``, best first.

    Each result is (violations, -slack, period, phase); the true period violates no
    constraint, and the most slack marks the middle of the consistent range.
    """
    t_ref = constraints[len(constraints) // 2][0]
    n = max(1, math.ceil(half_width_s / step_s))
    periods = {round(c + i * step_s, 12) for c in centres_s for i in range(-n, n + 1)}
    results = []
    for period_s in periods:
        if period_s > 0:
            violations, slack, offset = _fold(period_s, constraints, t_ref)
            results.append((violations, -slack, period_s, t_ref + offset))
    results.sort()
    return results


def _distinct(
    results: Sequence[tuple[int, float, float, float]], gap_s: float, k: int
) -> list[float]:
    """The periods of the k best results that are more than gap_s apart."""
    kept: list[float] = []
    for _, _, period_s, _ in results:
        if all(abs(period_s - p) > gap_s for p in kept):
            kept.append(period_s)
            if len(kept) == k:
                break
    return kept


def _middle(
    results: Sequence[tuple[int, float, float, float]], t_end: float
) -> tuple[float, float, float]:
    """The lattice in the middle of those that fit best, where it matters: at the latest poll.

    Each period that fits best allows a range of update instants near the latest poll
    (its phase +- half its slack); the estimate is the middle of their union, with the
    middle of the periods that allow it. Not the period with the widest slack: the
    consistent (period, phase) region is a skewed polygon whose widest slice can lie at
    one end of its period range, and such a lattice drifts off by several milliseconds
    at the latest polls, where new knots are placed.
    """
    fewest = results[0][0]
    best = [(p, u + round((t_end - u) / p) * p, -s) for v, s, p, u in results if v == fewest]
    ref_s = best[0][1]
    centred = [(p, ref_s + (u - ref_s + 0.5 * p) % p - 0.5 * p, w) for p, u, w in best]
    lo_s = min(u - 0.5 * w for _, u, w in centred)
    hi_s = max(u + 0.5 * w for _, u, w in centred)
    mid_s = 0.5 * (lo_s + hi_s)
    periods = [p for p, u, w in centred if abs(u - mid_s) <= 0.5 * w]
    if not periods:
        periods = [min(centred, key=lambda c: abs(c[1] - mid_s))[0]]
    return 0.5 * (min(periods) + max(periods)), mid_s, hi_s - lo_s


class _UpdateClock:
    """Estimates a stale counter's update period and phase from when its value changes.

    Needs polls shorter than the period now and then (unchanged intervals): a counter
    that changes at every poll is treated as continuous (knots at poll times).
    """

    def __init__(self, hint_s: float | None) -> None:
        self._hint_s = hint_s
        self._constraints: deque[_Constraint] = deque(maxlen=300)
        self._since_fit = 0
        self.period_s: float | None = None
        self.phase_s = 0.0
        self.spread_s = 0.0
        """Width of the range of update instants near the latest poll that fit the polls."""

    def observe(self, a_s: float, b_s: float, changed: bool) -> bool:
        """Record one poll interval; True when the estimate was (re)computed."""
        last = self._constraints[-1] if self._constraints else None
        if not changed and last is not None and not last[2] and last[1] == a_s:
            self._constraints[-1] = (last[0], b_s, False)  # merge a run of unchanged polls
        else:
            self._constraints.append((a_s, b_s, changed))
        self._since_fit += 1
        n = len(self._constraints)
        # refit often while the window grows (the period sharpens), then every 5 s or so
        due = 50 if self.period_s is not None and n == self._constraints.maxlen else 10
        if self._since_fit < due or n < 30:
            return False
        self._since_fit = 0
        return self._fit()

    def update_instant(self, a_s: float, b_s: float) -> float:
        """The last update instant in the poll interval ``(a_s, b_s]``."""
        if self.period_s is None:
            return b_s
        period_s = self.period_s
        u_s = self.phase_s + math.floor((b_s - self.phase_s) / period_s) * period_s
        if u_s > a_s:
            return u_s
        # the estimate is slightly off: the update is at the end nearest the lattice
        return b_s if u_s + period_s - b_s < a_s - u_s else math.nextafter(a_s, b_s)

    def alternative_instant(self, a_s: float, b_s: float) -> float | None:
        """The other candidate update instant when the poll ``b_s`` lies so close to an
        update that the phase's uncertainty cannot tell whether it saw it; else None."""
        if self.period_s is None:
            return None
        period_s = self.period_s
        margin_s = max(_AMBIGUITY * period_s, 0.5 * self.spread_s)
        u_s = self.update_instant(a_s, b_s)
        if u_s + period_s - b_s < margin_s:
            return u_s + period_s  # b may already have seen the next update
        if b_s - u_s < margin_s and u_s - period_s > a_s:
            return u_s - period_s  # b may have come just before the update at u
        return None

    def _bounds(self, constraints: Sequence[_Constraint]) -> tuple[float, float] | None:
        """Period bounds: above the longest unchanged run, below two distinct updates' span."""
        unchanged = [b - a for a, b, changed in constraints if not changed]
        if not unchanged:
            return None
        lo_s = max(unchanged)
        changes = [(a, b) for a, b, changed in constraints if changed]
        spans = [b1 - a0 for (a0, _), (_, b1) in pairwise(changes)]
        hi_s = min(spans) if spans else 4 * lo_s
        if self._hint_s and lo_s <= 1.2 * self._hint_s and hi_s >= 0.8 * self._hint_s:
            lo_s, hi_s = max(lo_s, 0.8 * self._hint_s), min(hi_s, 1.2 * self._hint_s)
        return (lo_s, hi_s) if hi_s > lo_s else None

    def _fit(self) -> bool:
        """Fit the lattice; True when the estimate changed."""
        constraints = list(self._constraints)
        bounds = self._bounds(constraints)
        best = None
        if self.period_s is not None:  # track the known lattice: a narrow search
            step_s = self.period_s**2 / (8 * (constraints[-1][1] - constraints[0][0]))
            best = self._refine(constraints, [self.period_s], step_s)
        if (best is None or not self._acceptable(best[0], constraints)) and bounds is not None:
            best = self._search(constraints, *bounds)
        if best is None or not self._acceptable(best[0], constraints):
            known = self.period_s is not None
            self.period_s = None  # not a regular lattice (yet): knots at poll times
            return known
        self.period_s, self.phase_s = best[2], best[3]
        self.spread_s = -best[1]
        return True

    @staticmethod
    def _acceptable(violations: int, constraints: Sequence[_Constraint]) -> bool:
        return violations <= 0.02 * len(constraints)  # a little timing jitter is tolerated

    @staticmethod
    def _search(
        constraints: Sequence[_Constraint], lo_s: float, hi_s: float
    ) -> tuple[int, float, float, float] | None:
        """Coarse grid on the latest polls, then finer grids over windows twice as long.

        A beam of the few best candidates survives each stage: on a short window an
        alias can look as good as the true period; a longer one tells them apart.
        """
        n = 30
        window = constraints[-n:]
        # a period error of step_s drifts the phase by period/8 across the window
        step_s = max(lo_s * lo_s / (8 * (window[-1][1] - window[0][0])), (hi_s - lo_s) / 1000)
        half_s = 0.5 * (hi_s - lo_s)
        results = _grid_search(window, [lo_s + half_s], half_s, step_s)
        while n < len(constraints):
            n = min(2 * n, len(constraints))
            beam = _distinct(results, 2 * step_s, 3)
            results = _grid_search(constraints[-n:], beam, 2 * step_s, step_s / 2)
            step_s /= 2
        rivals = [r for r in results if r[0] == results[0][0]]
        if len(_distinct(rivals, 4 * step_s, 2)) > 1:
            return None  # another period explains the polls as well: wait for more
        return _UpdateClock._refine(constraints, [results[0][2]], step_s, centred=False)

    @staticmethod
    def _refine(
        constraints: Sequence[_Constraint],
        centres_s: Sequence[float],
        step_s: float,
        *,
        centred: bool = True,
    ) -> tuple[int, float, float, float]:
        """Zoom in on the middle of the range of periods that fit best.

        Not on the period with the widest phase slack: the consistent (period, phase)
        region is a skewed polygon whose widest slice can lie at one end of its period
        range, and a lattice with such a period drifts off by several milliseconds at the
        window's edges, where new knots are placed.
        """
        results = _grid_search(constraints, centres_s, 2 * step_s, step_s / 2)
        if not centred:  # acquisition: the widest slack (a middle of a wide range can be off)
            best = results[0]
            for _ in range(3):
                step_s /= 4
                best = _grid_search(constraints, [best[2]], 2 * step_s, step_s / 2)[0]
            return best
        for _ in range(3):
            step_s /= 4
            centre_s, _, _ = _middle(results, constraints[-1][1])
            results = _grid_search(constraints, [centre_s], 2 * step_s, step_s / 2)
        period_s, phase_s, spread_s = _middle(results, constraints[-1][1])
        violations, _, _ = _fold(period_s, constraints, constraints[-1][1])
        if violations > results[0][0]:  # not convex after all: keep the best on the grid
            return results[0]
        return violations, -spread_s, period_s, phase_s


# --------------------------------------------------------------------------- attribution


class StepAttributor:
    """Incremental attribution of ONE device's energy to step intervals.

    Feed readings (in time order) and steps (in step order, non-overlapping, on the same
    monotonic clock) as they come; collect results with :meth:`pop_ready` and, at the end
    of the run, :meth:`finish`.

    Example::

        attributor = StepAttributor()
        for reading in readings:
            attributor.add_reading(reading)
        attributor.add_step(0, start_s=1.0, end_s=2.0)
        done = attributor.pop_ready() + attributor.finish()
    """

    def __init__(self, *, update_period_s: float | None = None) -> None:
        self._clock = _UpdateClock(update_period_s)
        self._mode: Literal["counter", "power"] | None = None
        self._total_j = 0.0
        self._last_raw_j = 0.0
        self._last_poll_s = -math.inf
        self._last_power_w: float | None = None
        # knots: update instant, cumulative energy, poll interval; index = _k_base + list index
        self._k_base = 0
        self._k_time: list[float] = []
        self._k_energy: list[float] = []
        self._k_poll: list[tuple[float, float]] = []
        self._frozen = -1  # absolute index of the last knot that may no longer move
        self._p_time: list[float] = []  # instantaneous power readings
        self._p_power: list[float] = []
        # steps: index = _s_base + list index; _next absolute index of the next to emit
        self._s_base = 0
        self._s_step: list[int] = []
        self._s_start: list[float] = []
        self._s_end: list[float] = []
        self._next = 0
        self._anchor: tuple[float, float] | None = None  # (end, Ê) of the last emitted step
        self._cache: dict[int, tuple[list[float], list[float]]] = {}
        # Splits of intervals that may still change, valid until the next input; without
        # it, many steps inside one knot interval would re-split it once per step.
        self._scratch: dict[int, tuple[list[float], list[float]]] = {}
        self._inputs = 0
        self._scratch_inputs = -1

    # ------------------------------------------------------------------ public API

    @property
    def total_energy_j(self) -> float:
        """Device energy between its first and last reading."""
        return self._total_j

    @property
    def update_period_s(self) -> float | None:
        """Detected update period of the counter (None until known, or for power)."""
        return self._clock.period_s if self._mode == "counter" else None

    def add_reading(self, reading: Reading) -> None:
        """Add one reading of this device (in time order)."""
        self._inputs += 1
        if reading.power_w is not None:
            self._p_time.append(reading.time_s)
            self._p_power.append(reading.power_w)
        if self._mode is None:
            if reading.energy_j is None and reading.power_w is None:
                return
            self._mode = "counter" if reading.energy_j is not None else "power"
        if self._mode == "counter":
            self._add_counter(reading.time_s, reading.energy_j)
        else:
            self._add_power(reading.time_s, reading.power_w)

    def add_step(self, step: int, start_s: float, end_s: float) -> None:
        """Add a finished step (in step order; an overlap with the previous is clipped)."""
        if end_s < start_s:
            raise ValueError(f"step {step} ends before it starts ({start_s} > {end_s})")
        self._inputs += 1
        ends = self._s_end
        if ends and start_s < ends[-1]:
            start_s = ends[-1]
            end_s = max(end_s, start_s)
        self._s_step.append(step)
        self._s_start.append(start_s)
        ends.append(end_s)

    def pop_ready(self) -> list[StepEnergy]:
        """Steps whose energy can no longer change; each returned once, in order."""
        ready: list[StepEnergy] = []
        ends, times = self._s_end, self._k_time
        if self._next - self._s_base < len(ends) and len(times) > _RATE_INTERVALS:
            # the last final knot: two knots after it, and a step ending at or after it
            last = len(times) - 1 - _RATE_INTERVALS
            if ends[-1] < times[last]:
                last = bisect_right(times, ends[-1]) - 1
            if last >= 0:
                stop = bisect_right(ends, times[last], self._next - self._s_base)
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
        if len(self._k_time) < 2:
            return 0.0
        lo_s, hi_s = self._k_time[0], self._k_time[-1]
        t0_s, t1_s = min(max(t0_s, lo_s), hi_s), min(max(t1_s, lo_s), hi_s)
        return self._energy_at(t1_s, final=False) - self._energy_at(t0_s, final=False)

    # ------------------------------------------------------------------ readings → knots

    def _add_counter(self, time_s: float, raw_j: float | None) -> None:
        if raw_j is None:
            return
        if not self._k_time:
            self._append_knot(-math.inf, time_s, 0.0)
        else:
            changed = raw_j != self._last_raw_j
            if self._clock.observe(self._last_poll_s, time_s, changed):
                self._replace_knots()
            if changed:
                self._total_j += counter_delta(self._last_raw_j, raw_j)
                self._append_knot(self._last_poll_s, time_s, self._total_j)
        self._last_raw_j, self._last_poll_s = raw_j, time_s

    def _add_power(self, time_s: float, power_w: float | None) -> None:
        if power_w is None:
            return
        if self._last_power_w is not None and time_s > self._last_poll_s:
            self._total_j += 0.5 * (power_w + self._last_power_w) * (time_s - self._last_poll_s)
            self._append_knot(self._last_poll_s, time_s, self._total_j)
        elif self._last_power_w is None:
            self._append_knot(-math.inf, time_s, 0.0)
        self._last_power_w, self._last_poll_s = power_w, time_s

    def _append_knot(self, a_s: float, b_s: float, energy_j: float) -> None:
        self._k_time.append(b_s)
        self._k_energy.append(energy_j)
        self._k_poll.append((a_s, b_s))
        if self._mode == "counter":
            self._place(len(self._k_time) - 1)

    def _replace_knots(self) -> None:
        """Move the knots that nothing has used yet to the newly estimated update instants."""
        for i in range(max(0, self._frozen + 1 - self._k_base), len(self._k_time)):
            self._place(i)

    def _place(self, i: int) -> None:
        """Put knot i (list index) at its update instant.

        When the poll came too close to an update to tell whether it saw it, the jump
        decides: the candidate whose rate is nearer the previous interval's wins (a
        wrong choice would double or zero one interval's rate).
        """
        times, energies = self._k_time, self._k_energy
        a_s, b_s = self._k_poll[i]
        u_s = self._clock.update_instant(a_s, b_s)
        other_s = self._clock.alternative_instant(a_s, b_s)
        if other_s is not None and i >= 2 and min(u_s, other_s) > times[i - 1]:
            previous_w = (energies[i - 1] - energies[i - 2]) / (times[i - 1] - times[i - 2])
            lo = bisect_right(self._p_time, times[i - 1])
            hi = bisect_right(self._p_time, b_s)
            if hi > lo:  # power read during the jump: a better guess of its rate
                previous_w = sum(self._p_power[lo:hi]) / (hi - lo)
            jump_j = energies[i] - energies[i - 1]

            def misfit(candidate_s: float) -> float:
                rate_w = jump_j / (candidate_s - times[i - 1])
                return abs(math.log(max(rate_w, 1e-12) / max(previous_w, 1e-12)))

            u_s = min(u_s, other_s, key=misfit)
        if i:
            u_s = max(u_s, math.nextafter(times[i - 1], math.inf))
        times[i] = u_s

    # ------------------------------------------------------------------ steps → energies

    def _is_final(self, j: int) -> bool:
        """Knot interval j (ending at knot j) can no longer change."""
        i = j - self._k_base
        if i + _RATE_INTERVALS >= len(self._k_time):
            return False  # the rate right of the interval needs two more knots
        return bool(self._s_end) and self._s_end[-1] >= self._k_time[i]

    def _emit_until(self, stop: int, out: list[StepEnergy], *, final: bool) -> None:
        """Emit the pending steps before list index ``stop``, in order.

        Every step boundary inside a knot interval is a point of that interval's split,
        so a step's end is looked up by walking the split's points: one bisect per knot
        interval, not per step. A step starting where the previous one ended shares its
        value (contiguous steps telescope).
        """
        first = self._next - self._s_base
        if stop <= first:
            return
        steps, starts, ends, times = self._s_step, self._s_start, self._s_end, self._k_time
        lo_s = times[0] if times else math.inf
        hi_s = times[-1] if times else -math.inf
        resolution_s = self._resolution_s()
        anchor_s, anchor_j = self._anchor if self._anchor is not None else (math.nan, 0.0)
        points: list[float] = []
        cumulative: list[float] = []
        k = 0
        u1 = -math.inf
        for idx in range(first, stop):
            start_s, end_s = starts[idx], ends[idx]
            if lo_s < end_s < hi_s:
                if end_s > u1:  # into the next knot interval holding a step end
                    points, cumulative = self._interval(
                        self._k_base + bisect_left(times, end_s), final=final
                    )
                    u1, k = points[-1], 1
                while points[k] < end_s:
                    k += 1
                t0, t1 = points[k - 1], points[k]
                end_j = cumulative[k]
                if t1 != end_s and t1 > t0:  # not a boundary of the split (never, in practice)
                    e0 = cumulative[k - 1]
                    end_j = e0 + (end_j - e0) * (end_s - t0) / (t1 - t0)
            else:
                end_j = self._energy_at(end_s, final=final)
            shared = start_s == anchor_s  # contiguous steps telescope
            start_j = anchor_j if shared else self._energy_at(start_s, final=final)
            anchor_s, anchor_j = end_s, end_j
            interpolated = start_s < lo_s or end_s > hi_s or end_s - start_s < resolution_s
            out.append(StepEnergy(steps[idx], end_j - start_j, interpolated))
        self._anchor = (anchor_s, anchor_j)
        self._next = self._s_base + stop

    def _resolution_s(self) -> float:
        """Time resolution of the curve: the update period, or the mean knot spacing."""
        n = len(self._k_time)
        spacing_s = (self._k_time[-1] - self._k_time[0]) / (n - 1) if n > 1 else 0.0
        return max(spacing_s, self.update_period_s or 0.0)

    def _energy_at(self, t_s: float, *, final: bool) -> float:
        """Ê(t): the reconstructed cumulative energy (extrapolated outside the knots)."""
        times, energies = self._k_time, self._k_energy
        if not times:
            return 0.0
        if t_s <= times[0]:
            return energies[0] - self._edge_rate_w(first=True) * (times[0] - t_s)
        if t_s >= times[-1]:
            return energies[-1] + self._edge_rate_w(first=False) * (t_s - times[-1])
        i = bisect_left(times, t_s)
        points, cumulative = self._interval(self._k_base + i, final=final)
        k = min(bisect_right(points, t_s), len(points) - 1)
        t0, t1 = points[k - 1], points[k]
        e0, e1 = cumulative[k - 1], cumulative[k]
        return e0 + (e1 - e0) * (t_s - t0) / (t1 - t0) if t1 > t0 else e1

    def _edge_rate_w(self, *, first: bool) -> float:
        """Power for extrapolation: the last power reading, else the outermost knots' slope."""
        if not first and self._p_power:
            return self._p_power[-1]
        if first and self._p_power:
            return self._p_power[0]
        times, energies = self._k_time, self._k_energy
        if len(times) < 2:
            return 0.0
        a, b = (
            (0, min(_RATE_INTERVALS, len(times) - 1))
            if first
            else (-1 - min(_RATE_INTERVALS, len(times) - 1), -1)
        )
        return (energies[b] - energies[a]) / (times[b] - times[a])

    def _interval(self, j: int, *, final: bool) -> tuple[list[float], list[float]]:
        """Knot interval j split at step boundaries: (times, cumulative energies)."""
        cached = self._cache.get(j)
        if cached is not None:
            return cached
        if self._scratch_inputs != self._inputs:
            self._scratch.clear()
            self._scratch_inputs = self._inputs
        scratch = self._scratch.get(j)
        if scratch is not None:
            if final and self._is_final(j):
                self._cache[j] = scratch
                self._frozen = max(self._frozen, j)
            return scratch
        i = j - self._k_base
        points, spans = self._segments(i)
        e0, e1 = self._k_energy[i - 1], self._k_energy[i]
        cumulative = [e0]
        if len(points) > 2:
            weights = self._split(points, spans, i)
            total = sum(weights)
            if total <= 0:
                weights, total = [b - a for a, b in pairwise(points)], points[-1] - points[0]
            running, scale = 0.0, (e1 - e0) / total
            for w in weights[:-1]:
                running += w
                cumulative.append(e0 + scale * running)
        cumulative.append(e1)
        if final and self._is_final(j):
            self._cache[j] = (points, cumulative)
            self._frozen = max(self._frozen, j)
        else:
            self._scratch[j] = (points, cumulative)
        return points, cumulative

    def _segments(self, i: int) -> tuple[list[float], list[tuple[float, float]]]:
        """Knot interval i (list index) cut at the step boundaries inside it.

        Returns the cut points (both knots included) and, for each segment, the step or
        gap it lies in as (start, end); ends unknown yet are infinite.
        """
        u0, u1 = self._k_time[i - 1], self._k_time[i]
        starts, ends = self._s_start, self._s_end
        n = len(ends)
        k = bisect_right(ends, u0)
        points = [u0]
        spans: list[tuple[float, float]] = []
        previous_end = ends[k - 1] if k else -math.inf
        while k < n:
            start_s, end_s = starts[k], ends[k]
            if start_s >= u1:
                break
            if start_s > points[-1]:  # a gap before step k
                spans.append((previous_end, start_s))
                points.append(start_s)
            if end_s >= u1:
                spans.append((start_s, end_s))
                points.append(u1)
                return points, spans
            if end_s > points[-1]:
                spans.append((start_s, end_s))
                points.append(end_s)
            previous_end = end_s
            k += 1
        spans.append((previous_end, starts[k] if k < n else math.inf))
        points.append(u1)
        return points, spans

    def _split(
        self, points: Sequence[float], spans: Sequence[tuple[float, float]], i: int
    ) -> list[float]:
        """Energy weights of the segments of knot interval i (list index).

        A segment's rate is the slope of the knots beyond the interval when its step (or
        gap) reaches past the interval's edge, else the mean of the power readings taken
        during its step near the segment, else unknown. Segments with a known rate get
        rate x duration; the others share what is left of the jump in proportion to
        their durations (exact when the known rates are), at no less than a quarter of
        the interval's mean rate.
        """
        times, energies = self._k_time, self._k_energy
        u0, u1 = times[i - 1], times[i]
        jump_j = energies[i] - energies[i - 1]
        # power readings that any segment's window [2a - b, 2b - a] can reach
        p_lo = bisect_left(self._p_time, 2 * u0 - u1)
        p_hi = bisect_right(self._p_time, 2 * u1 - u0)
        p_time, p_power = self._p_time[p_lo:p_hi], self._p_power[p_lo:p_hi]
        last = len(spans) - 1
        weights: list[float] = []
        unknown: list[int] = []
        known_j = unknown_s = 0.0
        for s, (span_start, span_end) in enumerate(spans):
            a, b = points[s], points[s + 1]
            rate_w: float | None = None
            if s == 0 and span_start < a:  # the step reaches left of the interval
                lo = max(i - 1 - _RATE_INTERVALS, bisect_left(times, span_start), 0)
                if lo < i - 1:
                    rate_w = (energies[i - 1] - energies[lo]) / (u0 - times[lo])
            elif s == last and span_end > b:  # the step reaches right of the interval
                hi = min(i + _RATE_INTERVALS, bisect_right(times, span_end) - 1, len(times) - 1)
                if hi > i:
                    rate_w = (energies[hi] - energies[i]) / (times[hi] - u1)
            if rate_w is None and p_time:
                t0_s, t1_s = max(span_start, 2 * a - b), min(span_end, 2 * b - a)
                lo, hi = bisect_left(p_time, t0_s), bisect_right(p_time, t1_s)
                if hi > lo:
                    rate_w = sum(p_power[lo:hi]) / (hi - lo)
            if rate_w is None:
                unknown.append(s)
                unknown_s += b - a
                weights.append(b - a)
            else:
                w = max(rate_w, 0.0) * (b - a)
                known_j += w
                weights.append(w)
        if unknown:
            mean_w = jump_j / (u1 - u0)
            fill_w = max((jump_j - known_j) / unknown_s, 0.25 * mean_w) if unknown_s > 0 else 0.0
            for s in unknown:
                weights[s] *= fill_w
        return weights

    # ------------------------------------------------------------------ memory

    def _trim(self) -> None:
        """Drop history no longer needed (amortized O(1): in chunks)."""
        if not self._k_time:
            return
        pending_s = (
            self._s_start[self._next - self._s_base]
            if self._next - self._s_base < len(self._s_start)
            else math.inf
        )
        cutoff_s = min(pending_s, self._k_time[-1]) - _RETENTION_S
        k = max(
            bisect_left(self._k_time, cutoff_s) - _RATE_INTERVALS - 1,
            len(self._k_time) - _MAX_KNOTS,
        )
        if k > 64 and 2 * k >= len(self._k_time):
            for j in range(self._k_base, self._k_base + k):
                self._cache.pop(j, None)
            del self._k_time[:k], self._k_energy[:k], self._k_poll[:k]
            self._k_base += k
        p = bisect_left(self._p_time, self._k_time[0] - _RETENTION_S)
        if p > 64 and 2 * p >= len(self._p_time):
            del self._p_time[:p], self._p_power[:p]
        s = min(self._next - self._s_base - 1, bisect_left(self._s_end, cutoff_s))
        if s > 64 and 2 * s >= len(self._s_end):
            del self._s_step[:s], self._s_start[:s], self._s_end[:s]
            self._s_base += s
