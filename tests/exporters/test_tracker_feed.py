import pytest

from greenprof.exporters.tracker_feed import MetricPoint, TrackerFeed
from greenprof.records import CarbonSettings, RunInfo, StepRecord

CARBON = CarbonSettings(intensity_g_per_kwh=360.0, pue=1.0)


def _step(step: int, epoch: int, energy_j: float = 10.0, samples: int | None = 4) -> StepRecord:
    return StepRecord(1, step, epoch, step * 0.1, step * 0.1 + 0.1, samples, energy_j)


def _run(energy_j: float, samples: int | None, carbon: CarbonSettings | None = CARBON) -> RunInfo:
    return RunInfo(
        1, "r", "completed", 0.0, 1.0, "h", 1, None, "", {}, (), carbon, 6, samples, energy_j,
        energy_j, 1.0,
    )  # fmt: skip


def _by_key(points: list[MetricPoint]) -> dict[str, tuple[int, float]]:
    return {p.key: (p.step, p.value) for p in points}


def test_one_point_per_call_however_many_steps() -> None:
    feed = TrackerFeed(CARBON)
    points = _by_key(feed.points([_step(i, 0) for i in range(1000)], run_energy_j=12_000.0))
    assert points["greenprof/energy_j"] == (999, 12_000.0)
    assert points["greenprof/co2_g"] == (999, pytest.approx(1.2))  # 12 kJ at 360 g/kWh
    assert points["greenprof/j_per_sample"] == (999, 3.0)  # run energy over 4000 samples
    assert points["greenprof/power_w"] == (999, pytest.approx(100.0))  # 10 J per 0.1 s step
    assert feed.points([], run_energy_j=12_500.0) == []  # nothing new: nothing logged


def test_an_epoch_is_logged_once_when_the_next_starts_and_the_last_at_the_end() -> None:
    feed = TrackerFeed(None)
    first = _by_key(feed.points([_step(0, 0), _step(1, 0), _step(2, 1)], run_energy_j=40.0))
    assert first["greenprof_epoch/energy_j"] == (0, 20.0)
    assert first["greenprof_epoch/duration_s"] == (0, pytest.approx(0.2))
    assert "greenprof_epoch/co2_g" not in first and "greenprof/co2_g" not in first
    again = feed.points([_step(2, 1), _step(3, 1)], run_energy_j=50.0)  # step 2 seen already
    assert "greenprof_epoch/energy_j" not in _by_key(again)
    final = _by_key(feed.final_points(_run(55.0, 16, carbon=None)))
    assert final["greenprof_epoch/energy_j"] == (1, 20.0)
    assert final["greenprof/energy_j"] == (3, 55.0)  # the curve ends at the stored total
    assert final["greenprof/j_per_sample"] == (3, pytest.approx(55.0 / 16))


def test_energy_not_known_yet_logs_no_run_figures() -> None:
    feed = TrackerFeed(CARBON)
    points = _by_key(feed.points([_step(0, 0, samples=None)], run_energy_j=0.0))
    assert set(points) == {"greenprof/power_w"}
    assert feed.final_points(_run(0.0, None)) != []
    assert TrackerFeed(CARBON).final_points(_run(5.0, 1)) == []  # a run without steps


def test_totals_for_a_run_summary() -> None:
    feed = TrackerFeed(CARBON)
    assert feed.totals(_run(3.6e6, 1000)) == {
        "greenprof/energy_j": 3.6e6,
        "greenprof/co2_g": pytest.approx(360.0),
        "greenprof/j_per_sample": 3600.0,
    }
    assert feed.totals(_run(10.0, None, carbon=None)) == {"greenprof/energy_j": 10.0}
