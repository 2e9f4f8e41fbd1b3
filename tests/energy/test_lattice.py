"""When a stale counter updates, fitted from when its value changes (greenprof.energy.lattice)."""

from __future__ import annotations

import math

import pytest

from greenprof.energy import StepAttributor
from tests.energy.simulation import simulate


@pytest.mark.parametrize(("period_s", "poll_s"), [(0.1, 0.1), (0.02, 0.015)])
def test_update_period_is_detected_from_dithered_polls(period_s: float, poll_s: float) -> None:
    duration_s = 300 * poll_s
    sim = simulate([duration_s], [250.0], period_s=period_s, poll_s=poll_s, phase_s=0.3 * period_s)
    attributor = StepAttributor()
    assert attributor.update_period_s is None
    for reading in sim.readings:
        attributor.add_reading(reading)
    assert attributor.update_period_s == pytest.approx(period_s, rel=2e-3)


@pytest.mark.parametrize(
    "seed",
    [
        pytest.param(
            3,
            marks=pytest.mark.xfail(
                strict=True, reason="known: lattice 47-50 ms off after 20 s, before and after"
            ),
        ),
        5,
    ],
)
def test_update_lattice_stays_on_the_updates_at_the_latest_polls(seed: int) -> None:
    """Regression: the lattice used to be the period with the widest phase slack, which can
    lie at one end of the consistent range; 10-15 s past the fit window's middle it was 3-5
    ms off, enough to put an ambiguous knot a whole period early (a 1 s step 9.7 % off in
    live order, its 161 ms neighbour 54 %). Placing the lattice in the middle of the
    consistent range at the latest poll keeps it within a few ms; ambiguous knots are then
    decided by the power read during the jump."""
    period_s, phase_s = 0.1, 0.0371
    sim = simulate([70.0], [250.0], period_s=period_s, phase_s=phase_s, seed=seed)
    attributor = StepAttributor()
    worst_ms = 0.0
    for reading in sim.readings:
        attributor.add_reading(reading)
        lattice = attributor.curve.lattice
        if lattice.period_s is None or reading.time_s < 20.0:  # acquisition is not at issue
            continue
        t_s = reading.time_s  # the estimated update just before the latest poll vs the true one
        u_s = (
            lattice.phase_s
            + math.floor((t_s - lattice.phase_s) / lattice.period_s) * lattice.period_s
        )
        true_s = phase_s + round((u_s - phase_s) / period_s) * period_s
        worst_ms = max(worst_ms, 1e3 * abs(u_s - true_s))
    assert worst_ms < 4.5  # seed 5: 3.7 ms now, 5.7 ms with the widest-slack period


def _lock_time(sim_seed: int, declared_s: float | None, period_s: float = 0.1) -> float:
    """When the lattice is first known, feeding a 100 ms counter polled at ~10 Hz."""
    sim = simulate([30.0], [250.0], period_s=period_s, phase_s=0.0371, seed=sim_seed)
    attributor = StepAttributor(update_period_s=declared_s)
    for reading in sim.readings:
        attributor.add_reading(reading)
        if attributor.update_period_s is not None:
            return reading.time_s
    return math.inf


def test_a_declared_period_locks_the_lattice_sooner_and_on_the_updates() -> None:
    seeds = range(8)
    undeclared = [_lock_time(seed, None) for seed in seeds]
    declared = [_lock_time(seed, 0.1) for seed in seeds]
    assert all(d <= u for d, u in zip(declared, undeclared, strict=True))
    assert sum(declared) < 0.8 * sum(undeclared)
    assert sorted(declared)[len(declared) // 2] < 3.5  # the phase is pinned in ~3 s of polls
    sim = simulate([30.0], [250.0], phase_s=0.0371, seed=0)
    attributor = StepAttributor(update_period_s=0.1)
    lattice = attributor.curve.lattice
    for reading in sim.readings:
        attributor.add_reading(reading)
        if lattice.period_s is not None:
            break
    assert lattice.period_s == 0.1
    t_s = reading.time_s  # the estimated update before the latest poll, vs the truth
    u_s = lattice.update_instant(t_s - 0.1, t_s)
    assert abs((u_s - 0.0371 + 0.05) % 0.1 - 0.05) < 0.005  # within half the allowed spread


def test_a_declared_period_the_polls_contradict_is_not_used() -> None:
    """A 100 ms declared period on a counter that updates every 20 ms (some drivers): the
    counter changes at every poll, so there is no lattice to lock, declared or not."""
    assert _lock_time(0, 0.1, period_s=0.02) == math.inf
    assert _lock_time(0, 0.05, period_s=0.1) == _lock_time(0, None, period_s=0.1)
