"""A bench's figures from records: windows, time to target, summaries, the table."""

from __future__ import annotations

import math

import pytest

from greenprof.bench import results, table
from greenprof.records import (
    CarbonSettings,
    DeviceInfo,
    EpochRecord,
    RunInfo,
    SampleRecord,
    StepRecord,
)


def _samples(power_w: float, until_s: float, device: str = "cpu:0") -> list[SampleRecord]:
    """A counter sampled every 0.1 s of a device drawing ``power_w``."""
    times = [i / 10 for i in range(int(until_s * 10) + 1)]
    return [SampleRecord(1, device, t, power_w * t, power_w) for t in times]


def test_window_energy_includes_the_gaps_between_steps() -> None:
    samples = _samples(20.0, 10.0) + _samples(5.0, 10.0, device="dram:0")
    assert results.window_energy_j(samples, 2.0, 6.0) == pytest.approx(4.0 * 25.0)
    assert results.window_energy_j(samples, 2.05, 2.15) == pytest.approx(0.1 * 25.0)


def test_window_energy_integrates_power_when_there_is_no_counter() -> None:
    samples = [SampleRecord(1, "gpu:0", t / 10, None, 100.0) for t in range(0, 51)]
    assert results.window_energy_j(samples, 1.0, 3.0) == pytest.approx(200.0)


def _steps(losses: list[float], duration_s: float = 0.5, energy_j: float = 2.0) -> list[StepRecord]:
    return [
        StepRecord(
            1, i, 0, 1.0 + i * duration_s, 1.0 + (i + 1) * duration_s, 8, energy_j, loss=loss
        )
        for i, loss in enumerate(losses)
    ]


def test_time_to_target_waits_for_the_trailing_mean() -> None:
    # one lucky batch below the target is not "trained": the 5-step mean must be
    losses = [2.0, 0.1, 2.0, 2.0, 2.0, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    reached = results.to_target(_steps(losses), 0.7)
    assert reached is not None
    seconds, joules = reached
    # mean of steps 5..9 is 0.6: the target is reached at the end of step 9
    assert seconds == pytest.approx(10 * 0.5)
    assert joules == pytest.approx(10 * 2.0)
    assert results.to_target(_steps([2.0] * 20), 0.7) is None


def _run(run_id: int, variant: str, tags: dict[str, str] | None = None) -> RunInfo:
    all_tags = {
        "bench": "b1",
        "variant": variant,
        "framework": "torch",
        "workload": "mlp",
        "size": "tiny",
        "batch_size": "8",
        "precision": "fp32",
        "repeat": "0",
        "version_torch": "2.x",
        **(tags or {}),
    }
    return RunInfo(
        run_id=run_id, name="bench", status="completed", started_at=0.0, ended_at=10.0,
        host="h", pid=1, rank=None, framework="torch", tags=all_tags,
        devices=(DeviceInfo("cpu:0", "cpu", "model", name="AMD EPYC"),),
        carbon=CarbonSettings(intensity_g_per_kwh=360.0), steps=20, samples=160,
        energy_j=0.0, step_energy_j=0.0, duration_s=10.0, setup_s=1.0, setup_energy_j=3.0,
    )  # fmt: skip


def _result(run_id: int, variant: str, power_w: float) -> results.RepeatResult:
    """A repeat: warm-up 1 s to 2 s, measured 2 s to 6 s (32 samples) at ``power_w``."""
    epochs = [
        EpochRecord(run_id, 0, 4, 1.0, 2.0, 32, 1.0),
        EpochRecord(run_id, 1, 4, 2.0, 6.0, 32, 1.0),
    ]
    losses = [1.5, 1.4, 1.3, 1.2, 0.5, 0.5, 0.5, 0.5]
    return results.repeat_result(
        _run(run_id, variant), epochs, _steps(losses), _samples(power_w, 8.0)
    )


def test_a_repeat_measures_its_window_from_the_samples() -> None:
    found = _result(1, "torch", 16.0)
    assert found.energy_j == pytest.approx(64.0)  # 16 W × 4 s, not the 1 J of the steps
    assert found.j_per_sample == pytest.approx(2.0)
    assert found.samples_per_s == pytest.approx(8.0)
    assert found.warmup_energy_j == pytest.approx(16.0)
    assert found.methods == ("model",)
    assert found.versions == (("torch", "2.x"),)
    assert found.co2_g_per_j == pytest.approx(360.0 / 3.6e6)
    assert found.target_loss == pytest.approx(0.5 * math.log(4))
    assert found.to_target_s == pytest.approx(4.0)  # the mean of steps 3..7 ≤ 0.69


def test_summary_orders_variants_and_states_the_difference() -> None:
    rows = [
        _result(1, "torch", 16.0),
        _result(2, "keras-tf", 20.0),
        _result(3, "torch", 16.4),
        _result(4, "keras-tf", 20.4),
        _result(5, "torch", 15.6),
        _result(6, "keras-tf", 19.6),
    ]
    summaries = results.summarize(rows)
    assert [s.variant for s in summaries] == ["torch", "keras-tf"]
    assert summaries[0].run_ids == (1, 3, 5)
    assert summaries[0].j_per_sample.mean == pytest.approx(2.0)
    (sentence,) = results.verdicts(summaries)
    assert sentence.startswith("mlp (tiny, batch 8, fp32): torch uses 20 % ± ")
    assert sentence.endswith("less energy per sample than keras-tf")
    lines = table.summary_lines("b1", summaries)
    assert lines[1] == "energy measured by: model (a CPU-load × TDP model, not a measurement)"
    assert lines[2] == "devices: cpu:0 AMD EPYC"
    assert table.caution_lines(summaries) == []  # 4 s windows
    assert any(line.startswith("torch ") and "2000 ± " in line for line in lines)
    document = table.document("b1", summaries, ["keras-jax skipped: jax not installed"])
    assert document["kind"] == "bench"
    assert document["results"][0]["energy_j_per_sample"]["mean"] == pytest.approx(2.0)
    assert document["skipped"] == ["keras-jax skipped: jax not installed"]


def test_a_sweep_names_the_best_setting_per_variant() -> None:
    small = _result(1, "torch", 16.0)
    large = results.repeat_result(
        _run(2, "torch", {"batch_size": "64"}),
        [EpochRecord(2, 0, 4, 1.0, 2.0, 32, 1.0), EpochRecord(2, 1, 4, 2.0, 6.0, 32, 1.0)],
        _steps([1.0] * 8),
        _samples(8.0, 8.0),
    )
    lines = results.best_settings(results.summarize([small, large]))
    assert lines == ["mlp: torch is most efficient at batch 64, fp32 (1000 mJ/sample)"]


def test_a_short_window_is_flagged() -> None:
    short = results.repeat_result(
        _run(1, "torch"),
        [EpochRecord(1, 0, 4, 1.0, 2.0, 32, 1.0), EpochRecord(1, 1, 4, 2.0, 2.5, 32, 1.0)],
        _steps([1.0] * 8),
        _samples(10.0, 8.0),
    )
    (line,) = table.caution_lines(results.summarize([short]))
    assert line.startswith("caution: measured windows under 1 s (torch): few sensor updates")
