"""Pure view-model tests: the figures users read, computed without Textual or SQLite."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from greenprof.records import CarbonSettings, DeviceInfo, RunInfo, SampleRecord, StepRecord
from greenprof.tui import format as fmt
from greenprof.tui.comparison import (
    RunSummary,
    StepColumns,
    compare,
    digest_columns,
    efficiency_ranking,
    efficiency_verdicts,
    percentile,
    summarize,
)
from greenprof.tui.view_models import (
    HISTORY_COLUMNS,
    LIVE_DEVICE_COLUMNS,
    LiveModel,
    forecast,
    history_rows,
    idle_energy_j,
)

CARBON = CarbonSettings(intensity_g_per_kwh=400.0, pue=1.5, source="test")


def make_run(run_id: int = 1, name: str = "resnet", **changes: object) -> RunInfo:
    run = RunInfo(
        run_id=run_id,
        name=name,
        status="running",
        started_at=1_700_000_000.0,
        ended_at=None,
        host="h",
        pid=1,
        rank=None,
        framework="torch",
        tags={"batch_size": "64"},
        devices=(DeviceInfo("gpu:0", "gpu", "counter", idle_power_w=50.0),),
        carbon=CARBON,
        steps=100,
        samples=6400,
        energy_j=3.6e6,
        step_energy_j=3.5e6,
        duration_s=600.0,
    )
    return replace(run, **changes)  # type: ignore[arg-type]


def step(
    n: int, energy_j: float, samples: int | None = 64, end_s: float | None = None
) -> StepRecord:
    end = float(n + 1) if end_s is None else end_s
    return StepRecord(1, n, 0, end - 1.0, end, samples, energy_j)


def test_the_old_tui_format_names_follow_the_one_formatting_rule() -> None:
    assert fmt.energy(3410) == "3.41 kJ"
    assert fmt.kwh(8.03) == "2.23 mWh"  # never 0.00000223 kWh
    assert fmt.co2(1234) == "1.23 kg"
    assert fmt.duration(187) == "3 min 07 s"
    assert fmt.number(4_520_000) == "4.52M"
    assert fmt.percent(-20.04, signed=True) == "-20.0 %"


def test_history_rows_show_efficiency_and_sort_by_any_column() -> None:
    cheap = make_run(1, "a", energy_j=3.6e6, samples=10_000)
    dear = make_run(2, "b", energy_j=7.2e6, samples=10_000)
    rows = history_rows(
        [cheap, dear], sort_column=HISTORY_COLUMNS.index("J/sample"), zone=dt.timezone.utc
    )
    assert [row.run_id for row in rows] == [2, 1]  # descending J/sample: the costliest first
    cells = dict(zip(HISTORY_COLUMNS, rows[1].cells, strict=True))
    assert cells["energy"] == "1.00 kWh"
    assert cells["J/sample"] == "360"
    assert cells["samples/kWh"] == "10.0k"
    assert cells["CO2e"] == "600 g"  # 1 kWh × PUE 1.5 × 400 g/kWh
    assert cells["started"] == "2023-11-14T22:13+00:00"  # ISO 8601 with its zone


def test_history_shows_small_runs_with_a_prefix_not_a_run_of_zeros() -> None:
    tiny = make_run(1, "tiny", energy_j=8.03, samples=None, carbon=CARBON)
    cells = dict(zip(HISTORY_COLUMNS, history_rows([tiny])[0].cells, strict=True))
    assert cells["energy"] == "2.23 mWh"
    assert cells["CO2e"] == "1.34 mg"  # 8.03 J × 1.5 × 400 g/kWh
    assert cells["J/sample"] == "–"


def test_history_filter_matches_every_word_in_name_tags_and_status() -> None:
    runs = [make_run(1, "resnet"), make_run(2, "bert", tags={"batch_size": "8"})]
    assert [r.run_id for r in history_rows(runs, query="bert batch_size=8")] == [2]
    assert history_rows(runs, query="RESNET running")[0].run_id == 1
    assert history_rows(runs, query="nothing-like-this") == []


def test_forecast_projects_from_mean_energy_per_step() -> None:
    projected = forecast(
        expected_steps=1000,
        steps_done=250,
        step_energy_j=2500.0,
        run_energy_j=2600.0,
        duration_s=50.0,
        carbon=CARBON,
    )
    assert projected is not None
    assert projected.energy_j == pytest.approx(2600.0 + 750 * 10.0)
    assert projected.progress == pytest.approx(0.25)
    assert projected.remaining_s == pytest.approx(150.0)
    assert projected.co2_g == pytest.approx(CARBON.co2_g(10_100.0))
    no_length = forecast(
        expected_steps=None,
        steps_done=5,
        step_energy_j=1,
        run_energy_j=1,
        duration_s=1,
        carbon=None,
    )
    assert no_length is None


def test_forecast_past_the_plan_projects_nothing_and_says_so() -> None:
    model = LiveModel(make_run(expected_steps=2, energy_j=100.0, duration_s=4.0))
    model.add_steps([step(0, 10.0), step(1, 10.0), step(2, 10.0), step(3, 10.0)])
    line = model.view().forecast_line
    assert line.startswith("past the planned 2 steps (step 4)")
    assert "end unknown" in line
    assert "100%" not in line and "left" not in line


def test_idle_baseline_only_from_devices_that_know_it() -> None:
    devices = (
        DeviceInfo("gpu:0", "gpu", "counter", idle_power_w=50.0),
        DeviceInfo("cpu:0", "cpu", "model"),
    )
    assert idle_energy_j(devices, 10.0) == 500.0
    assert idle_energy_j(devices[1:], 10.0) is None


def test_live_model_keeps_running_totals_across_increments() -> None:
    model = LiveModel(make_run(expected_steps=10, energy_j=0.0, duration_s=4.0))
    model.add_steps([step(0, 10.0), step(1, 12.0)])
    model.add_steps([step(2, 14.0)])
    assert model.steps_seen == 3
    assert model.last_step == 2
    view = model.view({"gpu:0": 36.0})
    totals = dict(view.totals)
    assert totals["J/step"] == "12"
    assert totals["J/sample"] == "0.188"  # 36 J / 192 samples (no energy between steps)
    assert totals["steps/s"] == "1"
    assert "forecast at step 10" in view.forecast_line
    assert "30% done" in view.forecast_line
    assert "idle baseline 50.0 W" in view.baseline_line


def test_live_j_per_sample_is_run_energy_like_every_other_view() -> None:
    model = LiveModel(make_run(energy_j=40.0, samples=None))
    model.add_steps([step(0, 18.0), step(1, 18.0)])  # 36 J inside steps, 40 J in the run
    assert dict(model.view().totals)["J/sample"] == "0.312"  # 40 J / 128 samples


def test_live_model_seeded_from_stored_aggregates_then_incremental() -> None:
    model = LiveModel(make_run(energy_j=0.0))
    model.seed_totals(steps=1000, step_energy_j=5000.0, samples=64_000, last_step=999)
    model.add_steps([step(1000, 7.0)])
    assert model.steps_seen == 1001
    assert model.step_energy_j == 5007.0
    assert model.last_step == 1000


def test_live_power_from_counter_when_no_power_reported() -> None:
    model = LiveModel(make_run())
    model.add_samples(
        [
            SampleRecord(1, "gpu:0", 0.0, 0.0, None, 80.0, 1 << 30, 55.0),
            SampleRecord(1, "gpu:0", 0.5, 100.0, None),
        ]
    )
    view = model.view()
    assert view.power_series_w == (200.0,)
    device = dict(
        zip(
            LIVE_DEVICE_COLUMNS,
            view.devices[0],
            strict=True,
        )
    )
    assert device["power"] == "200 W"
    assert device["util"] == "80.0%"  # the newest known value is kept
    assert device["temp"] == "55°C"


def test_simulated_devices_are_labelled() -> None:
    run = make_run(devices=(DeviceInfo("gpu:0", "gpu", "simulated"),))
    assert LiveModel(run).view().simulated
    assert not LiveModel(make_run()).view().simulated


def test_percentile_interpolates() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0], 0.9) == 10.0
    assert percentile([], 0.5) is None


def _summary(
    run_id: int, step_j: float, batch: int, steps: int = 100, loss_rate: float = 0.01
) -> RunSummary:
    energies = [step_j] * steps
    losses = [1.0 / (1 + i * loss_rate) for i in range(steps)]
    run = make_run(
        run_id, f"bs{batch}", energy_j=step_j * steps, samples=batch * steps, steps=steps
    )
    columns = StepColumns(energies, [batch] * steps, losses)
    return summarize(
        run,
        digest_columns(columns),
        {"gpu:0": 0.75 * step_j * steps, "cpu:0": 0.25 * step_j * steps},
    )


def test_compare_deltas_and_verdict_per_sample() -> None:
    small = _summary(1, step_j=50.0, batch=64)
    large = _summary(2, step_j=80.0, batch=128)
    result = compare([small, large])
    rows = {row.metric: row for row in result.rows}
    assert rows["J/sample median"].values == ("0.781", "0.625")
    assert rows["J/sample median"].deltas == ("", "-20.0 %")
    assert rows["energy"].deltas[1] == "+60.0 %"
    assert rows["energy"].values == ("1.39 Wh", "2.22 Wh")
    assert rows["gpu:0 share"].values == ("75.0 %", "75.0 %")
    assert result.verdicts == ("bs128 #2 is 25.0 % more energy-efficient per sample than bs64 #1",)


def test_compare_energy_to_reach_a_loss() -> None:
    slow = _summary(1, step_j=10.0, batch=64, loss_rate=0.01)
    fast = _summary(2, step_j=10.0, batch=64, loss_rate=0.05)
    result = compare([slow, fast], loss_target=0.6)
    row = next(r for r in result.rows if r.metric.startswith("energy to loss"))
    # loss 1/(1+0.01 i) ≤ 0.6 first at i = 67 (68 steps); 1/(1+0.05 i) at i = 14 (15 steps)
    assert row.values == ("680 J", "150 J")
    assert compare([slow, fast]).loss_target == pytest.approx(slow.best_loss)


def test_verdict_falls_back_to_per_step_and_reports_equal_runs() -> None:
    a = _summary(1, step_j=50.0, batch=64)
    b = _summary(2, step_j=50.0, batch=64)
    assert "equally energy-efficient per sample" in efficiency_verdicts([a, b])[0]
    no_samples = replace(a, samples=None)
    assert "per step" in efficiency_verdicts([no_samples, b])[0]
    assert efficiency_verdicts([a]) == ("select two or more runs to compare",)


def test_compare_curve_is_cumulative_and_downsampled() -> None:
    summary = _summary(1, step_j=2.0, batch=1, steps=10_000)
    assert len(summary.curve) <= 300
    assert summary.curve[-1] == (9999.0, 20_000.0)
    assert all(b[1] >= a[1] for a, b in zip(summary.curve, summary.curve[1:], strict=False))


def test_live_state_running_paused_and_ended_follow_the_clock() -> None:
    run = make_run(duration_s=10.0)
    model = LiveModel(run)
    model.add_steps([step(n, 1.0) for n in range(10)])  # 1 step/s, last ends at 10 s
    start = run.started_at
    assert model.view(now_at=start + 12).state == "running"
    paused = model.view(now_at=start + 40)
    assert paused.state == "paused"
    assert paused.state_line == "PAUSED: no new step for 30.0 s"
    assert dict(paused.totals)["duration"] == "40.0 s"  # "now" moves while it runs
    model.update_run(replace(run, status="completed", ended_at=start + 10))
    ended = model.view(now_at=start + 70)
    assert (ended.state, ended.state_line) == ("ended", "ENDED 1 min 00 s ago")
    assert dict(ended.totals)["duration"] == "10.0 s"


def test_live_eta_from_a_declared_epoch_count() -> None:
    model = LiveModel(make_run(tags={"epochs": "4"}, energy_j=0.0, duration_s=15.0))
    first_epoch = [StepRecord(1, n, 0, n, n + 1.0, 64, 2.0) for n in range(10)]
    model.add_steps(first_epoch)
    assert "after the first epoch" in model.view().forecast_line
    model.add_steps([StepRecord(1, n, 1, n, n + 1.0, 64, 2.0) for n in range(10, 15)])
    line = model.view().forecast_line
    assert line.startswith("forecast at step 40 (4 epochs × 10 steps)")
    assert "38% done" in line  # 15 of 40


def test_live_power_bands_keep_each_devices_time_and_watts() -> None:
    model = LiveModel(make_run())
    model.add_samples(
        [
            SampleRecord(1, "gpu:0", 1.0, None, 250.0),
            SampleRecord(1, "cpu:0", 1.0, None, 20.0),
            SampleRecord(1, "gpu:0", 2.0, None, 250.0),
        ]
    )
    bands = dict(model.view().power_bands)
    assert bands["gpu:0"] == ((1.0, 250.0), (2.0, 250.0))
    assert bands["cpu:0"] == ((1.0, 20.0),)


def test_flat_power_band_is_drawn_at_its_level() -> None:
    from greenprof.tui.widgets.chart import rasterize
    from greenprof.tui.widgets.power_chart import band_rows, band_scale_w

    points = [(float(t), 250.0) for t in range(10)]
    low, high = band_scale_w(points)
    assert low == 0.0
    assert high == 300.0  # 10 % headroom, rounded up to a number that reads
    grid = rasterize([points], 10, 4, y_range=(low, high))
    assert any(bits for bits, _ in grid[0])  # near the top: 250 of 300 W
    assert not any(bits for row in grid[1:] for bits, _ in row)
    assert band_rows(7, 2) == [4, 3]
    assert band_rows(3, 2) == [3]  # a band that does not fit is dropped, not squashed


def test_the_verdict_follows_the_users_loss_target_and_says_so() -> None:
    # the same cost per sample, but B learns 5x faster: per sample they tie, to the loss
    # target B wins; the verdict must say which metric it used
    slow = _summary(1, step_j=10.0, batch=64, loss_rate=0.01)
    fast = _summary(2, step_j=12.0, batch=64, loss_rate=0.05)
    default = compare([slow, fast])
    assert default.verdict_metric == "J/sample (run)"
    assert default.verdicts[0].startswith("bs64 #1 is 20.0 % more energy-efficient per sample")
    targeted = compare([slow, fast], loss_target=0.6)
    assert targeted.verdict_metric == "energy to loss≤0.600"
    assert targeted.verdicts == (
        "bs64 #2 is 277.8 % more energy-efficient to reach loss≤0.600 than bs64 #1",
    )
    ranking = efficiency_ranking([slow, fast], loss_target=0.6)
    assert ranking is not None
    assert (ranking.metric, ranking.best_index) == ("energy to loss≤0.600", 1)
    assert ranking.gains[0] == pytest.approx(680 / 180 * 100 - 100)


def test_a_run_that_never_reached_the_target_is_named() -> None:
    slow = _summary(1, step_j=10.0, batch=64, loss_rate=0.001)  # never below 0.6
    fast = _summary(2, step_j=10.0, batch=64, loss_rate=0.05)
    third = _summary(3, step_j=20.0, batch=64, loss_rate=0.05)
    verdicts = compare([slow, fast, third], loss_target=0.6).verdicts
    assert "bs64 #1 never reached loss≤0.600" in verdicts


def test_deltas_are_judged_better_or_worse_by_the_metrics_direction() -> None:
    small = _summary(1, step_j=50.0, batch=64)
    large = _summary(2, step_j=80.0, batch=128)
    rows = {row.metric: row for row in compare([small, large]).rows}
    assert rows["energy"].judgement(1) == "worse"
    assert rows["J/sample (run)"].judgement(1) == "better"
    assert rows["samples/kWh"].judgement(1) == "better"  # higher is better
    assert rows["steps"].judgement(1) == ""  # no better direction
    assert rows["energy"].judgement(0) == ""  # A is the reference


def test_caveats_name_failed_and_short_runs() -> None:
    done = _summary(1, step_j=50.0, batch=64)
    failed = replace(_summary(2, 50.0, 64), run=replace(done.run, run_id=2, status="failed"))
    short = replace(
        _summary(3, 50.0, 64),
        run=replace(done.run, run_id=3, status="completed", expected_steps=500),
    )
    lines = compare([done, failed, short]).caveats
    assert any(line.startswith("B (bs64 #2) failed") for line in lines)
    assert any("stopped at step 100 of 500 planned" in line for line in lines)


@pytest.mark.parametrize(
    ("value", "epochs"),
    [("3", 3), (3, 3), (3.0, 3), ("three", None), (0, None), (True, None), (2.5, None)],
)
def test_a_declared_epoch_count_is_read_whatever_its_json_type(
    value: object, epochs: int | None
) -> None:
    """Tags keep their JSON types: ``epochs`` may be stored as 3 or "3"."""
    from greenprof.tui.live_model import declared_epochs

    assert declared_epochs(make_run(tags={"epochs": value})) == epochs
