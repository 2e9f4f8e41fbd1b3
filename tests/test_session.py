from pathlib import Path

import pytest

from greenprof.config import ProfilerConfig
from greenprof.marks import StepMarks
from greenprof.records import DeviceInfo, Reading
from greenprof.run_sensors import SensorSet
from greenprof.sensors.fake import FakeSensor
from greenprof.session import open_session
from greenprof.store.reader import RunStore


class ClosingSensor(FakeSensor):
    """A fake sensor that remembers being closed."""

    closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


class UndescribedSensor(ClosingSensor):
    @property
    def info(self) -> DeviceInfo:
        raise RuntimeError("no description")

    @info.setter
    def info(self, _value: DeviceInfo) -> None:
        pass


class UnreadableSensor(ClosingSensor):
    def read(self) -> Reading:
        raise OSError("gone")


def _config(db_path: Path) -> ProfilerConfig:
    return ProfilerConfig.create("session", db=db_path, interval_s=0.02, env={})


@pytest.mark.parametrize("owned", [True, False])
def test_a_failed_start_closes_detected_sensors_and_leaves_the_callers(
    db_path: Path, owned: bool
) -> None:
    good, bad = ClosingSensor("cpu:0"), UndescribedSensor("gpu:0")
    chosen = SensorSet((good, bad), owned=owned)
    with pytest.raises(RuntimeError, match="no description"):
        open_session(_config(db_path), StepMarks(), lambda: chosen)
    assert good.closed is owned and bad.closed is owned
    with RunStore(db_path) as store:
        assert store.runs() == []  # no run was created


def test_a_sensor_source_that_fails_costs_only_the_writer(db_path: Path) -> None:
    def detect() -> SensorSet:
        raise OSError("driver crashed")

    with pytest.raises(OSError, match="driver crashed"):
        open_session(_config(db_path), StepMarks(), detect)
    with RunStore(db_path) as store:
        assert store.runs() == []


def test_a_started_session_stores_steps_and_closes_everything(db_path: Path) -> None:
    sensor, silent = ClosingSensor("gpu:0", 100.0, update_period_s=0.02), UnreadableSensor("gpu:1")
    marks = StepMarks()
    session = open_session(
        _config(db_path), marks, lambda: SensorSet((sensor, silent), owned=False)
    )
    for _ in range(3):
        marks.step_end(samples=2)
    assert session.stats().running
    session.close(status="completed", error=None)
    assert sensor.closed and silent.closed  # sampling began: closing is the run's
    with RunStore(db_path) as store:
        run = store.run(session.run_id)
    assert (run.status, run.steps, run.samples) == ("completed", 3, 6)
    assert run.error is not None and "gpu:1 gave no valid reading" in run.error
