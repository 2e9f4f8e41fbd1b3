"""Values from user code: numpy and torch scalars stored as plain SQL numbers, bad values
dropped with one warning (never raised into the training loop, never losing the step),
nested steps counted once, and bad settings refused up front with nothing on disk."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import greenprof
from greenprof.cli import main as cli
from greenprof.errors import ConfigError
from tests.reliability.conftest import busy, fake_sensors, read_run, sql

torch = pytest.importorskip("torch")


def _greenprof_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "greenprof" and r.levelno == logging.WARNING
    ]


# 13. Numbers as training scripts hold them ------------------------------------------------


def test_numpy_and_torch_scalars_are_stored_as_sql_numbers(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values: list[tuple[Any, Any]] = [
        (np.int64(32), torch.tensor(0.5)),
        (torch.tensor(32), np.float32(0.25)),
        (np.int32(32), np.float64(1.5)),
        (32, torch.tensor([2.0])),  # a one-element tensor, as `loss.detach()` often is
    ]
    with greenprof.Profiler("typed", db=db_path, sensors=fake_sensors()) as prof:
        prof.epoch_begin(np.int64(3))
        for samples, loss in values:
            with prof.step(samples=samples, loss=loss):
                busy(0.002)
    run_id = prof.run_id
    rows = sql(
        db_path,
        "SELECT typeof(samples), samples, typeof(loss), loss, typeof(epoch), epoch"
        " FROM steps WHERE run_id = ? ORDER BY step",
        run_id,
    )
    assert rows == [
        ("integer", 32, "real", 0.5, "integer", 3),
        ("integer", 32, "real", 0.25, "integer", 3),
        ("integer", 32, "real", 1.5, "integer", 3),
        ("integer", 32, "real", 2.0, "integer", 3),
    ]
    assert sql(db_path, "SELECT typeof(samples), samples FROM runs") == [("integer", 128)]
    stored = read_run(db_path, run_id)
    assert stored.run.status == "completed" and stored.run.error is None
    capsys.readouterr()
    assert cli(["show", str(run_id), "--db", str(db_path)]) == 0
    shown = capsys.readouterr()
    assert "Traceback" not in shown.err
    assert cli(["export", "csv", "--table", "steps", "--db", str(db_path)]) == 0
    exported = capsys.readouterr()
    assert exported.out.count("\n") == 5, exported.out  # a header and four steps
    assert "0.25" in exported.out


@pytest.mark.parametrize(
    ("what", "name"),
    [
        ("samples='32'", "samples"),
        ("samples=3.5", "samples"),
        ("samples=-1", "samples"),
        ("samples=True", "samples"),
        ("epoch_begin('two')", "epoch"),
    ],
)
def test_a_bad_value_is_dropped_with_one_warning(
    db_path: Path, caplog: pytest.LogCaptureFixture, what: str, name: str
) -> None:
    caplog.set_level(logging.WARNING, logger="greenprof")
    bad: dict[str, Any] = {
        "samples='32'": "32",
        "samples=3.5": 3.5,
        "samples=-1": -1,
        "samples=True": True,
    }
    with greenprof.Profiler("bad-values", db=db_path, sensors=fake_sensors()) as prof:
        for i in range(10):
            if name == "epoch" and i >= 4:
                prof.epoch_begin("two")  # type: ignore[arg-type]
            samples = bad[what] if name == "samples" and i >= 4 else 8
            with prof.step(samples=samples):  # nothing raised into the loop
                busy(0.002)
    stored = read_run(db_path, prof.run_id)
    assert stored.run.status == "completed"
    assert stored.run.steps == len(stored.steps) == 10  # the step is kept
    if name == "samples":
        assert [s.samples for s in stored.steps] == [8] * 4 + [None] * 6
        assert stored.run.samples == 32
    else:
        assert [s.samples for s in stored.steps] == [8] * 10
        assert {s.epoch for s in stored.steps} == {0}
    warnings = _greenprof_warnings(caplog)
    assert len(warnings) == 1, warnings  # six bad values, one warning
    assert name in warnings[0]
    assert name in (stored.run.error or ""), stored.run.error


def test_two_kinds_of_bad_value_are_both_recorded_on_the_run(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="greenprof")
    with greenprof.Profiler("two-bad", db=db_path, sensors=fake_sensors()) as prof:
        with prof.step(samples="32"):  # type: ignore[arg-type]
            busy(0.002)
        prof.epoch_begin("two")  # type: ignore[arg-type]
        with prof.step(samples=8):
            busy(0.002)
    stored = read_run(db_path, prof.run_id)
    assert len(_greenprof_warnings(caplog)) == 2
    error = stored.run.error or ""
    assert "samples" in error and "epoch" in error, error


def test_nan_loss_is_stored_as_null(db_path: Path) -> None:
    with greenprof.Profiler("nan-loss", db=db_path, sensors=fake_sensors()) as prof:
        for loss in (math.nan, torch.tensor(math.inf), np.float32(0.125)):
            with prof.step(samples=1, loss=loss):
                busy(0.002)
    rows = sql(db_path, "SELECT typeof(loss), loss FROM steps ORDER BY step")
    assert rows == [("null", None), ("null", None), ("real", 0.125)]
    assert read_run(db_path, prof.run_id).run.status == "completed"


def test_nested_steps_count_once(db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="greenprof")
    with greenprof.Profiler("nested", db=db_path, sensors=fake_sensors()) as prof:
        for _ in range(5):
            with prof.step(samples=4), prof.step(samples=4):
                busy(0.002)
        for _ in range(3):  # a hook's marks inside a manual step
            with prof.step(samples=2):
                prof.step_begin()
                busy(0.002)
                prof.step_end(samples=2)
    stored = read_run(db_path, prof.run_id)
    assert stored.run.steps == len(stored.steps) == 8
    assert [s.samples for s in stored.steps] == [4] * 5 + [2] * 3
    assert stored.run.samples == 26
    assert len(_greenprof_warnings(caplog)) == 1


# 14. Settings refused up front ----------------------------------------------------------

BAD_SETTINGS: list[tuple[str, Any]] = [
    ("interval_s", math.inf),
    ("interval_s", math.nan),
    ("interval_s", 0),
    ("interval_s", -1),
    ("interval_s", "0.1"),
    ("flush_interval_s", 0),
    ("pue", "1.2"),
    ("pue", math.nan),
    ("pue", math.inf),
    ("pue", 0.5),
    ("tags", [1, 2]),
    ("prometheus_port", 70000),
    ("prometheus_port", 0),
    ("prometheus_port", -1),
    ("expected_steps", 0),
    ("expected_steps", 2.5),
    ("baseline_s", -1),
    ("sensors", [object()]),
    ("run", 123),
]


@pytest.mark.parametrize(("setting", "value"), BAD_SETTINGS, ids=repr)
def test_bad_setting_is_refused_before_anything_is_created(
    tmp_path: Path, setting: str, value: Any
) -> None:
    before = sorted(tmp_path.iterdir())
    db = tmp_path / "new-dir" / "runs.db"
    options: dict[str, Any] = {"db": db, "sensors": fake_sensors(), setting: value}
    name = options.pop("run", "settings")
    with pytest.raises(ConfigError) as raised:
        greenprof.Profiler(name, **options).start()
    message = str(raised.value)
    assert (setting.rstrip("s") if setting == "sensors" else setting) in message or (
        setting == "run" and "run name" in message
    ), message
    assert sorted(tmp_path.iterdir()) == before
    assert not db.parent.exists()


def test_bad_prometheus_port_from_the_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENPROF_PROMETHEUS_PORT", "nine")
    db = tmp_path / "new-dir" / "runs.db"
    with pytest.raises(ConfigError, match="GREENPROF_PROMETHEUS_PORT"):
        greenprof.Profiler("env", db=db, sensors=fake_sensors()).start()
    assert not db.parent.exists()


def test_the_decorator_refuses_bad_settings_before_training(tmp_path: Path) -> None:
    calls = []

    @greenprof.profile("decorated", db=tmp_path / "new-dir" / "runs.db", interval_s=-1)
    def train() -> None:
        calls.append(1)

    with pytest.raises(ConfigError, match="interval_s"):
        train()
    assert calls == []
    assert not (tmp_path / "new-dir").exists()
