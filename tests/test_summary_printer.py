"""The end-of-run summary a Profiler prints on stderr: on by default (off under this
test suite, see conftest), once, also for a failed run, matching what `greenprof show`
reads back; never an error."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

import greenprof
from greenprof import formatting as fmt
from greenprof.config import ProfilerConfig
from greenprof.errors import ConfigError
from greenprof.sensors.fake import FakeSensor
from greenprof.store.location import parse_location
from greenprof.summary import run_summary
from greenprof.summary_printer import SummaryPrinter, db_option, print_run_summary


def _sensors() -> list[FakeSensor]:
    return [FakeSensor("gpu:0", 200.0, name="fake GPU"), FakeSensor("cpu:0", 40.0)]


def _profile(db: Path, **options: object) -> greenprof.Profiler:
    prof = greenprof.Profiler(
        "summed", db=db, sensors=_sensors(), interval_s=0.02, country="DEU", **options
    )  # type: ignore[arg-type]
    with prof:
        for _ in range(3):
            with prof.step(samples=8):
                time.sleep(0.01)
    return prof


def _summary_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(("greenprof: run", "  "))]


def test_a_run_prints_its_summary_once_with_the_figures_greenprof_show_reads(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prof = _profile(db_path, summary=True)
    err = capsys.readouterr().err
    assert err.count("greenprof: run ") == 1
    with greenprof.RunStore(db_path) as store:
        run = store.run(prof.run_id or 0)
        device_energy = store.device_energy_j(run.run_id)
        shown = "\n".join(run_summary(run, device_energy))
    lines = _summary_lines(err)
    assert lines[0] == f"greenprof: run {run.run_id} 'summed' completed:"
    for info in run.devices:
        device = info.device
        energy = fmt.energy_wh(device_energy[device])
        line = next(line for line in lines if line.startswith(f"  {device} "))
        assert energy in line and line.endswith(info.method)
        assert energy in shown  # the same figure as `greenprof show`
        assert f"{fmt.power(device_energy[device] / run.duration_s)} mean" in line
    total = f"total: {fmt.energy_wh(run.energy_j)} in {fmt.duration(run.duration_s)}"
    assert total in err and fmt.energy_wh(run.energy_j) in shown
    assert f"3 steps, 24 samples, {fmt.energy(run.energy_j / 24)}/sample" in err
    assert f"carbon: {fmt.co2(run.co2_g)} CO2e (DEU, " in err
    assert f"{fmt.co2(run.co2_g)} CO2e" in shown
    assert f"stored in {db_path}: `greenprof show --db {db_path} {run.run_id}`" in err
    assert capsys.readouterr().out == ""  # stderr only: stdout stays the script's


def test_a_failed_run_says_so_in_its_summary(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prof = greenprof.Profiler("boom", db=db_path, sensors=_sensors(), summary=True)
    with pytest.raises(ValueError, match="bad batch"), prof, prof.step(samples=4):
        raise ValueError("bad batch")
    err = capsys.readouterr().err
    assert f"greenprof: run {prof.run_id} 'boom' failed (ValueError: bad batch):" in err


def test_summary_off_by_keyword_or_environment(
    db_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _profile(db_path, summary=False)
    monkeypatch.setenv("GREENPROF_SUMMARY", "0")
    _profile(db_path)
    assert "greenprof: run" not in capsys.readouterr().err
    monkeypatch.setenv("GREENPROF_SUMMARY", "1")
    _profile(db_path)
    assert capsys.readouterr().err.count("greenprof: run ") == 1


def test_the_environment_setting_is_checked() -> None:
    assert ProfilerConfig.from_env({"GREENPROF_SUMMARY": "0"}).summary is False
    assert ProfilerConfig.from_env({"GREENPROF_SUMMARY": "off"}).summary is False
    assert ProfilerConfig.from_env({}).summary is True
    said = ProfilerConfig.create("x", summary=False, env={"GREENPROF_SUMMARY": "1"})
    assert said.summary is False
    with pytest.raises(ConfigError, match="GREENPROF_SUMMARY"):
        ProfilerConfig.from_env({"GREENPROF_SUMMARY": "of"})


def test_a_summary_that_cannot_be_built_prints_nothing_and_raises_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = io.StringIO()
    caplog.set_level("DEBUG", logger="greenprof")
    assert print_run_summary(tmp_path / "runs.db", 42, out) is False  # no such run
    assert out.getvalue() == ""
    assert "no end-of-run summary for run 42" in caplog.text


def test_an_observer_given_a_stream_prints_there(db_path: Path) -> None:
    out = io.StringIO()
    prof = _profile(db_path, observers=[SummaryPrinter(out)])
    assert out.getvalue().startswith(f"greenprof: run {prof.run_id} 'summed' completed:\n")


def test_the_show_hint_names_the_store_unless_it_is_the_default(tmp_path: Path) -> None:
    """The hint must work when pasted: `greenprof show N` reads the default store only."""
    env = {"GREENPROF_DB": str(tmp_path / "runs.db")}
    assert db_option(parse_location(tmp_path / "runs.db"), env) == ""
    other = tmp_path / "my runs.db"
    assert db_option(parse_location(other), env) == f"--db '{other}'"
    server = parse_location("postgresql://me:secret@db/prof")
    assert db_option(server, env) == "--db 'postgresql://me:***@db/prof'"
    assert db_option(server, {"GREENPROF_DB": "postgresql://me:secret@db/prof"}) == ""
