import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import greenprof
from greenprof.errors import ConfigError
from greenprof.observers import RunHandle
from greenprof.records import DeviceInfo, Reading, RunStatus
from greenprof.sensors.fake import FakeSensor
from greenprof.stats import ProfilerStats


class ManualClock:
    """Monotonic seconds that move only when the test says so, plus one microsecond per
    reading (sensor readings must be strictly later than the last)."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now_s += 1e-6
            return self.now_s

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now_s += seconds


def _sensors(clock: Callable[[], float] = time.monotonic) -> list[FakeSensor]:
    return [
        FakeSensor("gpu:0", 200.0, update_period_s=0.02, clock=clock),
        FakeSensor("cpu:0", 40.0, clock=clock),
    ]


def _wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    """Poll until ``condition`` holds (bounded: a loaded machine is slow, not wrong)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_each_step_is_stored_with_energy_per_device(db_path: Path) -> None:
    clock = ManualClock()
    with greenprof.Profiler(
        "steps",
        db=db_path,
        sensors=_sensors(clock),
        interval_s=0.02,
        tags={"batch_size": 64},
        country="DEU",
        clock=clock,
    ) as prof:
        for _ in range(20):
            with prof.step(samples=64):
                clock.advance(0.01)
        clock.advance(0.1)  # the counters publish past the last step
    store = greenprof.RunStore(db_path)
    run = store.run(prof.run_id or -1)
    steps = store.steps(run.run_id)
    assert run.status == "completed"
    assert run.tags == {"batch_size": 64}
    assert run.carbon is not None and run.carbon.country == "DEU"
    assert (run.steps, run.samples, len(steps)) == (20, 1280, 20)
    assert all(set(s.device_energy_j) == {"gpu:0", "cpu:0"} for s in steps)
    assert all(s.energy_j == pytest.approx(sum(s.device_energy_j.values())) for s in steps)
    # On the profiler's clock every step takes 10 ms, however slow the machine: 240 W in
    # all, constant, so 2.4 J each. Steps shorter than the counter's period are
    # interpolated one by one (flagged); their sum is what must hold.
    assert all(s.duration_s == pytest.approx(0.01, abs=1e-4) for s in steps)
    assert sum(s.energy_j for s in steps) == pytest.approx(240.0 * 0.2, rel=0.02)
    assert run.energy_j >= run.step_energy_j * 0.9
    assert {d.method for d in run.devices} == {"simulated"}


def test_the_loop_wrapper_counts_samples_from_the_batch(db_path: Path) -> None:
    batches = [([1, 2, 3], "y"), ([4, 5], "y")]
    with greenprof.Profiler("loop", db=db_path, sensors=_sensors()) as prof:
        seen = list(prof.steps(batches))
    assert seen == batches
    steps = greenprof.RunStore(db_path).steps(prof.run_id or -1)
    assert [s.samples for s in steps] == [3, 2]


def test_epochs_are_recorded(db_path: Path) -> None:
    with greenprof.Profiler("epochs", db=db_path, sensors=_sensors()) as prof:
        for epoch in range(3):
            prof.epoch_begin(epoch)
            for _ in range(4):
                prof.step_begin()
                prof.step_end(samples=2)
    store = greenprof.RunStore(db_path)
    assert [(e.epoch, e.steps, e.samples) for e in store.epochs(prof.run_id or -1)] == [
        (0, 4, 8),
        (1, 4, 8),
        (2, 4, 8),
    ]


def test_an_exception_in_training_propagates_and_marks_the_run_failed(db_path: Path) -> None:
    with (
        pytest.raises(ZeroDivisionError),
        greenprof.Profiler("boom", db=db_path, sensors=_sensors()) as prof,
    ):
        with prof.step():
            pass
        _ = 1 / 0
    run = greenprof.RunStore(db_path).run("boom")
    assert run.status == "failed"
    assert run.error is not None and "ZeroDivisionError" in run.error
    assert run.steps == 1


def test_ctrl_c_marks_the_run_interrupted(db_path: Path) -> None:
    with (
        pytest.raises(KeyboardInterrupt),
        greenprof.Profiler("stop", db=db_path, sensors=_sensors()),
    ):
        raise KeyboardInterrupt
    assert greenprof.RunStore(db_path).run("stop").status == "interrupted"


class _BrokenSensor(FakeSensor):
    def __init__(self) -> None:
        super().__init__("gpu:1")
        self.reads = 0

    def read(self) -> Reading:
        self.reads += 1
        raise OSError("device fell off the bus")

    def close(self) -> None:
        raise OSError("still gone")


def test_a_failing_sensor_never_reaches_the_training_loop(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = _BrokenSensor()
    with greenprof.Profiler(
        "flaky", db=db_path, sensors=[*_sensors(), broken], interval_s=0.02
    ) as prof:
        for _ in range(5):
            with prof.step():
                time.sleep(0.02)
        assert _wait_for(lambda: broken.reads > 2)
    run = greenprof.RunStore(db_path).run("flaky")
    assert run.status == "completed"
    assert run.error is not None and "device fell off the bus" in run.error
    assert broken.reads > 2
    assert sum("device fell off the bus" in r.message for r in caplog.records) == 1


def test_the_decorator_profiles_each_call_as_one_run(db_path: Path) -> None:
    @greenprof.profile("decorated", db=db_path, sensors=_sensors())
    def train(steps: int) -> str:
        prof = greenprof.current_profiler()
        assert prof is not None
        for _ in range(steps):
            with prof.step():
                pass
        return "done"

    assert train(3) == "done"
    assert greenprof.current_profiler() is None
    (run,) = greenprof.RunStore(db_path).runs()
    assert (run.name, run.steps) == ("decorated", 3)


def test_nested_start_is_one_run(db_path: Path) -> None:
    with greenprof.Profiler("outer", db=db_path, sensors=_sensors()) as prof, prof:
        prof.step_end()
    assert len(greenprof.RunStore(db_path).runs()) == 1


def test_steps_marked_from_another_thread_are_recorded(db_path: Path) -> None:
    with greenprof.Profiler("threads", db=db_path, sensors=_sensors()) as prof:

        def mark() -> None:
            for _ in range(50):
                prof.step_end()

        worker = threading.Thread(target=mark)
        worker.start()
        worker.join()
    assert greenprof.RunStore(db_path).run("threads").steps == 50


def test_idle_baseline_is_measured_when_asked(db_path: Path) -> None:
    with greenprof.Profiler(
        "baseline", db=db_path, sensors=_sensors(), baseline_s=0.5, interval_s=0.02
    ):
        pass
    devices = {d.device: d for d in greenprof.RunStore(db_path).run("baseline").devices}
    assert devices["gpu:0"].idle_power_w == pytest.approx(200.0, rel=0.25)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval_s": 0}, "interval_s must be > 0"),
        ({"interval_s": 0.001}, "below 10 ms"),
        ({"expected_steps": -3}, "expected_steps"),
        ({"country": "Atlantis"}, "unknown country"),
    ],
)
def test_bad_settings_fail_before_training_starts(
    kwargs: dict[str, object], message: str, db_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message):
        greenprof.Profiler("bad", db=db_path, sensors=[], **kwargs)  # type: ignore[arg-type]
    assert not db_path.exists()


def test_default_database_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GREENPROF_DB", str(tmp_path / "env.db"))
    with greenprof.Profiler("env", sensors=[]):
        pass
    assert greenprof.RunStore(tmp_path / "env.db").run("env").status == "completed"


def test_in_process_prometheus_endpoint_serves_this_run(db_path: Path) -> None:
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with greenprof.Profiler(
        "scraped", db=db_path, sensors=_sensors(), prometheus_port=port, flush_interval_s=0.05
    ) as prof:
        for _ in range(3):
            with prof.step():
                time.sleep(0.01)
        url = f"http://127.0.0.1:{port}/metrics"
        body = ""

        def scraped() -> bool:
            nonlocal body
            body = urllib.request.urlopen(url, timeout=5).read().decode()
            return "greenprof_energy_joules_total{" in body

        assert _wait_for(scraped), body
    assert 'run="scraped"' in body


def test_an_explicit_profiler_inside_a_whole_process_run_joins_it(db_path: Path) -> None:
    ambient = greenprof.Profiler(
        "train", db=db_path, sensors=_sensors(), tags={"zero_code": "true"}, ambient=True
    )
    ambient.start()
    try:
        with greenprof.Profiler("resnet-bs4", db=db_path, tags={"bs": 4}) as prof:
            assert prof.running and prof.run_id == ambient.run_id
            for _ in range(6):
                with prof.step(samples=4):
                    pass
            prof.step_end(samples=4)
    finally:
        ambient.stop()
    (run,) = greenprof.RunStore(db_path).runs()
    assert (run.name, run.steps, run.samples) == ("resnet-bs4", 7, 28)
    assert run.tags == {"bs": 4, "zero_code": "true"}
    assert run.status == "completed"
    assert not prof.running


def test_stats_tell_what_the_profiler_is_doing(db_path: Path) -> None:
    prof = greenprof.Profiler("stats", db=db_path, sensors=_sensors(), interval_s=0.02)
    before = prof.stats()
    assert isinstance(before, ProfilerStats)
    assert (before.running, before.run_id, before.writer) == (False, None, None)
    with prof:
        for _ in range(10):
            prof.step_end(samples=1)
        assert _wait_for(lambda: prof.stats().steps_closed == 10)
        during = prof.stats()
        assert during.running and during.run_id == prof.run_id
        assert during.polls >= 1 and during.queued_marks == 0
        assert during.writer is not None and during.writer.lost_steps == 0
        assert during.rejected_readings == {}
        assert set(during.update_periods_s) == {"gpu:0", "cpu:0"}
        assert during.pending_steps == during.steps_closed - during.steps_attributed
    after = prof.stats()
    assert not after.running and after.run_id == prof.run_id
    assert greenprof.RunStore(db_path).run("stats").steps == 10


class _Recorder:
    """A run observer that writes down what it is told, reading the store at the end."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.events: list[str] = []
        self.progress: list[ProfilerStats] = []
        self.stored_status = ""

    def run_started(self, run: RunHandle) -> None:
        self.events.append(f"started {run.name} {run.run_id}")

    def run_progress(self, run: RunHandle, stats: ProfilerStats) -> None:
        self.progress.append(stats)

    def run_stopped(self, run: RunHandle, status: RunStatus) -> None:
        self.events.append(f"stopped {status}")
        self.stored_status = greenprof.RunStore(self.db_path).run(run.run_id).status


def test_observers_hear_of_the_start_the_progress_and_the_stored_end(db_path: Path) -> None:
    clock = ManualClock()
    recorder = _Recorder(db_path)
    with greenprof.Profiler(
        "observed", db=db_path, sensors=_sensors(clock), clock=clock, observers=[recorder]
    ) as prof:
        prof.step_end(samples=4)
        clock.advance(2.0)  # past the progress interval, on the profiler's clock
        assert _wait_for(lambda: bool(recorder.progress))
    assert recorder.events == [f"started observed {prof.run_id}", "stopped completed"]
    assert recorder.progress[0].running and recorder.progress[0].run_id == prof.run_id
    assert recorder.stored_status == "completed"  # told after the run was stored


class _Failing:
    def run_started(self, run: RunHandle) -> None:
        raise RuntimeError("collector down")

    def run_progress(self, run: RunHandle, stats: ProfilerStats) -> None:
        raise RuntimeError("collector down")

    def run_stopped(self, run: RunHandle, status: RunStatus) -> None:
        raise RuntimeError("collector down")


def test_a_failing_observer_never_fails_the_run(db_path: Path) -> None:
    prof = greenprof.Profiler("unobserved", db=db_path, sensors=_sensors(), observers=[_Failing()])
    with prof:
        prof.step_end(samples=2)
    run = greenprof.RunStore(db_path).run("unobserved")
    assert (run.status, run.steps) == ("completed", 1)
    assert run.error is not None and "collector down" in run.error


class _BadInfoSensor(FakeSensor):
    @property
    def info(self) -> DeviceInfo:
        raise RuntimeError("driver refused to describe the device")

    @info.setter
    def info(self, _value: DeviceInfo) -> None:
        pass


def test_a_failed_start_leaves_no_run_running_and_can_be_retried(db_path: Path) -> None:
    prof = greenprof.Profiler("retry", db=db_path, sensors=[_BadInfoSensor("gpu:0")])
    with pytest.raises(RuntimeError, match="describe"):
        prof.start()
    assert not prof.running and prof.stats().run_id is None
    assert all(r.status != "running" for r in greenprof.RunStore(db_path).runs())
    with greenprof.Profiler("retry", db=db_path, sensors=_sensors()) as again:
        again.step_end()
    assert greenprof.RunStore(db_path).run(again.run_id or -1).steps == 1


def test_the_wall_clock_dates_the_run(db_path: Path) -> None:
    with greenprof.Profiler(
        "dated", db=db_path, sensors=_sensors(), wall_clock=lambda: 1_700_000_000.0
    ):
        pass
    assert greenprof.RunStore(db_path).run("dated").started_at == 1_700_000_000.0


def test_a_profiler_from_a_config(db_path: Path) -> None:
    config = greenprof.ProfilerConfig.create("configured", db=db_path, tags={"lr": 0.1})
    with greenprof.Profiler.from_config(config, sensors=_sensors()) as prof:
        prof.step_end(samples=8)
    run = greenprof.RunStore(db_path).run("configured")
    assert (run.steps, run.samples, run.tags) == (1, 8, {"lr": 0.1})
