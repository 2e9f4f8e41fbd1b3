"""Raw values to energy: counter deltas and power integration (greenprof.energy.counter)."""

from __future__ import annotations

import pytest

from greenprof.energy import counter_delta, integrate_power


def test_counter_delta_increase_wrap_and_reset() -> None:
    assert counter_delta(10.0, 12.5) == 2.5
    assert counter_delta(5.0, 5.0) == 0.0
    assert counter_delta(262_140.0, 4.0, wrap_j=262_144.0) == pytest.approx(8.0)
    assert counter_delta(500.0, 3.0) == 3.0  # a reset: only the energy since it is known


def test_integrate_power_is_exact_on_linear_power() -> None:
    times = [0.0, 0.13, 0.5, 1.1, 2.0, 3.7]
    powers = [100.0 + 50.0 * t for t in times]
    expected = [100.0 * t + 25.0 * t * t for t in times]
    assert integrate_power(times, powers) == pytest.approx(expected, rel=1e-12)
    assert integrate_power([], []) == []
    with pytest.raises(ValueError, match="same length"):
        integrate_power([0.0, 1.0], [1.0])
