"""What the sampler reports about each device, its callbacks' types and its time bounds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from greenprof.records import Reading
from greenprof.sensors.guard import GuardStats

ReadingsConsumer = Callable[[list[Reading]], None]
RejectedCallback = Callable[[str, float, str], None]
"""``(device, time_s, reason)`` for each rejected or repaired reading."""

STOP_GRACE_S: Final = 1.5
""":meth:`ThreadSampler.stop` returns within ``settle_s`` plus this, whatever the sensors do
(the issue's bound is 2 s; the rest is left for the consumer's last calls). It covers one
final poll waiting ``read_timeout_s`` (≤ 1 s) for a sensor that wedges just then."""
JOIN_TIMEOUT_S: Final = 10.0
"""How long :meth:`ThreadSampler.stop` waits for a consumer call in progress (sensors cannot
hold the thread: it never waits for them once stop is called)."""
MIN_READ_TIMEOUT_S: Final = 0.5
MAX_READ_TIMEOUT_S: Final = 1.0
"""The default read bound is 5 polls, kept within these: a healthy sensor answers in
milliseconds, a loaded machine may not schedule a reader for a few hundred (a false
"wedged" costs a skipped poll and a note on the run), and a poll waits this long only
once per wedged sensor."""


def default_read_timeout_s(interval_s: float) -> float:
    """How long a poll waits for a sensor's read by default: 5 intervals, 0.5–1 s."""
    return min(MAX_READ_TIMEOUT_S, max(MIN_READ_TIMEOUT_S, 5.0 * interval_s))


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """A snapshot of one device's sensor, for deciding whether to wait for it.

    ``last_good_s`` and ``silent_s`` are on the sampler's clock (``time.monotonic`` by
    default, the clock of ``Reading.time_s`` too).
    """

    device: str
    wedged: bool
    """A read has not returned within ``read_timeout_s``; the sensor is skipped until it does."""
    failing: bool
    """The last read raised, or gave nothing that passed the guard."""
    last_good_s: float | None
    """When the last valid reading was handed to the consumer (None: never)."""
    silent_s: float | None
    """Seconds since then, at the time of the snapshot (None: never a valid reading)."""
    stats: GuardStats
    """Rejections and repairs of its readings, read errors and timeouts, by reason."""
    longest_gap_s: float = 0.0
    """The longest time between two of its valid readings so far (s; 0: fewer than two)."""
    long_gaps: int = 0
    """How many times two consecutive valid readings were more than
    :data:`~greenprof.sampling.gaps.LONG_GAP_POLLS` intervals apart (the steps inside such
    a gap lean on interpolation over it: see :meth:`greenprof.sampler.Sampler.drain_gaps`)."""
    update_period_s: float | None = None
    """How often its value was seen to change (s; None: not measured yet), the period the
    stop settle waits for (:meth:`greenprof.sampler.Sampler.settle_s`)."""
    in_helper: bool = False
    """Read in the helper process (False: on a thread of the training process)."""

    @property
    def ok(self) -> bool:
        return not (self.wedged or self.failing)


DeviceState = tuple[bool, bool, dict[str, int], int, str | None, float | None, float | None]
"""A device's health as sent: wedged, failing, then the guard's stats (counts by reason,
passed, last problem, first and last problem times)."""


def state_of(health: DeviceHealth) -> DeviceState:
    stats = health.stats
    return (
        health.wedged,
        health.failing,
        dict(stats.counts),
        stats.passed,
        stats.last_problem,
        stats.first_problem_s,
        stats.last_problem_s,
    )


def from_state(
    device: str, state: DeviceState | None, last_good_s: float | None, now_s: float
) -> DeviceHealth:
    """The health of a device read in the helper process, from the state it last sent
    (None: nothing yet) and when its last valid reading was handed on here."""
    wedged, failing, counts, passed, last, first_s, last_s = state or (
        False,
        False,
        {},
        0,
        None,
        None,
        None,
    )
    stats = GuardStats(device, MappingProxyType(counts), passed, last, first_s, last_s)
    silent_s = None if last_good_s is None else now_s - last_good_s
    return DeviceHealth(device, wedged, failing, last_good_s, silent_s, stats, in_helper=True)
