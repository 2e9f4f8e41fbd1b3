"""`greenprof repair`: a dead run's stored step boundaries get energies from its readings."""

import sqlite3
import time
from pathlib import Path

import pytest

from greenprof.cli import main
from greenprof.records import STEP_RECOVERED, DeviceInfo
from greenprof.store.reader import RunStore
from greenprof.store.recovery import dead_runs, repair
from greenprof.store.writer import RunSpec, RunTotals, StoreWriter

GPU = DeviceInfo("gpu:0", "gpu", "counter")
CPU = DeviceInfo("cpu:0", "cpu", "model", node_wide=True)
DEAD_PID = 2**31 - 7  # no such process here


def _killed_run(path: Path, *, host: str = "this-host") -> int:
    """A run as a SIGKILL leaves it: 3 steps attributed, 5 more only as boundaries,
    readings of 100 W (GPU) and 20 W (CPU) every 0.1 s up to 1.0 s, still `running`."""
    writer = StoreWriter(path, flush_interval_s=3600, wall_clock=lambda: 1001.0)
    run_id = writer.create_run(
        RunSpec(
            "killed", started_at=1000.0, interval_s=0.1, devices=[GPU, CPU], host=host, pid=DEAD_PID
        )
    )
    writer.add_steps(
        [(i, 0, 0.1 * i, 0.1 * (i + 1), 8, 12.0, 0, None, 0, 0.5, 0.5, 0.25) for i in range(3)],
        [(i, d, e, e / 10) for i in range(3) for d, e in (("gpu:0", 10.0), ("cpu:0", 2.0))],
    )
    writer.add_pending_steps([(i, 0, 0.1 * i, 0.1 * (i + 1), 8, 0.5) for i in range(8)])
    writer.add_samples(
        [
            (d, 0.1 * k, p * 0.1 * k, p, None, None, None)
            for k in range(11)
            for d, p in (("gpu:0", 100.0), ("cpu:0", 20.0))
        ]
    )
    writer.set_totals(RunTotals(3, 24, 120.0, 36.0, 1.0, {"gpu:0": 100.0, "cpu:0": 20.0}))
    writer.flush()
    writer.sink.conn.close()  # the process dies: no close(), nothing more written
    return run_id


def test_a_killed_runs_pending_steps_are_attributed_from_its_readings(db_path: Path) -> None:
    run_id = _killed_run(db_path)
    (done,) = repair(db_path, host="this-host", wall_clock=lambda: 1100.0)
    assert (done.run_id, done.recovered_steps, done.steps) == (run_id, 5, 8)
    with RunStore(db_path) as store:
        run = store.run(run_id)
        steps = store.steps(run_id)
        assert store.pending_steps(run_id) == 0
    assert run.status == "interrupted"
    assert run.error is not None and "5 step(s) recovered" in run.error
    assert [s.step for s in steps] == list(range(8))
    recovered = steps[3:]
    assert all(s.flags & STEP_RECOVERED and s.interpolated for s in recovered)
    assert not any(s.flags & STEP_RECOVERED for s in steps[:3])
    for s in recovered:  # 120 W for 0.1 s each, split per device
        assert s.device_energy_j == pytest.approx({"gpu:0": 10.0, "cpu:0": 2.0})
        assert s.loss == 0.5
        assert (s.bounds, s.device_uncertainty_j) == (None, {})  # not known, not 0 J
    assert all(s.energy_uncertainty_j == 1.25 for s in steps[:3])  # stored live: kept
    assert run.steps == 8
    assert run.samples == 64
    assert run.step_energy_j == pytest.approx(sum(s.energy_j for s in steps))
    assert run.energy_j == pytest.approx(120.0)


def test_repair_through_the_command_line_reports_each_run(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = _killed_run(db_path, host="elsewhere")  # silent for hours: dead on any host
    assert main(["repair", "--db", str(db_path)]) == 0
    assert f"run {run_id} killed: 5 step(s) recovered" in capsys.readouterr().out
    assert main(["repair", "--db", str(db_path)]) == 0
    assert "nothing to repair" in capsys.readouterr().out


def test_steps_far_beyond_the_last_reading_get_no_invented_energy(db_path: Path) -> None:
    run_id = _killed_run(db_path)
    conn = sqlite3.connect(db_path)
    conn.execute(  # a step 5 s after the last stored reading
        "INSERT INTO pending_steps (run_id, step, epoch, start_s, end_s) VALUES (?, 8, 0, 6, 6.1)",
        (run_id,),
    )
    conn.commit()
    conn.close()
    repair(db_path, host="this-host", wall_clock=lambda: 1100.0)
    last = RunStore(db_path).steps(run_id)[-1]
    assert (last.step, last.energy_j, last.device_energy_j) == (8, 0.0, {})


def test_live_runs_are_never_taken_for_dead(db_path: Path) -> None:
    writer = StoreWriter(db_path)
    writer.create_run(RunSpec("alive", started_at=time.time(), interval_s=0.1))
    conn = sqlite3.connect(db_path)
    try:
        now = time.time() + 5  # a few seconds of silence, process alive
        assert dead_runs(conn, host="h", now=now, alive=lambda _pid: True) == []
        assert dead_runs(conn, host="h", now=now + 60, alive=lambda _pid: True) != []
    finally:
        conn.close()
        writer.close()
    assert RunStore(db_path).run("alive").status == "completed"
