"""Process and thread lifecycle faults against the real profiler: SIGTERM, fork, stop()
from another thread, a failed start retried, and sensors that block, die or lie.

Child processes are real (scripts written to tmp_path); waits are bounded polls.
"""

from __future__ import annotations

import math
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

import greenprof
from greenprof.errors import StoreError
from greenprof.records import (
    STEP_DEVICE_MISSING,
    STEP_POLL_GAP,
    STEP_READING_REJECTED,
    Reading,
    step_flag_names,
)
from greenprof.sensors.fake import FakeSensor
from greenprof.store.reader import RunStore
from tests.reliability.conftest import (
    busy,
    fake_sensors,
    finish,
    read_int,
    read_run,
    sql,
    start_script,
    wait_for,
)

pytestmark = pytest.mark.slow


def _rows(db: Path, run_id: int) -> int:
    count = sql(db, "SELECT count(*) FROM steps WHERE run_id = ?", run_id)[0][0]
    assert isinstance(count, int)
    return count


# 8. SIGTERM -------------------------------------------------------------------------

SIGTERM_SCRIPT = """
import os, sys, time
from pathlib import Path
import greenprof
from greenprof.sensors.fake import FakeSensor

db, out = Path(sys.argv[1]), Path(sys.argv[2])
fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
sensors = [FakeSensor("gpu:0", 200.0, update_period_s=0.02), FakeSensor("cpu:0", 40.0)]
with greenprof.Profiler("terminated", db=db, sensors=sensors, interval_s=0.02) as prof:
    taken = 0
    while True:
        with prof.step(samples=2):
            end = time.perf_counter() + 0.003
            while time.perf_counter() < end:
                pass
        taken += 1
        os.pwrite(fd, b"%-20d %-20d\\n" % (taken, prof.run_id), 0)
"""


def test_sigterm_stores_the_run_interrupted_and_dies_of_the_signal(
    tmp_path: Path, db_path: Path
) -> None:
    out = tmp_path / "progress"
    child = start_script(tmp_path, SIGTERM_SCRIPT, str(db_path), str(out))
    try:
        assert wait_for(lambda: read_int(out) >= 100 or child.poll() is not None, 120)
        assert child.poll() is None, child.communicate()
        child.send_signal(signal.SIGTERM)
    finally:
        code, _out, err = finish(child)
    assert code == -signal.SIGTERM, err  # a shell reports 143
    assert "Traceback" not in err
    completed, run_id = map(int, out.read_text().split())
    stored = read_run(db_path, run_id)
    assert stored.run.status == "interrupted"
    assert "SIGTERM" in (stored.run.error or "")
    assert stored.run.ended_at is not None
    # Every completed step is stored (plus, at most, the step the signal landed in).
    assert completed <= len(stored.steps) <= completed + 1
    assert [s.step for s in stored.steps] == list(range(len(stored.steps)))
    assert stored.run.steps == len(stored.steps) == _rows(db_path, run_id)
    # A loaded machine may starve the sampler (flagged poll_gap, truthfully); nothing else.
    assert all(s.energy_j > 0 and s.flags & ~STEP_POLL_GAP == 0 for s in stored.steps)
    assert sql(db_path, "SELECT count(*) FROM pending_steps")[0][0] == 0


# 9. fork() after start ----------------------------------------------------------------

FORK_SCRIPT = """
import os, sys, time
from pathlib import Path
import greenprof
from greenprof.sensors.fake import FakeSensor

db, mode = Path(sys.argv[1]), sys.argv[2]

def work():
    end = time.perf_counter() + 0.003
    while time.perf_counter() < end:
        pass

sensors = [FakeSensor("gpu:0", 200.0, update_period_s=0.02), FakeSensor("cpu:0", 40.0)]
with greenprof.Profiler("parent", db=db, sensors=sensors, interval_s=0.02) as prof:
    for _ in range(30):
        with prof.step(samples=1):
            work()
    time.sleep(0.3)  # the writer has stored some steps before the fork
    pid = os.fork()
    if pid == 0:
        if mode == "own-run":
            child_sensors = [FakeSensor("cpu:0", 10.0)]
            with greenprof.Profiler("child", db=db, sensors=child_sensors) as own:
                for _ in range(10):
                    with own.step(samples=7):
                        work()
        for _ in range(10):
            with prof.step(samples=1000):
                work()
        if mode == "_exit":
            os._exit(0)
        # "exit": leave through the parent's `with` block, then exit normally
    else:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        for _ in range(30):
            with prof.step(samples=1):
                work()
if pid == 0:
    sys.exit(0)
print(prof.run_id)
"""


@pytest.mark.parametrize("mode", ["_exit", "exit", "own-run"])
def test_forked_child_leaves_the_parents_run_alone(
    tmp_path: Path, db_path: Path, mode: str
) -> None:
    code, out, err = finish(start_script(tmp_path, FORK_SCRIPT, str(db_path), mode))
    assert code == 0, err
    assert "Traceback" not in err
    run_id = int(out.split()[0])
    parent = read_run(db_path, run_id)
    assert parent.run.status == "completed", parent.run.error
    assert parent.run.name == "parent"
    assert [s.step for s in parent.steps] == list(range(60))
    assert {s.samples for s in parent.steps} == {1}  # the child's samples=1000 never landed
    assert parent.run.steps == 60 == _rows(db_path, run_id)
    assert parent.run.samples == 60
    assert all(s.energy_j > 0 for s in parent.steps)
    with RunStore(db_path) as store:
        others = [r for r in store.runs() if r.run_id != run_id]
        if mode == "own-run":
            assert [r.name for r in others] == ["child"]
            child = others[0]
            assert child.status == "completed"
            assert child.steps == 10 == len(store.steps(child.run_id))
            assert child.samples == 70
        else:
            assert others == []


# 10. stop() from another thread -----------------------------------------------------------


def test_stop_from_another_thread_while_the_loop_steps(db_path: Path) -> None:
    prof = greenprof.Profiler("stopped", db=db_path, sensors=fake_sensors(), interval_s=0.02)
    returned = threading.Event()

    def stop_later() -> None:
        time.sleep(0.5)
        prof.stop()
        returned.set()

    stopper = threading.Thread(target=stop_later, daemon=True)
    taken = 0
    with prof:
        stopper.start()
        deadline = time.monotonic() + 60
        while not returned.is_set() and time.monotonic() < deadline:
            with prof.step(samples=1):
                busy(0.002)
            taken += 1
        for _ in range(20):  # the loop goes on a little after the run has ended
            with prof.step(samples=1):
                busy(0.002)
            taken += 1
    stopper.join(30)
    assert returned.is_set() and not stopper.is_alive()
    assert not prof.running
    stored = read_run(db_path, prof.run_id)
    assert stored.run.status == "completed"
    assert 0 < len(stored.steps) <= taken
    assert stored.run.steps == len(stored.steps) == _rows(db_path, prof.run_id or -1)
    assert [s.step for s in stored.steps] == list(range(len(stored.steps)))


# 11. A failed start, then a retry ---------------------------------------------------------


def test_retry_after_a_failed_start_records_every_step(tmp_path: Path, db_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StoreError):
        greenprof.Profiler("bad", db=blocker / "runs.db", sensors=fake_sensors()).start()
    with greenprof.Profiler("good", db=db_path, sensors=fake_sensors(), interval_s=0.02) as prof:
        for _ in range(25):
            with prof.step(samples=2):
                busy(0.002)
    stored = read_run(db_path)
    assert stored.run.name == "good" and stored.run.status == "completed"
    assert stored.run.steps == len(stored.steps) == 25
    assert all(set(s.device_energy_j) == {"gpu:0", "cpu:0"} for s in stored.steps)


def test_same_profiler_started_again_after_the_cause_is_fixed(tmp_path: Path) -> None:
    place = tmp_path / "file"
    place.write_text("")
    prof = greenprof.Profiler(
        "again", db=place / "runs.db", sensors=fake_sensors(), interval_s=0.02
    )
    with pytest.raises(StoreError):
        prof.start()
    place.unlink()
    place.mkdir()  # the cause is fixed: the directory now exists
    with prof:
        for _ in range(25):
            with prof.step(samples=2):
                busy(0.002)
    stored = read_run(place / "runs.db")
    assert stored.run.status == "completed"
    assert stored.run.steps == len(stored.steps) == 25
    flags = {step_flag_names(s.flags & ~STEP_POLL_GAP) for s in stored.steps}
    assert flags == {()}, flags  # poll_gap: a loaded machine may starve the sampler
    assert all(set(s.device_energy_j) == {"gpu:0", "cpu:0"} for s in stored.steps)
    assert all(e > 0 for s in stored.steps for e in s.device_energy_j.values())
    assert stored.run.energy_j > 0


# 12. Sensors that block, die or lie ---------------------------------------------------------


class BlockingSensor(FakeSensor):
    """A driver call that never returns."""

    def __init__(self, device: str) -> None:
        super().__init__(device, 50.0)
        self.release = threading.Event()

    def read(self) -> Reading:
        self.release.wait()
        return super().read()


def test_a_sensor_blocking_forever_does_not_wedge_the_run(db_path: Path) -> None:
    blocking = BlockingSensor("gpu:1")
    done = threading.Event()
    failure: list[BaseException] = []
    result: dict[str, int | None] = {}

    def train() -> None:
        try:
            sensors = [FakeSensor("gpu:0", 200.0, update_period_s=0.02), blocking]
            with greenprof.Profiler("blocked", db=db_path, sensors=sensors, interval_s=0.02) as p:
                for _ in range(30):
                    with p.step(samples=1):
                        busy(0.003)
            result["run_id"] = p.run_id
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    trainer = threading.Thread(target=train, daemon=True)
    try:
        trainer.start()
        assert done.wait(60), "the `with Profiler` block did not exit"
    finally:
        blocking.release.set()  # let the wedged reader thread go at last
    assert not failure, failure
    stored = read_run(db_path, result["run_id"])
    assert stored.run.status == "completed"
    assert stored.run.steps == len(stored.steps) == 30
    assert all(s.device_energy_j.get("gpu:0", 0) > 0 for s in stored.steps)


class DyingSensor(FakeSensor):
    """Reads normally, then (after ``dies_after_s``) gives nothing usable, or raises."""

    def __init__(self, device: str, dies_after_s: float, how: str) -> None:
        super().__init__(device, 100.0, update_period_s=0.02)
        self.death_s = time.monotonic() + dies_after_s
        self.how = how

    def read(self) -> Reading:
        now = time.monotonic()
        if now < self.death_s:
            return super().read()
        if self.how == "raises":
            raise OSError("device fell off the bus")
        return Reading(device=self.device, time_s=now, energy_j=None, power_w=None)


@pytest.mark.parametrize("how", ["none", "raises"])
def test_a_sensor_that_dies_does_not_hold_back_the_steps(db_path: Path, how: str) -> None:
    dying = DyingSensor("gpu:1", 1.0, how)
    sensors = [FakeSensor("gpu:0", 200.0, update_period_s=0.02), dying]
    taken = 0
    with greenprof.Profiler("dying", db=db_path, sensors=sensors, interval_s=0.02) as prof:
        run_id = prof.run_id or -1

        def missing_stored() -> bool:
            flags = sql(db_path, "SELECT flags FROM steps WHERE run_id = ?", run_id)
            return any(int(f) & STEP_DEVICE_MISSING for (f,) in flags)  # type: ignore[call-overload]

        deadline = time.monotonic() + 60
        # Steps keep being stored while the run goes on, the dead device left out.
        while not missing_stored():
            assert time.monotonic() < deadline, "no step was stored without the dead device"
            with prof.step(samples=1):
                busy(0.003)
            taken += 1
            time.sleep(0.005)
        stored_while_running = _rows(db_path, run_id)
        for _ in range(20):
            with prof.step(samples=1):
                busy(0.003)
            taken += 1
    assert stored_while_running > 0
    stored = read_run(db_path, run_id)
    assert stored.run.status == "completed"
    assert stored.run.steps == len(stored.steps) == taken
    assert "gpu:1" in (stored.run.error or "")
    missing = [s for s in stored.steps if s.flags & STEP_DEVICE_MISSING]
    assert missing and missing[-1].step == taken - 1  # every step after the give-up
    first = missing[0].step
    assert all(s.flags & STEP_DEVICE_MISSING for s in stored.steps[first:])
    assert all("gpu:1" not in s.device_energy_j for s in missing)
    assert all(s.device_energy_j.get("gpu:0", 0) > 0 for s in stored.steps)
    assert all(math.isfinite(s.energy_j) and s.energy_j >= 0 for s in stored.steps)


class BrokenSensor(FakeSensor):
    """A sensor whose every read fails (a driver that lost the device before the run)."""

    def read(self) -> Reading:
        raise OSError("NVML: GPU is lost")


def test_a_sensor_that_never_reads_is_not_reported_as_zero_energy(db_path: Path) -> None:
    sensors = [FakeSensor("gpu:0", 200.0, update_period_s=0.02), BrokenSensor("gpu:1")]
    with greenprof.Profiler("broken", db=db_path, sensors=sensors, interval_s=0.02) as prof:
        for _ in range(30):
            with prof.step(samples=1):
                busy(0.01)
    stored = read_run(db_path, prof.run_id)
    assert stored.run.steps == len(stored.steps) == 30
    assert all(s.device_energy_j.get("gpu:0", 0) > 0 for s in stored.steps)
    # gpu:1 was never measured: no step may claim it used 0 J without saying so.
    for s in stored.steps:
        assert "gpu:1" not in s.device_energy_j or s.flags & STEP_DEVICE_MISSING, (
            s.step,
            s.device_energy_j,
            step_flag_names(s.flags),
        )


class LyingSensor(FakeSensor):
    """Every ``every``-th read is bad: a NaN counter, or the counter 1 J below the
    previous read (a glitch that runs backwards)."""

    def __init__(self, device: str, how: str, every: int = 7) -> None:
        super().__init__(device, 150.0, update_period_s=0.02)
        self.how = how
        self.every = every
        self.reads = 0
        self.previous_j = 0.0

    def read(self) -> Reading:
        good = super().read()
        assert good.energy_j is not None
        self.reads += 1
        previous_j, self.previous_j = self.previous_j, good.energy_j
        if self.reads % self.every or previous_j < 2.0:
            return good
        energy = math.nan if self.how == "nan" else previous_j - 1.0
        return Reading(device=self.device, time_s=good.time_s, energy_j=energy, power_w=None)


def test_nan_and_backwards_readings_are_rejected_and_flagged(db_path: Path) -> None:
    sensors = [
        FakeSensor("gpu:0", 200.0, update_period_s=0.02),
        LyingSensor("gpu:1", "nan"),
        LyingSensor("gpu:2", "backwards"),
    ]
    taken = 0
    with greenprof.Profiler("lying", db=db_path, sensors=sensors, interval_s=0.02) as prof:
        for _ in range(150):
            with prof.step(samples=1):
                busy(0.004)
            taken += 1
    stored = read_run(db_path, prof.run_id)
    assert stored.run.status == "completed"
    assert stored.run.steps == len(stored.steps) == taken
    assert [s.step for s in stored.steps] == list(range(taken))
    for s in stored.steps:
        assert math.isfinite(s.energy_j) and s.energy_j >= 0
        assert all(math.isfinite(e) and e >= 0 for e in s.device_energy_j.values())
    flagged = [s for s in stored.steps if s.flags & STEP_READING_REJECTED]
    assert flagged, "no step was flagged near a rejected reading"
    assert all("reading_rejected" in step_flag_names(s.flags) for s in flagged)
    conn = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)
    try:
        rejected = dict(
            conn.execute(
                "SELECT device, rejected_readings FROM devices WHERE run_id = ?", (prof.run_id,)
            ).fetchall()
        )
        stored_nan = conn.execute(
            "SELECT count(*) FROM samples WHERE energy_j != energy_j OR power_w != power_w"
        ).fetchone()[0]
    finally:
        conn.close()
    assert rejected["gpu:0"] == 0
    assert rejected["gpu:1"] > 0 and rejected["gpu:2"] > 0, rejected
    assert stored_nan == 0
    # The total is the honest sum of the good counters, not inflated by the glitches.
    energies = {d: sum(s.device_energy_j.get(d, 0.0) for s in stored.steps) for d in rejected}
    assert energies["gpu:2"] == pytest.approx(energies["gpu:0"] * 150 / 200, rel=0.25)


# 13. The SIGTERM handler is the run's only while it runs ------------------------------------


def test_the_sigterm_handler_is_put_back_when_the_run_stops(db_path: Path) -> None:
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    for name in ("first", "second"):
        with greenprof.Profiler(name, db=db_path, sensors=fake_sensors()):
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with RunStore(db_path) as store:
        assert [r.status for r in store.runs()] == ["completed", "completed"]
