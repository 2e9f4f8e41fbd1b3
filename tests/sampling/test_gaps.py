"""Poll gaps, measured update periods and the stop settle, from readings (pure)."""

from __future__ import annotations

import pytest

from greenprof.records import Reading
from greenprof.sampling.gaps import MAX_SETTLE_S, GapTracker, PeriodTracker, PollGap, settle_s


def counter(device: str, times: list[float], energies: list[float]) -> list[Reading]:
    return [Reading(device, t, e, None) for t, e in zip(times, energies, strict=True)]


def test_long_gaps_are_counted_kept_and_handed_out_once_per_device() -> None:
    tracker = GapTracker(0.1)
    tracker.add(counter("gpu:0", [0.0, 0.1, 0.2, 0.9, 1.0], [0, 1, 2, 3, 4]))
    tracker.add(counter("cpu:0", [0.0, 0.19, 0.38], [0, 1, 2]))  # 1.9 intervals: not long
    tracker.add(counter("gpu:0", [2.2], [5]))
    assert tracker.long_gaps == {"gpu:0": 2}
    assert tracker.longest_s["gpu:0"] == pytest.approx(1.2)
    assert tracker.longest_s["cpu:0"] == pytest.approx(0.19)
    assert tracker.drain() == [PollGap("gpu:0", 0.2, 0.9), PollGap("gpu:0", 1.0, 2.2)]
    assert tracker.drain() == []


def test_the_update_period_is_the_median_time_between_value_changes() -> None:
    tracker = PeriodTracker()
    times = [i * 0.1 for i in range(40)]
    energies = [float(int(t)) for t in times]  # changes once a second, polled at 10 Hz
    tracker.add(counter("gpu:0", times, energies))
    period = tracker.period_s("gpu:0")
    assert period == pytest.approx(1.0)
    assert tracker.period_s("cpu:0") is None


def test_settle_waits_1_2_periods_measured_else_declared_at_most_1_5_s() -> None:
    assert settle_s({"gpu:0": 0.1}, {"gpu:0": 0.5}) == pytest.approx(0.12)
    assert settle_s({"gpu:0": None}, {"gpu:0": 0.5}) == pytest.approx(0.6)
    assert settle_s({"gpu:0": 1.0, "cpu:0": 0.001}, {}) == pytest.approx(1.2)
    assert settle_s({"gpu:0": 2.0}, {}) == MAX_SETTLE_S
    assert settle_s({}, {"gpu:0": None}) == 0.0
