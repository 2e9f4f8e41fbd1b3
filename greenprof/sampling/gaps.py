"""Poll gaps and measured update periods, from the readings themselves (pure).

A step's energy is measured only as finely as the readings around it: a step inside a
long silence of its device (the helper process or the training process could not
poll, a wedged driver, a starved thread) leans on interpolation over that silence.
:class:`GapTracker` finds those silences per device from the valid readings' own
timestamps (so it sees the same thing wherever the sensor was read), keeps the longest
and counts the long ones, and hands each long gap out once (:meth:`GapTracker.drain`) so
the steps it touches can be given a larger uncertainty.

:class:`PeriodTracker` measures how often each device's value changes (the counter's
update period), which is how long ``stop()`` must keep reading for the last step to be
measured rather than extrapolated (issue 14, item 5).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from greenprof.records import Reading

LONG_GAP_POLLS: Final = 2.0
"""A time between two valid readings longer than this many poll intervals is a long gap
(the schedule's dither moves a poll by at most ±20 %, a loaded machine by a few ms)."""
KEPT_GAPS: Final = 1024
"""Long gaps waiting to be drained, per tracker (the oldest are dropped beyond this;
they stay counted)."""
PERIOD_CHANGES: Final = 32
"""A device's update period is the median of its last this many intervals between
value changes."""
SETTLE_FACTOR: Final = 1.2
"""``stop()`` reads for this many update periods after the last step ..."""
MAX_SETTLE_S: Final = 1.5
"""... but never longer than this (issue 14, item 5)."""


@dataclass(frozen=True, slots=True)
class PollGap:
    """A silence of one device: no valid reading between ``start_s`` and ``end_s``
    (the times of the readings on either side, ``time.monotonic`` seconds)."""

    device: str
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class GapTracker:
    """Finds long gaps between consecutive valid readings of each device.

    Not thread-safe: one thread adds (the sampler's delivery), others read snapshots of
    the counters (single ints and floats).
    """

    def __init__(self, interval_s: float, *, factor: float = LONG_GAP_POLLS) -> None:
        self.threshold_s = factor * interval_s
        self._last_s: dict[str, float] = {}
        self.longest_s: dict[str, float] = {}
        self.long_gaps: dict[str, int] = {}
        self._pending: deque[PollGap] = deque(maxlen=KEPT_GAPS)

    def add(self, readings: Iterable[Reading]) -> None:
        """Account for readings in time order per device (as the sampler delivers them)."""
        for reading in readings:
            device, time_s = reading.device, reading.time_s
            last_s = self._last_s.get(device)
            self._last_s[device] = time_s if last_s is None else max(last_s, time_s)
            if last_s is None:
                continue
            gap_s = time_s - last_s
            if gap_s > self.longest_s.get(device, 0.0):
                self.longest_s[device] = gap_s
            if gap_s > self.threshold_s:
                self.long_gaps[device] = self.long_gaps.get(device, 0) + 1
                self._pending.append(PollGap(device, last_s, time_s))

    def drain(self) -> list[PollGap]:
        """The long gaps found since the last call, oldest first."""
        gaps = list(self._pending)
        self._pending.clear()
        return gaps


class PeriodTracker:
    """Measures each device's update period: the median time between value changes.

    A counter that changes at every read measures the poll interval instead (an upper
    bound of its period: still long enough to wait for)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float | None, float | None]] = {}
        self._changed_s: dict[str, float] = {}
        self._intervals: dict[str, deque[float]] = {}

    def add(self, readings: Iterable[Reading]) -> None:
        """Account for readings in time order per device."""
        for reading in readings:
            device = reading.device
            value = (reading.energy_j, reading.power_w)
            last = self._last.get(device)
            self._last[device] = (reading.time_s, *value)
            if last is None or last[1:] == value:
                continue
            changed_s = self._changed_s.get(device)
            self._changed_s[device] = reading.time_s
            if changed_s is not None:
                intervals = self._intervals.setdefault(device, deque(maxlen=PERIOD_CHANGES))
                intervals.append(reading.time_s - changed_s)

    def period_s(self, device: str) -> float | None:
        """The measured update period (None: fewer than two changes seen)."""
        intervals = self._intervals.get(device)
        if not intervals:
            return None
        ordered = sorted(intervals)  # statistics.median: 30 ms more at ``import greenprof``
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def settle_s(
    measured_s: Mapping[str, float | None],
    declared_s: Mapping[str, float | None],
    *,
    factor: float = SETTLE_FACTOR,
    cap_s: float = MAX_SETTLE_S,
) -> float:
    """How long ``stop()`` should keep reading: ``factor`` × the longest update period
    (measured where known, else declared), at most ``cap_s``; 0 without any period."""
    periods = [
        period
        for device in {*measured_s, *declared_s}
        if (period := measured_s.get(device) or declared_s.get(device))
    ]
    return min(cap_s, factor * max(periods, default=0.0))
