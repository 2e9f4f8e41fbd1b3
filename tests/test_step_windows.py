"""Window bounds of a run's and its epochs' step energies, from stored steps."""

from __future__ import annotations

import random

import pytest

from greenprof.energy import window_uncertainty_j
from greenprof.records import Bounds, StepRecord
from greenprof.step_windows import WindowBound, bound_rows, step_window_bounds


def _step(step: int, epoch: int, start_s: float, end_s: float, bounds: Bounds | None) -> StepRecord:
    return StepRecord(1, step, epoch, start_s, end_s, 8, 10.0, bounds=bounds)


def _steps(seed: int, count: int) -> list[StepRecord]:
    """Steps in order, mostly contiguous (one starts where the previous ended), with gaps."""
    rng = random.Random(seed)
    out, t = [], 0.0
    for i in range(count):
        if rng.random() < 0.3:
            t += rng.uniform(0.001, 0.2)  # a gap: both boundaries count
        end = t + rng.uniform(0.01, 1.0)
        bounds = Bounds(rng.uniform(0, 0.5), rng.uniform(0, 0.5), rng.uniform(0, 0.3))
        out.append(_step(i, i // 7, t, end, bounds))
        t = end
    return out


@pytest.mark.parametrize("seed", range(5))
def test_streamed_bound_is_window_uncertainty_j(seed: int) -> None:
    steps = _steps(seed, 50)
    window = WindowBound()
    for _step, _epoch, start_s, end_s, *parts in bound_rows(steps):
        window.add(start_s, end_s, *parts)
    expected = window_uncertainty_j((s.start_s, s.end_s, s.bounds) for s in steps if s.bounds)
    assert window.total_j == pytest.approx(expected, rel=1e-12)
    found = step_window_bounds(bound_rows(steps))
    assert found.run_j == pytest.approx(expected, rel=1e-12)
    for epoch in {s.epoch for s in steps}:
        mine = [(s.start_s, s.end_s, s.bounds) for s in steps if s.epoch == epoch and s.bounds]
        assert found.epoch_j[epoch] == pytest.approx(window_uncertainty_j(mine), rel=1e-12)


def test_contiguous_steps_cost_their_two_ends_not_the_sum_of_their_bounds() -> None:
    steps = [_step(i, 0, float(i), float(i + 1), Bounds(1.0, 1.0, 0.0)) for i in range(100)]
    assert step_window_bounds(bound_rows(steps)).run_j == pytest.approx(2.0)  # not 200 J


def test_a_step_without_a_bound_leaves_its_windows_without_one() -> None:
    steps = [
        _step(0, 0, 0.0, 1.0, Bounds(0.1, 0.1, 0.1)),
        _step(1, 1, 1.0, 2.0, None),  # recovered after a crash
        _step(2, 1, 2.0, 3.0, Bounds(0.1, 0.1, 0.1)),
    ]
    found = step_window_bounds(bound_rows(steps))
    assert found.run_j is None
    assert found.epoch_j == {0: pytest.approx(0.3), 1: None}
    assert step_window_bounds([]).run_j is None


def test_an_epoch_in_two_stretches_adds_their_bounds() -> None:
    steps = [
        _step(0, 0, 0.0, 1.0, Bounds(0.1, 0.2, 0.0)),
        _step(1, 1, 1.0, 2.0, Bounds(0.2, 0.1, 0.0)),
        _step(2, 0, 2.0, 3.0, Bounds(0.1, 0.2, 0.0)),
    ]
    assert step_window_bounds(bound_rows(steps)).epoch_j[0] == pytest.approx(0.6)
