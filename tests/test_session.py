import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from greenprof.config import ProfilerConfig
from greenprof.marks import StepMarks
from greenprof.records import DeviceInfo, Reading
from greenprof.run_sensors import SensorSet
from greenprof.sensors.fake import FakeSensor
from greenprof.session import Attributors, open_session
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


class StallingSensor(ClosingSensor):
    """A fake sensor whose reads fail while ``stalled`` is set (a wedged driver, a
    starved poll), counting the reads it failed and those it answered."""

    def __init__(self, device: str) -> None:
        super().__init__(device, 100.0, update_period_s=0.0)
        self.stalled = threading.Event()
        self.failed = 0
        self.answered = 0

    def read(self) -> Reading:
        if self.stalled.is_set():
            self.failed += 1
            raise OSError("stalled")
        self.answered += 1
        return super().read()


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline_s = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline_s, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_a_poll_gap_flags_the_steps_it_touches_and_is_noted_once_on_the_run(
    db_path: Path,
) -> None:
    sensor = StallingSensor("gpu:0")
    marks = StepMarks()
    session = open_session(_config(db_path), marks, lambda: SensorSet((sensor,), owned=False))
    _wait_for(lambda: sensor.answered >= 3, "first readings")
    marks.step_end()
    sensor.stalled.set()
    _wait_for(lambda: sensor.failed >= 5, "failed reads")  # >= 5 polls of 20 ms: a long gap
    marks.step_end()  # ends inside the gap
    _wait_for(lambda: sensor.failed >= 10, "more failed reads")
    answered = sensor.answered
    sensor.stalled.clear()
    _wait_for(lambda: sensor.answered >= answered + 3, "readings after the gap")
    marks.step_end()
    _wait_for(lambda: session.stats().gaps >= 1, "the gap in the stats")
    assert session.stats().longest_gap_s >= 0.08
    session.close(status="completed", error=None)
    with RunStore(db_path) as store:
        run = store.run(session.run_id)
        flags = store.step_flag_counts(session.run_id)
    assert run.steps == 3
    assert flags.get("poll_gap", 0) >= 1
    assert run.error is not None
    assert run.error.count("long gap") == 1 and "flagged poll_gap" in run.error


def test_each_attributor_gets_its_sensors_declared_update_period() -> None:
    slow, fast = (
        FakeSensor("gpu:0", update_period_s=0.1),
        FakeSensor("cpu:0", update_period_s=0.001),
    )
    attributors = Attributors([slow, fast], [slow.info, fast.info])
    assert attributors.make("gpu:0").curve.declared_period_s == 0.1
    assert attributors.make("cpu:0").curve.declared_period_s == 0.001


@pytest.mark.parametrize("collector_on", [True, False])
def test_closing_leaves_the_garbage_collector_as_the_program_had_it(
    db_path: Path, collector_on: bool
) -> None:
    """stop() pauses cyclic collection while it attributes and stores the pending steps
    (a full collection per batch walks the whole heap); the program's setting comes back."""
    import gc

    marks = StepMarks()
    session = open_session(
        _config(db_path),
        marks,
        lambda: SensorSet((FakeSensor("gpu:0", 100.0, update_period_s=0.02),), owned=True),
    )
    for _ in range(2000):
        marks.step_end(samples=1)
    was_on = gc.isenabled()
    try:
        if not collector_on:
            gc.disable()
        session.close(status="completed", error=None)
        assert gc.isenabled() is collector_on
    finally:
        if was_on:
            gc.enable()
    with RunStore(db_path) as store:
        assert store.run(session.run_id).steps == 2000
