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
RATE_FLOOR_W = 1e-12
"""Rates are compared on a log scale; this keeps a zero rate finite."""

_Knots = tuple[list[float], list[float], list[tuple[float, float]]]
_PowerReadings = tuple[list[float], list[float]]


class KnotCurve:
    """Knots of one device's cumulative energy curve, from its readings in time order.

    Example::

        curve = KnotCurve()
        for k in range(40):  # a stale counter read at 10 Hz
            curve.add_reading(Reading("gpu:0", 0.1 * k, 25.0 * (k // 2), None))
        curve.times[-1], curve.energies[-1]  # the latest knot
    """

    def __init__(self, *, update_period_s: float | None = None) -> None:
        self.lattice = UpdateLattice(update_period_s)
        self.mode: Literal["counter", "power"] | None = None
        """Set by the first reading with a value: a counter when it has ``energy_j``."""
        self.total_j = 0.0
        """Energy between the first and the latest reading (the latest knot's value)."""
        self._last_raw_j = 0.0
        self._last_poll_s = -math.inf
        self._last_power_w: float | None = None
        self.knots: RowBuffer[_Knots] = RowBuffer(([], [], []))
        # knot instants (update instants, increasing), cumulative energies (J), and the
        # poll interval (a, b] each came from
        self.times, self.energies, self.polls = self.knots.columns
        self.frozen = -1
        """Run-wide index of the last knot that something final was derived from: it and
        the knots before it never move again."""
        self.readings: RowBuffer[_PowerReadings] = RowBuffer(([], []))
        # instantaneous power readings (times and W), for splitting jumps
        self.power_times, self.powers = self.readings.columns

    @property
    def update_period_s(self) -> float | None:
        """Detected update period of the counter (None until known, or for power)."""
        return self.lattice.period_s if self.mode == "counter" else None

    def add_reading(self, reading: Reading) -> None:
        """Add one reading of this device (in time order)."""
        if reading.power_w is not None:
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
                self.total_j += counter_delta(self._last_raw_j, raw_j)
                self._append_knot(self._last_poll_s, time_s, self.total_j)
        self._last_raw_j, self._last_poll_s = raw_j, time_s

    def _add_power(self, time_s: float, power_w: float | None) -> None:
        if power_w is None:
            return
        if self._last_power_w is not None and time_s > self._last_poll_s:
            self.total_j += 0.5 * (power_w + self._last_power_w) * (time_s - self._last_poll_s)
            self._append_knot(self._last_poll_s, time_s, self.total_j)
        elif self._last_power_w is None:
            self._append_knot(-math.inf, time_s, 0.0)
        self._last_power_w, self._last_poll_s = power_w, time_s

    def _append_knot(self, a_s: float, b_s: float, energy_j: float) -> None:
        self.times.append(b_s)
        self.energies.append(energy_j)
        self.polls.append((a_s, b_s))
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
            hi = bisect_right(self.power_times, b_s)
            if hi > lo:  # power read during the jump: a better guess of its rate
                previous_w = sum(self.powers[lo:hi]) / (hi - lo)
            jump_j = energies[i] - energies[i - 1]

            def misfit(candidate_s: float) -> float:
                rate_w = jump_j / (candidate_s - times[i - 1])
                return abs(math.log(max(rate_w, RATE_FLOOR_W) / max(previous_w, RATE_FLOOR_W)))

            u_s = min(u_s, other_s, key=misfit)
        if i:
            u_s = max(u_s, math.nextafter(times[i - 1], math.inf))
        times[i] = u_s
