"""Tracker observers against a real local MLflow store (SQLite, no server) and W&B
offline, driven by a real Profiler with simulated sensors on a manual clock."""

import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import greenprof
from greenprof.config import ProfilerConfig
from greenprof.exporters.tracker_clients import FINDERS
from greenprof.exporters.trackers import (
    KNOWN_TRACKERS,
    TrackerObserver,
    mlflow_run_observer,
    tracker_observers,
)
from greenprof.observers import RunHandle
from greenprof.sensors.fake import FakeSensor
from greenprof.stats import ProfilerStats
from tests.exporters._factory import build_run

# MLflow's SQLite store and W&B warn about their own dependencies: not ours to fail on.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*noload.*"),
]

EPOCHS, STEPS_PER_EPOCH, BATCH = 3, 10, 8


@pytest.fixture(autouse=True, scope="module")
def _trackers_stay_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """MLflow's telemetry and matplotlib (which MLflow loads) write under the home
    directory and may phone home: off, and their directories under a temporary one."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DO_NOT_TRACK", "true")
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        patch.setenv("MPLCONFIGDIR", str(home / "matplotlib"))
        patch.setenv("XDG_CONFIG_HOME", str(home / "config"))
        patch.setenv("XDG_CACHE_HOME", str(home / "cache"))
        # the tests pass their observers; a Profiler's own (trackers="auto") would double them
        patch.setenv("GREENPROF_TRACKERS", "off")
        yield


class ManualClock:
    """Monotonic seconds that move when the test says (plus 1 µs per read)."""

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


def _profile(db: Path, name: str, observers: list[Any]) -> greenprof.Profiler:
    """A three-epoch run of 100 ms steps at 240 W; about one progress call per epoch."""
    clock = ManualClock()
    sensors = [
        FakeSensor("gpu:0", 200.0, update_period_s=0.02, clock=clock),
        FakeSensor("cpu:0", 40.0, clock=clock),
    ]
    prof = greenprof.Profiler(
        name, db=db, sensors=sensors, clock=clock, country="DEU", observers=observers
    )
    with prof:
        for epoch in range(EPOCHS):
            prof.epoch_begin(epoch)
            for _ in range(STEPS_PER_EPOCH):
                with prof.step(samples=BATCH):
                    clock.advance(0.1)
            _idle(clock)
        clock.advance(0.2)
    return prof


def _idle(clock: ManualClock) -> None:
    """An idle pause between epochs, 1.5 s on the profiler's clock (attribution and
    progress calls follow it, not the wall's), in small steps the sampler sees."""
    for _ in range(30):
        clock.advance(0.05)
        time.sleep(0.01)


# The setting ---------------------------------------------------------------------------


def test_every_known_tracker_has_a_client() -> None:
    assert tuple(FINDERS) == KNOWN_TRACKERS


def test_auto_imports_nothing_and_follows_only_what_the_script_imported() -> None:
    imported: list[str] = []

    def record(name: str) -> ModuleType:
        imported.append(name)
        raise AssertionError("auto must not import a tracker")

    assert tracker_observers(("auto",), modules={}, import_module=record) == []
    fake_mlflow = ModuleType("mlflow")
    observers = tracker_observers(("auto",), modules={"mlflow": fake_mlflow}, import_module=record)
    assert [o.tracker for o in observers] == ["mlflow"]  # type: ignore[attr-defined]
    assert [o.tracker for o in tracker_observers(("mlflow", "wandb"), modules={})] == [  # type: ignore[attr-defined]
        "mlflow",
        "wandb",
    ]
    assert imported == []  # not even for named trackers: only when a run starts


def test_a_named_tracker_without_an_active_run_is_one_warning(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mlflow = pytest.importorskip("mlflow")
    assert mlflow.active_run() is None
    caplog.set_level(logging.WARNING, logger="greenprof")
    prof = _profile(db_path, "no-active-run", tracker_observers(("mlflow",)))
    assert greenprof.RunStore(db_path).run(prof.run_id or -1).status == "completed"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "greenprof: trackers=mlflow but no mlflow run is active: nothing logged there"
    ]


# MLflow ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One local SQLite tracking store for the module (creating one runs migrations)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def mlflow(mlflow_uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    module = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    yield module
    while module.active_run() is not None:
        module.end_run()


def _history(client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    """A metric's points in step order."""
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_an_active_mlflow_run_gets_energy_carbon_and_tags(db_path: Path, mlflow: Any) -> None:
    with mlflow.start_run() as active:
        prof = _profile(db_path, "mlflow-run", tracker_observers(("auto",)))
    client = mlflow.tracking.MlflowClient()
    run_id = active.info.run_id
    stored = greenprof.RunStore(db_path).run(prof.run_id or -1)
    steps = greenprof.RunStore(db_path).steps(stored.run_id)
    tags = client.get_run(run_id).data.tags
    assert tags["greenprof.run_id"] == str(stored.run_id)
    assert tags["greenprof.run_name"] == "mlflow-run"
    assert tags["greenprof.db"] == str(db_path)
    assert sorted(tags["greenprof.sensors"].split()) == ["cpu:0=simulated", "gpu:0=simulated"]

    energy = _history(client, run_id, "greenprof/energy_j")
    # batched: a few points for 30 steps, the last at the last step with the stored total
    assert 1 <= len(energy) <= EPOCHS + 1
    assert energy[-1] == (steps[-1].step, pytest.approx(stored.energy_j))
    assert sorted(energy) == sorted(energy, key=lambda point: point[1]), energy  # grows
    co2 = _history(client, run_id, "greenprof/co2_g")
    assert co2[-1][1] == pytest.approx(stored.co2_g)
    per_sample = _history(client, run_id, "greenprof/j_per_sample")
    assert per_sample[-1][1] == pytest.approx(stored.energy_j / (EPOCHS * STEPS_PER_EPOCH * BATCH))
    power = _history(client, run_id, "greenprof/power_w")
    assert power and all(value == pytest.approx(240.0, rel=0.05) for _, value in power)

    epochs = _history(client, run_id, "greenprof_epoch/energy_j")
    assert [epoch for epoch, _ in epochs] == list(range(EPOCHS))
    for epoch, value in epochs:
        in_epoch = sum(s.energy_j for s in steps if s.epoch == epoch)
        assert value == pytest.approx(in_epoch)
    assert len(_history(client, run_id, "greenprof_epoch/co2_g")) == EPOCHS


def test_a_run_named_by_id_gets_the_numbers_without_being_active(
    db_path: Path, mlflow: Any, mlflow_uri: str
) -> None:
    """As Lightning's MLFlowLogger does: a run made with an MlflowClient, none active."""
    client = mlflow.tracking.MlflowClient(tracking_uri=mlflow_uri)
    experiment_id = client.create_experiment("by-id")
    run_id = client.create_run(experiment_id).info.run_id
    assert mlflow.active_run() is None
    prof = _profile(db_path, "by-id", [mlflow_run_observer(run_id, mlflow_uri)])
    assert mlflow.active_run() is None
    stored = greenprof.RunStore(db_path).run(prof.run_id or -1)
    assert client.get_run(run_id).data.tags["greenprof.run_id"] == str(stored.run_id)
    assert _history(client, run_id, "greenprof/energy_j")[-1][1] == pytest.approx(stored.energy_j)
    epochs = _history(client, run_id, "greenprof_epoch/energy_j")
    assert [epoch for epoch, _ in epochs] == list(range(EPOCHS))


def test_a_tracker_error_is_one_warning_and_never_fails_training(
    db_path: Path, mlflow: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="greenprof")
    client = mlflow.tracking.MlflowClient()
    with mlflow.start_run() as active:
        # a run deleted under the script: every call MLflow gets for it fails
        client.delete_run(active.info.run_id)
        prof = _profile(db_path, "tracker-down", tracker_observers(("mlflow",)))
        client.restore_run(active.info.run_id)  # so that the script's own end_run works
    run = greenprof.RunStore(db_path).run(prof.run_id or -1)
    assert (run.status, run.steps) == ("completed", EPOCHS * STEPS_PER_EPOCH)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "MLflow run" in warnings[0], warnings
    assert run.error is not None and "logging to MLflow run" in run.error


def test_mlflow_is_imported_only_when_named(db_path: Path) -> None:
    modules = {k: v for k, v in sys.modules.items() if k != "mlflow"}
    imported: list[str] = []

    def record(name: str) -> ModuleType:
        imported.append(name)
        return ModuleType(name)  # no active_run: an unusable tracker, one warning

    observer = TrackerObserver("mlflow", forced=False, modules=modules, import_module=record)
    _profile(db_path, "auto-not-imported", [observer])
    assert imported == [] and observer.client is None


def test_progress_is_logged_while_the_run_goes_on_in_one_batch(db_path: Path, mlflow: Any) -> None:
    built = build_run(db_path, steps=40, epochs=2)  # steps already stored, as a live run's are
    notes: list[str] = []
    handle = RunHandle(built.run_id, built.name, db_path, notes.append)
    observer = TrackerObserver("mlflow", forced=False)
    client = mlflow.tracking.MlflowClient()
    with mlflow.start_run() as active:
        observer.run_started(handle)
        threads: list[str] = []
        client_log = observer.client.log  # type: ignore[union-attr]

        def log_and_note_thread(points: Any, timestamp_ms: int) -> None:
            threads.append(threading.current_thread().name)
            client_log(points, timestamp_ms)

        observer.client.log = log_and_note_thread  # type: ignore[union-attr,method-assign]
        stats = ProfilerStats(running=True, run_id=built.run_id, queued_marks=0, energy_j=123.0)
        observer.run_progress(handle, stats)  # returns at once; the observer's thread logs

        def logged() -> list[tuple[int, float]]:
            return _history(client, active.info.run_id, "greenprof/energy_j")

        deadline = time.monotonic() + 60
        while not logged() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert logged() == [(39, 123.0)]  # one point for 40 steps: the run's energy so far
        epochs = _history(client, active.info.run_id, "greenprof_epoch/energy_j")
        assert [epoch for epoch, _ in epochs] == [0]  # epoch 1 is not over yet
        observer.run_stopped(handle, "completed")
    assert logged()[-1] == (39, pytest.approx(built.energy_j))
    epochs = _history(client, active.info.run_id, "greenprof_epoch/energy_j")
    assert [epoch for epoch, _ in epochs] == [0, 1]
    assert sum(v for _, v in epochs) == pytest.approx(built.step_energy_j)
    assert notes == []
    assert set(threads) == {"greenprof-mlflow"}  # never the caller's (training) thread


# Weights & Biases (offline) ---------------------------------------------------------------


@pytest.fixture
def wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    module = pytest.importorskip("wandb")
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": tmp_path / "wandb",
        "WANDB_CONFIG_DIR": tmp_path / "wandb-config",
        "WANDB_CACHE_DIR": tmp_path / "wandb-cache",
        "WANDB_DATA_DIR": tmp_path / "wandb-data",
    }.items():
        if isinstance(value, Path):
            value.mkdir()
        monkeypatch.setenv(name, str(value))
    yield module
    if module.run is not None:
        module.run.finish()


def test_a_wandb_run_gets_the_numbers_without_its_step_moving(db_path: Path, wandb: Any) -> None:
    run = wandb.init(project="greenprof-tests")
    run.log({"loss": 1.0})  # the script owns W&B's step: row 0
    prof = _profile(db_path, "wandb-run", tracker_observers(("auto",)))
    run.log({"loss": 0.5})  # row 1: greenprof's points join the script's next row
    stored = greenprof.RunStore(db_path).run(prof.run_id or -1)
    summary = dict(run.summary)
    config = dict(run.config)
    run.finish()
    assert summary["_step"] == 1, summary  # greenprof committed no row of its own
    assert summary["greenprof/energy_j"] == pytest.approx(stored.energy_j)
    assert summary["greenprof/co2_g"] == pytest.approx(stored.co2_g)
    assert summary["greenprof/j_per_sample"] == pytest.approx(
        stored.energy_j / (EPOCHS * STEPS_PER_EPOCH * BATCH)
    )
    assert summary["greenprof/step"] == EPOCHS * STEPS_PER_EPOCH - 1
    assert summary["greenprof_epoch/epoch"] == EPOCHS - 1
    assert summary["greenprof_epoch/energy_j"] > 0
    assert config["greenprof.run_id"] == str(stored.run_id)
    assert config["greenprof.run_name"] == "wandb-run"


@pytest.mark.skipif(
    "trackers" not in {f.name for f in dataclasses.fields(ProfilerConfig)},
    reason="Profiler(trackers=...) not wired yet",
)
def test_the_profiler_builds_tracker_observers_from_its_setting(
    db_path: Path, mlflow: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = mlflow.tracking.MlflowClient()
    monkeypatch.delenv("GREENPROF_TRACKERS", raising=False)
    with mlflow.start_run() as active:  # auto (the default): the script imported mlflow
        prof = _profile(db_path, "auto", [])
    assert _history(client, active.info.run_id, "greenprof/energy_j")
    monkeypatch.setenv("GREENPROF_TRACKERS", "off")
    with mlflow.start_run() as active:
        _profile(db_path, "off", [])
    assert _history(client, active.info.run_id, "greenprof/energy_j") == []
    assert greenprof.RunStore(db_path).run(prof.run_id or -1).status == "completed"


def test_one_observer_follows_runs_one_after_the_other(db_path: Path, mlflow: Any) -> None:
    observer = TrackerObserver("mlflow", forced=False)
    client = mlflow.tracking.MlflowClient()
    totals = []
    for name in ("first", "second"):
        with mlflow.start_run() as active:
            prof = _profile(db_path, name, [observer])
        energy = _history(client, active.info.run_id, "greenprof/energy_j")
        stored = greenprof.RunStore(db_path).run(prof.run_id or -1)
        totals.append((energy[-1][1], stored.energy_j))
        assert client.get_run(active.info.run_id).data.tags["greenprof.run_name"] == name
    assert [logged for logged, _ in totals] == pytest.approx([stored for _, stored in totals])


def test_a_wedged_tracker_delays_the_end_of_the_run_by_a_bounded_wait(
    db_path: Path, mlflow: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="greenprof")
    built = build_run(db_path, steps=4)
    handle = RunHandle(built.run_id, built.name, db_path, lambda _note: None)
    observer = TrackerObserver("mlflow", forced=False, stop_timeout_s=0.2)
    release = threading.Event()
    with mlflow.start_run():
        observer.run_started(handle)
        client_log = observer.client.log  # type: ignore[union-attr]

        def wedged_log(points: Any, timestamp_ms: int) -> None:
            release.wait(60)  # a tracker server that does not answer
            client_log(points, timestamp_ms)

        observer.client.log = wedged_log  # type: ignore[union-attr,method-assign]
        observer.run_stopped(handle, "completed")  # returns after its bounded wait
        release.set()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "did not take the run's last numbers within 0.2 s" in warnings[0]
