"""End to end: a real Profiler's steps keep their error bounds through the store (SQLite)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from greenprof.energy import window_uncertainty_j
from greenprof.store.reader import RunStore


def test_a_profiled_runs_steps_read_back_with_bounds_that_sum_over_windows(
    db_path: Path,
) -> None:
    import greenprof
    from greenprof.sensors.fake import FakeSensor

    sensors = [FakeSensor("gpu:0", 200.0, update_period_s=0.02)]
    with greenprof.Profiler("bounds", db=db_path, sensors=sensors) as prof:
        for _ in range(40):
            with prof.step(samples=2):
                time.sleep(0.005)
    with RunStore(db_path) as store:
        (run,) = store.runs()
        steps = store.steps(run.run_id)
    assert len(steps) == 40
    assert all(s.bounds is not None for s in steps)
    for s in steps:
        assert s.device_uncertainty_j == {"gpu:0": pytest.approx(s.energy_uncertainty_j)}
    window_j = window_uncertainty_j((s.start_s, s.end_s, s.bounds) for s in steps if s.bounds)
    each_j = sum(s.energy_uncertainty_j or 0.0 for s in steps)
    # a window's bound from the stored parts: never more than the steps' bounds summed (they
    # cancel where one step starts exactly where the previous ended)
    assert 0 < window_j <= each_j * (1 + 1e-12)
