"""The knot curve: one device's readings as points of its cumulative energy curve E(t).

A device reports either a cumulative energy counter (NVML total energy, RAPL) or only its
power (then the polled power is integrated with the trapezoid rule, the
``power_integration`` method). Either way the readings give *knots*: points ``(time,
cumulative energy)`` of one monotone curve. A counter's knot is placed at the last update
instant inside its poll interval (:mod:`greenprof.energy.lattice`), not at the poll: the
value read is the energy at that update. Until the lattice is known, knots sit at poll
times; when it is (re)estimated, the knots nothing has used yet move to it.

The curve keeps its knots and the instantaneous power readings (used to split jumps, see
:mod:`greenprof.energy.split`) in :class:`~greenprof.energy.buffer.RowBuffer` histories.
It knows nothing of steps.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from typing import Literal

from greenprof.energy.buffer import RowBuffer
from greenprof.energy.counter import counter_delta
from greenprof.energy.lattice import UpdateLattice
from greenprof.records import Reading

__all__ = ["RATE_INTERVALS", "KnotCurve"]

RATE_INTERVALS = 2
"""Knot intervals on each side of a boundary used to estimate a step's energy rate (and the
edge rate for extrapolation): one interval's slope carries one update's timing error, two
halve it, more would blur a power change at a step boundary."""
AVERAGED_MIN_S = 0.2
"""Power readings averaged over at least this long are moving averages (NVML's 1 s
GetPowerUsage), not instantaneous: a shorter window is a duty-cycled sample."""
NOISE_SAMPLES = 200
"""Recent knot intervals whose slope noise measures a fast counter's staleness."""
MIN_NOISE_SAMPLES = 20
"""No staleness estimate from fewer slopes (about 2 s at 10 Hz)."""
NOISE_TO_TIMING = 3.6
"""0.95 / 0.262: from the median slope noise to the 95th percentile of staleness (for a
staleness spread evenly over ``[0, D]``; computed, see :meth:`KnotCurve.timing_noise_s`)."""
RESET_RATE_MARGIN = 0.5
"""A counter reset's jump is estimated from the recent rate; its bound is this fraction of
the estimate (the power between the last update and the reset is not measured)."""
DUTY_READINGS = 10
"""Recent power readings whose spread measures how much power varies between them."""
DUTY_FACTOR = 0.5
"""A duty-cycled power sensor (its averaging window shorter than the poll interval) misses
part of each interval: the jump's bound grows by this x the unseen fraction x the recent
spread of power x the interval."""
RATE_FLOOR_W = 1e-12
"""Rates are compared on a log scale; this keeps a zero rate finite."""

_Knots = tuple[list[float], list[float], list[tuple[float, float]], list[float]]
_PowerReadings = tuple[list[float], list[float]]


class KnotCurve:
    """Knots of one device's cumulative energy curve, from its readings in time order.

    Example::

        curve = KnotCurve()
        for k in range(40):  # a stale counter read at 10 Hz
            curve.add_reading(Reading("gpu:0", 0.1 * k, 25.0 * (k // 2), None))
        curve.times[-1], curve.energies[-1]  # the latest knot
    """

    def __init__(
        self, *, update_period_s: float | None = None, power_window_s: float | None = None
    ) -> None:
        self.lattice = UpdateLattice(update_period_s)
        self.declared_period_s = update_period_s
        """The sensor's declared update period (a prior; None: not declared)."""
        self.power_window_s = power_window_s
        """What the sensor's power readings average over (None or 0: instantaneous)."""
        self.resets: list[tuple[float, float]] = []
        """Counter resets (it went backwards: a driver reload): from the last knot before
        to the poll that saw it."""
        self.mode: Literal["counter", "power"] | None = None
        """Set by the first reading with a value: a counter when it has ``energy_j``."""
        self.total_j = 0.0
        """Energy between the first and the latest reading (the latest knot's value)."""
        self._last_raw_j = 0.0
        self._last_poll_s = -math.inf
        self._last_power_w: float | None = None
        self._recent_w: deque[float] = deque(maxlen=DUTY_READINGS)
        self._slope_noise_s: deque[float] = deque(maxlen=NOISE_SAMPLES)
        self._timing_noise_s: float | None = None
        self.knots: RowBuffer[_Knots] = RowBuffer(([], [], [], []))
        # knot instants (update instants, increasing), cumulative energies (J), the poll
        # interval (a, b] each came from, and the running sum of the squared bounds on the
        # knot intervals' jumps (J^2; see greenprof.energy.uncertainty: the interior term)
        self.times, self.energies, self.polls, self.jump_j2 = self.knots.columns
        self.frozen = -1
        """Run-wide index of the last knot that something final was derived from: it and
        the knots before it never move again."""
        self.readings: RowBuffer[_PowerReadings] = RowBuffer(([], []))
        # instantaneous power readings (times and W), for splitting jumps
        self.power_times, self.powers = self.readings.columns
        self.gap_starts: list[float] = []
        self.gap_ends: list[float] = []
        """Long silences of the device (from ``gap_starts[k]`` to ``gap_ends[k]``, the
        readings either side, in time order; see :meth:`note_gap`): nothing was read
        there, so power may have left the range its neighbours show."""

    @property
    def update_period_s(self) -> float | None:
        """Detected update period of the counter (None until known, or for power)."""
        return self.lattice.period_s if self.mode == "counter" else None

    @property
    def averaged(self) -> bool:
        """Power readings are moving averages over :attr:`power_window_s` (at least
        :data:`AVERAGED_MIN_S`): each is placed at the middle of its window, and none is
        taken as an instantaneous rate."""
        return (self.power_window_s or 0.0) >= AVERAGED_MIN_S

    @property
    def duty_cycled(self) -> bool:
        """Power readings average a window shorter than :data:`AVERAGED_MIN_S`: a sample of
        part of each poll interval, too noisy to split jumps with (measured: worse than a
        linear split on compute/communication alternation); only integrated."""
        return 0.0 < (self.power_window_s or 0.0) < AVERAGED_MIN_S

    def add_reading(self, reading: Reading) -> None:
        """Add one reading of this device (in time order)."""
        if reading.power_w is not None and self.averaged:
            # an average over the last window: its energy is the curve's rise over that
            # window, so it is the rate at the window's middle, not at the poll
            reading = Reading(
                reading.device,
                reading.time_s - 0.5 * (self.power_window_s or 0.0),
                reading.energy_j,
                reading.power_w,
            )
            if reading.energy_j is None:
                self.mode = self.mode or "power"
                self._add_power(reading.time_s, reading.power_w)
                return
        if reading.power_w is not None and not self.duty_cycled:
            self.power_times.append(reading.time_s)
            self.powers.append(reading.power_w)
        if self.mode is None:
            if reading.energy_j is None and reading.power_w is None:
                return
            self.mode = "counter" if reading.energy_j is not None else "power"
        if self.mode == "counter":
            self._add_counter(reading.time_s, reading.energy_j)
        else:
            self._add_power(reading.time_s, reading.power_w)

    def note_gap(self, start_s: float, end_s: float) -> None:
        """The device was not read between ``start_s`` and ``end_s`` (a poll gap the
        sampler found: :class:`~greenprof.sampling.gaps.GapTracker`); in time order."""
        if end_s > start_s and (not self.gap_ends or start_s >= self.gap_ends[-1]):
            self.gap_starts.append(start_s)
            self.gap_ends.append(end_s)

    def in_gap(self, t0_s: float, t1_s: float) -> bool:
        """Whether ``(t0_s, t1_s)`` overlaps a noted gap (one bisect: gaps do not overlap)."""
        k = bisect_right(self.gap_ends, t0_s)
        return k < len(self.gap_ends) and self.gap_starts[k] < t1_s

    def forget_gaps_before(self, time_s: float) -> None:
        """Drop gaps that ended before ``time_s`` (history trimmed)."""
        k = bisect_right(self.gap_ends, time_s)
        if k:
            del self.gap_starts[:k], self.gap_ends[:k]

    def resolution_s(self) -> float:
        """Time resolution of the curve: the update period, or the mean knot spacing."""
        times = self.times
        n = len(times)
        spacing_s = (times[-1] - times[0]) / (n - 1) if n > 1 else 0.0
        return max(spacing_s, self.update_period_s or 0.0)

    def edge_rate_w(self, *, first: bool) -> float:
        """Power for extrapolation: the last power reading, else the outermost knots' slope."""
        if not first and self.powers:
            return self.powers[-1]
        if first and self.powers:
            return self.powers[0]
        times, energies = self.times, self.energies
        if len(times) < 2:
            return 0.0
        a, b = (
            (0, min(RATE_INTERVALS, len(times) - 1))
            if first
            else (-1 - min(RATE_INTERVALS, len(times) - 1), -1)
        )
        return (energies[b] - energies[a]) / (times[b] - times[a])

    # ------------------------------------------------------------------ readings → knots

    def _add_counter(self, time_s: float, raw_j: float | None) -> None:
        if raw_j is None:
            return
        if not self.times:
            self._append_knot(-math.inf, time_s, 0.0)
        else:
            changed = raw_j != self._last_raw_j
            if self.lattice.observe(self._last_poll_s, time_s, changed):
                self._replace_knots()
            if changed:
                jump_j, bound_j = counter_delta(self._last_raw_j, raw_j), 0.0
                if raw_j < self._last_raw_j:
                    jump_j, bound_j = self._reset_jump(time_s, raw_j)
                self.total_j += jump_j
                self._append_knot(self._last_poll_s, time_s, self.total_j, bound_j)
                self._note_slope_noise()
        self._last_raw_j, self._last_poll_s = raw_j, time_s

    def _note_slope_noise(self) -> None:
        """How much the latest knot interval's slope departs from the two-interval mean,
        in seconds of knot timing (see :meth:`timing_noise_s`)."""
        times, energies = self.times, self.energies
        if len(times) < 3 or self.lattice.period_s is not None:
            return
        span_s, last_s = times[-1] - times[-3], times[-1] - times[-2]
        if span_s <= 0 or last_s <= 0:
            return
        mean_w = (energies[-1] - energies[-3]) / span_s
        if mean_w > 0:
            slope_w = (energies[-1] - energies[-2]) / last_s
            noise = self._slope_noise_s
            noise.append(abs(slope_w - mean_w) / mean_w * last_s)
            if len(noise) >= MIN_NOISE_SAMPLES:
                self._timing_noise_s = NOISE_TO_TIMING * sorted(noise)[len(noise) // 2]

    def timing_noise_s(self) -> float | None:
        """Bound (95 %) on how far a knot placed at its poll lies from its update instant,
        from the slopes' noise, for a counter that changes at every poll (no lattice, no
        unchanged poll to tell its staleness). If each value is stale by an independent
        amount in ``[0, D]``, a slope departs from the two-interval mean by
        ``|d_k - 2 d_(k-1) + d_(k-2)| / 2`` of its interval: median ``0.262 D``; so
        ``0.95 D`` is :data:`NOISE_TO_TIMING` x that median. Power changing inside
        intervals only makes it larger (conservative). None until enough knots are seen.
        """
        return self._timing_noise_s

    def _reset_jump(self, time_s: float, raw_j: float) -> tuple[float, float]:
        """The jump across a counter reset, and a bound on its error.

        After a reset the counter holds only the energy since the reset: the energy from
        the last update to the reset is lost. The jump is the larger of that value and the
        recent rate times the time since the last knot (the counter cannot have drawn
        less); its error bound is :data:`RESET_RATE_MARGIN` of the latter.
        """
        times = self.times
        self.resets.append((times[-1], time_s))
        u_s = self.lattice.update_instant(self._last_poll_s, time_s)
        elapsed_s = max(u_s - times[-1], 0.0)
        jump_j = max(raw_j, max(self.edge_rate_w(first=False), 0.0) * elapsed_s)
        return jump_j, RESET_RATE_MARGIN * jump_j

    def _add_power(self, time_s: float, power_w: float | None) -> None:
        if power_w is None:
            return
        if self._last_power_w is not None and time_s > self._last_poll_s:
            dt_s = time_s - self._last_poll_s
            self.total_j += 0.5 * (power_w + self._last_power_w) * dt_s
            bound_j = 0.5 * abs(power_w - self._last_power_w) * dt_s
            window_s = self.power_window_s or 0.0
            if 0.0 < window_s < dt_s:  # duty-cycled: the sensor saw only part of the interval
                self._recent_w.append(power_w)
                spread_w = max(self._recent_w) - min(self._recent_w)
                bound_j += DUTY_FACTOR * (1.0 - window_s / dt_s) * spread_w * dt_s
            self._append_knot(self._last_poll_s, time_s, self.total_j, bound_j)
        elif self._last_power_w is None:
            self._append_knot(-math.inf, time_s, 0.0)
        self._last_power_w, self._last_poll_s = power_w, time_s

    def _append_knot(self, a_s: float, b_s: float, energy_j: float, bound_j: float = 0.0) -> None:
        self.times.append(b_s)
        self.energies.append(energy_j)
        self.polls.append((a_s, b_s))
        self.jump_j2.append((self.jump_j2[-1] if self.jump_j2 else 0.0) + bound_j * bound_j)
        if self.mode == "counter":
            self._place(len(self.times) - 1)

    def _replace_knots(self) -> None:
        """Move the knots that nothing has used yet to the newly estimated update instants."""
        for i in range(max(0, self.frozen + 1 - self.knots.base), len(self.times)):
            self._place(i)

    def _place(self, i: int) -> None:
        """Put knot i (position) at its update instant.

        When the poll came too close to an update to tell whether it saw it, the jump
        decides: the candidate whose rate is nearer the previous interval's wins (a
        wrong choice would double or zero one interval's rate).
        """
        times, energies = self.times, self.energies
        a_s, b_s = self.polls[i]
        u_s = self.lattice.update_instant(a_s, b_s)
        other_s = self.lattice.alternative_instant(a_s, b_s)
        if other_s is not None and i >= 2 and min(u_s, other_s) > times[i - 1]:
            previous_w = (energies[i - 1] - energies[i - 2]) / (times[i - 1] - times[i - 2])
            lo = bisect_right(self.power_times, times[i - 1])
            jump_j = energies[i] - energies[i - 1]

            def misfit(candidate_s: float) -> float:
                # power read during the jump as this candidate places it: its rate's best guess
                hi = bisect_right(self.power_times, candidate_s)
                expected_w = sum(self.powers[lo:hi]) / (hi - lo) if hi > lo else previous_w
                rate_w = jump_j / (candidate_s - times[i - 1])
                return abs(math.log(max(rate_w, RATE_FLOOR_W) / max(expected_w, RATE_FLOOR_W)))

            u_s = min(u_s, other_s, key=misfit)
        if i:
            u_s = max(u_s, math.nextafter(times[i - 1], math.inf))
        times[i] = u_s
