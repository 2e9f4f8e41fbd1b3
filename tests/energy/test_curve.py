"""Readings as knots of the cumulative energy curve (greenprof.energy.curve)."""

from __future__ import annotations

import pytest

from greenprof.energy.curve import KnotCurve
from greenprof.records import Reading
from tests.energy.simulation import simulate


def test_power_readings_become_knots_by_the_trapezoid_rule() -> None:
    curve = KnotCurve()
    for t_s, p_w in [(0.0, 100.0), (1.0, 200.0), (3.0, 200.0)]:
        curve.add_reading(Reading("gpu:0", t_s, None, p_w))
    assert curve.mode == "power"
    assert (curve.times, curve.energies) == ([0.0, 1.0, 3.0], [0.0, 150.0, 550.0])
    assert curve.update_period_s is None


def test_stale_counter_knots_move_from_polls_to_update_instants() -> None:
    """A knot means "this was the energy at the last update", so once the lattice is known
    it sits on an update instant, not at the poll that saw it."""
    sim = simulate([20.0], [250.0], period_s=0.1, phase_s=0.037, power=False)
    curve = KnotCurve()
    for reading in sim.readings:
        curve.add_reading(reading)
    assert curve.update_period_s == pytest.approx(0.1, rel=1e-3)
    offsets_ms = [1e3 * ((t - 0.037 + 0.05) % 0.1 - 0.05) for t in curve.times[-50:]]
    assert max(abs(o) for o in offsets_ms) < 4.0
    assert curve.total_j == pytest.approx(curve.energies[-1])


def test_the_knots_value_is_the_counters_energy_whatever_its_origin() -> None:
    curve = KnotCurve()
    for k, raw_j in enumerate([5000.0, 5020.0, 5045.0]):
        curve.add_reading(Reading("gpu:0", 0.1 * k, raw_j, None))
    assert curve.energies == [0.0, 20.0, 45.0]
