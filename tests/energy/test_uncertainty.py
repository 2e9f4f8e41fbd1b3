"""Per-step uncertainty and averaged power (greenprof.energy.uncertainty, curve): what a
user relies on: the stated bound holds, sums over windows stay tight, and a 1 s moving
average of power is not integrated as if it were instantaneous."""

from __future__ import annotations

import pytest

from greenprof.energy import Bounds, StepAttributor, window_uncertainty_j
from greenprof.records import Reading, StepRecord
from tests.energy.simulation import levels_25pct, run, simulate


def test_the_bound_covers_the_true_error_of_nearly_every_step() -> None:
    lengths = [0.05, 1.3, 0.25, 0.6, 2.0, 0.4, 0.12, 1.0] * 6
    sim = simulate(lengths, levels_25pct(len(lengths), seed=9), seed=9, gaps_s=[0.0, 0.1] * 24)
    results, _ = run(sim, update_period_s=0.1)
    covered = [
        abs(r.energy_j - sim.truth(start, end)) <= r.energy_uncertainty_j
        for r, (_, start, end) in zip(results, sim.steps, strict=True)
    ]
    assert sum(covered) >= 0.95 * len(covered)


def test_a_window_of_contiguous_steps_costs_its_two_ends_only() -> None:
    bounds = [Bounds(1.0, 2.0, 0.0), Bounds(2.0, 3.0, 0.0), Bounds(3.0, 1.5, 0.0)]
    contiguous = [(0.0, 1.0, bounds[0]), (1.0, 2.0, bounds[1]), (2.0, 3.0, bounds[2])]
    assert window_uncertainty_j(contiguous) == pytest.approx(1.0 + 1.5)
    gapped = [(0.0, 1.0, bounds[0]), (1.5, 2.0, bounds[1]), (2.0, 3.0, bounds[2])]
    assert window_uncertainty_j(gapped) == pytest.approx(1.0 + 2.0 + 2.0 + 1.5)
    interiors = [(0.0, 1.0, Bounds(0.0, 0.0, 3.0)), (1.0, 2.0, Bounds(0.0, 0.0, 4.0))]
    assert window_uncertainty_j(interiors) == pytest.approx(5.0)  # root-sum-square


def _boxcar_readings(window_s: float) -> tuple[list[Reading], float, float]:
    """100 W, then 300 W from 10 s, read every 0.1 s as a moving average over window_s."""

    def energy(t: float) -> float:
        return 100.0 * min(t, 10.0) + 300.0 * max(t - 10.0, 0.0)

    readings = [
        Reading("gpu:0", t, None, (energy(t) - energy(t - window_s)) / window_s)
        for t in (0.1 * k for k in range(1, 200))
    ]
    return readings, energy(10.5) - energy(9.5), energy(12.0) - energy(10.5)


def test_a_declared_moving_average_is_reconstructed_not_taken_as_instantaneous() -> None:
    readings, truth_around, truth_after = _boxcar_readings(1.0)
    declared = StepAttributor(power_window_s=1.0)
    naive = StepAttributor()
    for attributor in (declared, naive):
        for reading in readings:
            attributor.add_reading(reading)
        attributor.add_step(0, 9.5, 10.5)
        attributor.add_step(1, 10.5, 12.0)
    around, after = declared.pop_ready() + declared.finish()
    naive_around, naive_after = naive.pop_ready() + naive.finish()
    assert abs(around.energy_j - truth_around) < 0.3 * abs(naive_around.energy_j - truth_around)
    assert after.energy_j == pytest.approx(truth_after, rel=0.02)
    assert abs(naive_after.energy_j - truth_after) > 0.05 * truth_after
    for result, truth in ((around, truth_around), (after, truth_after)):
        assert abs(result.energy_j - truth) <= result.energy_uncertainty_j


def test_a_stored_step_states_its_bound_or_says_it_is_not_known() -> None:
    stated = StepRecord(1, 0, 0, 0.0, 1.0, None, 250.0, bounds=Bounds(1.0, 2.0, 0.5))
    assert stated.energy_uncertainty_j == pytest.approx(3.5)
    assert StepRecord(1, 1, 0, 1.0, 2.0, None, 250.0).energy_uncertainty_j is None


@pytest.mark.parametrize("power_window_s", [None, 1.0])
def test_a_burst_of_short_steps_in_one_interval_gets_each_step_its_own_bound(
    power_window_s: float | None,
) -> None:
    """Many steps in one knot interval have their bounds computed in one loop; each must be
    what the one-step computation gives, and the burst's total must stay conserved."""
    from greenprof.energy.uncertainty import split_point_bound_j

    attributor = StepAttributor(power_window_s=power_window_s)
    for k in range(1, 40):
        t_s = 0.1 * k
        attributor.add_reading(Reading("gpu:0", t_s, 200.0 * t_s, 200.0 + (k % 3)))
    width_s = 2.0**-10  # ~1 ms, exact in binary: the steps' ends are exactly their points
    starts = [1.5 + width_s * (8 + n) for n in range(40)]
    for n, start_s in enumerate(starts):
        attributor.add_step(n, start_s, start_s + width_s)
    results = attributor.pop_ready() + attributor.finish()
    assert [r.step for r in results] == list(range(40))
    curve = attributor.curve
    i = next(i for i, t in enumerate(curve.times) if t > starts[-1])
    points = [curve.times[i - 1], *starts, starts[-1] + width_s, curve.times[i]]
    points = sorted(set(points))
    for n, result in enumerate(results):
        end_s = starts[n] + width_s
        k = points.index(end_s)
        estimate_j = attributor._energy_at(end_s, final=False)
        expected_j = split_point_bound_j(
            curve,
            i,
            end_s,
            estimate_j,
            alone_left=k == 1,
            alone_right=k >= len(points) - 2,
        )
        assert result.bounds.end_j == pytest.approx(expected_j, rel=1e-9, abs=1e-12)
    burst_j = sum(r.energy_j for r in results)
    expected = attributor._energy_at(starts[-1] + width_s, final=False) - attributor._energy_at(
        starts[0], final=False
    )
    assert burst_j == pytest.approx(expected, rel=1e-9)
