"""Plain-text summaries (`greenprof runs`, `show`, `demo`): the one formatting rule."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from greenprof.records import CarbonSettings, DeviceInfo, RunInfo
from greenprof.summary import run_summary, runs_table

CARBON = CarbonSettings(intensity_g_per_kwh=400.0, pue=1.0, source="test")


def _run(**changes: object) -> RunInfo:
    run = RunInfo(
        run_id=7, name="tiny", status="completed", started_at=1_700_000_000.0,
        ended_at=1_700_000_187.0, host="h", pid=1, rank=None, framework="torch", tags={},
        devices=(DeviceInfo("gpu:0", "gpu", "counter", name="GPU"),), carbon=CARBON,
        steps=100, samples=1000, energy_j=8.03, step_energy_j=7.2, duration_s=187.0,
    )  # fmt: skip
    return replace(run, **changes)  # type: ignore[arg-type]


def test_runs_table_uses_prefixes_one_duration_style_and_iso_times_with_zone() -> None:
    header, _, row = runs_table([_run()], zone=dt.timezone.utc)
    assert "started" in header
    assert "2023-11-14T22:13+00:00" in row
    assert "3 min 07 s" in row
    assert "2.23 mWh" in row  # not 0.00000223 kWh, not 8.0 J
    assert "892 µg" in row  # 8.03 J at 400 g/kWh


def test_run_summary_states_j_per_sample_on_run_energy() -> None:
    text = "\n".join(run_summary(_run(), {"gpu:0": 8.03}))
    assert "efficiency: 8.03 mJ/sample" in text  # 8.03 J over 1000 samples (run, not steps)
    assert "448M samples/kWh" in text
    assert "energy inside steps: 2.00 mWh (90 % of the run)" in text
    assert "e-0" not in text and "0.000" not in text


def test_run_summary_and_epochs_state_the_step_bound_or_say_it_is_not_known() -> None:
    from greenprof.records import EpochRecord
    from greenprof.step_windows import StepWindowBounds
    from greenprof.summary import epoch_lines

    bounds = StepWindowBounds(run_j=0.36, epoch_j={0: 0.18, 1: None})
    text = "\n".join(run_summary(_run(), {"gpu:0": 8.03}, bounds=bounds))
    assert "energy inside steps: 2.00 mWh ± 100 µWh (90 % of the run)" in text
    unknown = "\n".join(run_summary(_run(), {}, bounds=StepWindowBounds(None)))
    assert "energy inside steps: 2.00 mWh ± n/a (90 % of the run)" in unknown
    epochs = [EpochRecord(7, e, 50, 90.0 * e, 90.0 * (e + 1), 500, 3.6) for e in (0, 1)]
    assert epoch_lines(epochs, bounds) == [
        "epochs:",
        "  0: 50 steps, 1.00 mWh ± 50.0 µWh, 1 min 30 s",
        "  1: 50 steps, 1.00 mWh ± n/a, 1 min 30 s",
    ]


def test_end_of_run_summary_has_a_line_per_device_then_totals_carbon_and_where() -> None:
    from greenprof.summary import end_of_run_lines

    carbon = CarbonSettings(400.0, pue=1.2, source="OWID 2023", country="DEU")
    devices = (
        DeviceInfo("gpu:0", "gpu", "counter", name="GPU"),
        DeviceInfo("cpu:0", "cpu", "model", name="CPU model"),
    )
    run = _run(devices=devices, carbon=carbon)
    lines = end_of_run_lines(run, {"gpu:0": 7.0, "cpu:0": 1.03}, where="/data/runs.db")
    assert lines == [
        "greenprof: run 7 'tiny' completed:",
        "  gpu:0  GPU        1.94 mWh  37.4 mW mean  counter",  # 7 J over 187 s
        "  cpu:0  CPU model  286 µWh   5.51 mW mean  model",
        "  total: 2.23 mWh in 3 min 07 s, 100 steps, 1000 samples, 8.03 mJ/sample",
        "  carbon: 1.07 mg CO2e (DEU, 400 g/kWh × PUE 1.2, OWID 2023)",
        "  stored in /data/runs.db: `greenprof show 7` for the details",
    ]


def test_end_of_run_summary_of_a_failed_run_says_why_and_shows_no_password() -> None:
    from greenprof.summary import end_of_run_lines

    run = _run(status="failed", error="ValueError: boom", samples=None, carbon=None)
    lines = end_of_run_lines(run, {}, where="postgresql://me:***@db/prof")
    assert lines[0] == "greenprof: run 7 'tiny' failed (ValueError: boom):"
    assert "  total: 2.23 mWh in 3 min 07 s, 100 steps" in lines  # no samples: no J/sample
    assert not any(line.startswith("  carbon") for line in lines)
    where = "  stored in postgresql://me:***@db/prof: `greenprof show 7` for the details"
    assert lines[-1] == where


def test_end_of_run_summary_of_a_run_without_devices_divides_nothing() -> None:
    from greenprof.summary import end_of_run_lines

    lines = end_of_run_lines(_run(devices=(), energy_j=0.0), {}, where="runs.db")
    assert lines[1] == "  no device was measured"
    assert lines[2] == "  total: 0 Wh in 3 min 07 s, 100 steps, 1000 samples"  # no 0 J/sample
