"""Efficiency metrics: one definition of J/sample, samples/kWh, forecast, percentile, power."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from greenprof import metrics
from greenprof.records import CarbonSettings, RunInfo

CARBON = CarbonSettings(intensity_g_per_kwh=400.0, pue=1.5, source="test")


def _run(**changes: object) -> RunInfo:
    run = RunInfo(
        run_id=1, name="r", status="completed", started_at=0.0, ended_at=10.0, host="h",
        pid=1, rank=None, framework="torch", tags={}, devices=(), carbon=CARBON, steps=100,
        samples=6400, energy_j=3.6e6, step_energy_j=3.456e6, duration_s=600.0,
    )  # fmt: skip
    return replace(run, **changes)  # type: ignore[arg-type]


def test_j_per_sample_is_run_energy_over_samples() -> None:
    run = _run()
    assert metrics.run_j_per_sample(run) == pytest.approx(3.6e6 / 6400)  # not 3.456e6 / 6400
    assert metrics.run_samples_per_kwh(run) == pytest.approx(6400.0)
    assert metrics.run_j_per_sample(_run(samples=None)) is None
    assert metrics.run_samples_per_kwh(_run(energy_j=0.0)) is None
    assert metrics.step_j_per_sample(64.0, 64) == 1.0


def test_samples_per_kwh_is_the_inverse_of_j_per_sample_in_kwh() -> None:
    per_sample = metrics.j_per_sample(1800.0, 9)
    assert per_sample is not None
    assert metrics.samples_per_kwh(9, 1800.0) == pytest.approx(3.6e6 / per_sample)


def test_percentile_matches_numpy_linear_interpolation() -> None:
    values = sorted([3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.3])
    for fraction in (0.0, 0.1, 0.5, 0.9, 1.0):
        expected = float(np.percentile(values, fraction * 100))
        assert metrics.percentile(values, fraction) == pytest.approx(expected)
    assert metrics.percentile([], 0.5) is None
    assert metrics.percentile([7.0], 0.9) == 7.0


def test_power_from_a_cumulative_counter() -> None:
    assert metrics.power_from_energy_w((10.0, 500.0), (10.5, 625.0)) == 250.0
    assert metrics.power_from_energy_w((10.0, 500.0), (10.0, 600.0)) is None  # no time
    assert metrics.power_from_energy_w((10.0, 500.0), (11.0, 20.0)) is None  # a counter reset
    assert metrics.mean_power_w(3600.0, 60.0) == 60.0
    assert metrics.mean_power_w(1.0, 0.0) is None


def test_forecast_projects_to_the_planned_end() -> None:
    projected = metrics.forecast(
        expected_steps=1000, steps_done=250, step_energy_j=2500.0, run_energy_j=2600.0,
        duration_s=50.0, carbon=CARBON,
    )  # fmt: skip
    assert projected is not None and not projected.overrun
    assert projected.energy_j == pytest.approx(2600.0 + 750 * 10.0)
    assert projected.progress == pytest.approx(0.25)
    assert projected.remaining_s == pytest.approx(150.0)
    assert projected.co2_g == pytest.approx(CARBON.co2_g(10_100.0))


def test_forecast_past_the_plan_reports_what_was_spent_and_no_end() -> None:
    projected = metrics.forecast(
        expected_steps=100, steps_done=200, step_energy_j=2000.0, run_energy_j=2100.0,
        duration_s=40.0, carbon=None,
    )  # fmt: skip
    assert projected is not None and projected.overrun
    assert projected.energy_j == 2100.0  # what was spent, nothing projected
    assert projected.remaining_s is None  # not "0 s left"
    assert projected.progress == 1.0
    at_plan = metrics.forecast(
        expected_steps=100, steps_done=100, step_energy_j=1.0, run_energy_j=1.0,
        duration_s=1.0, carbon=None,
    )  # fmt: skip
    assert at_plan is not None and not at_plan.overrun and at_plan.remaining_s == 0.0


def test_no_forecast_without_a_plan_or_a_step() -> None:
    kwargs = {"step_energy_j": 1.0, "run_energy_j": 1.0, "duration_s": 1.0, "carbon": None}
    assert metrics.forecast(expected_steps=None, steps_done=5, **kwargs) is None  # type: ignore[arg-type]
    assert metrics.forecast(expected_steps=10, steps_done=0, **kwargs) is None  # type: ignore[arg-type]
