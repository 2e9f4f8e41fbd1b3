import multiprocessing
import sqlite3
import time
from pathlib import Path

import pytest

from greenprof.errors import RunNotFound
from greenprof.records import CarbonSettings, DeviceInfo
from greenprof.store.reader import STALE_AFTER_S, RunStore
from greenprof.store.writer import RunSpec, RunTotals, StoreWriter

GPU = DeviceInfo("gpu:0", "gpu", "counter", name="Test GPU", uuid="GPU-1234")
CPU = DeviceInfo("cpu:0", "cpu", "model", name="Test CPU", node_wide=True, note="estimate")


def _write_run(path: Path, name: str, steps: int, *, energy_per_step_j: float = 2.0) -> int:
    writer = StoreWriter(path, flush_interval_s=0.05)
    run_id = writer.create_run(
        RunSpec(
            name,
            started_at=time.time(),
            interval_s=0.1,
            devices=[GPU, CPU],
            carbon=CarbonSettings(400.0, 1.2, "test data", "DEU"),
            tags={"bs": "64"},
        )
    )
    writer.add_steps(
        [
            (i, i // 10, i * 0.1, (i + 1) * 0.1, 32, energy_per_step_j, 0, 1.0 / (i + 1))
            for i in range(steps)
        ],
        [(i, d, energy_per_step_j / 2) for i in range(steps) for d in ("gpu:0", "cpu:0")],
    )
    writer.add_samples([("gpu:0", 0.5, 1.0, 100.0, 50.0, 1 << 30, 60.0)])
    total = steps * energy_per_step_j
    writer.set_totals(
        RunTotals(
            steps,
            steps * 32,
            total * 1.1,
            total,
            steps * 0.1,
            {"gpu:0": total * 0.55, "cpu:0": total * 0.55},
        )
    )
    writer.close(status="completed")
    return run_id


def test_runs_and_steps_read_back_as_written(db_path: Path) -> None:
    run_id = _write_run(db_path, "resnet", 25)
    with RunStore(db_path) as store:
        (run,) = store.runs()
        assert (run.run_id, run.name, run.status, run.steps, run.samples) == (
            run_id,
            "resnet",
            "completed",
            25,
            800,
        )
        assert run.tags == {"bs": "64"}
        assert run.devices == (CPU, GPU)
        assert run.carbon == CarbonSettings(400.0, 1.2, "test data", "DEU")
        assert run.co2_g == pytest.approx(55.0 / 3.6e6 * 1.2 * 400.0)
        steps = store.steps(run_id)
        assert [s.step for s in steps] == list(range(25))
        assert steps[3].device_energy_j == {"gpu:0": 1.0, "cpu:0": 1.0}
        assert steps[3].energy_j == 2.0
        assert steps[3].loss == pytest.approx(0.25)
        assert [e.steps for e in store.epochs(run_id)] == [10, 10, 5]
        assert store.samples(run_id)[0].temperature_c == 60.0


def test_incremental_and_streamed_step_reads(db_path: Path) -> None:
    run_id = _write_run(db_path, "r", 120)
    with RunStore(db_path) as store:
        assert [s.step for s in store.steps(run_id, after_step=115)] == [116, 117, 118, 119]
        streamed = list(store.iter_steps(run_id, batch_size=7))
        assert [s.step for s in streamed] == list(range(120))
        assert all(len(s.device_energy_j) == 2 for s in streamed)
        assert len(store.steps(run_id, limit=10)) == 10


def test_run_lookup_by_id_or_newest_of_a_name(db_path: Path) -> None:
    first = _write_run(db_path, "bs64", 1)
    second = _write_run(db_path, "bs64", 2)
    with RunStore(db_path) as store:
        assert store.run("bs64").run_id == second
        assert store.run(first).run_id == first
        assert store.run(str(first)).run_id == first
        with pytest.raises(RunNotFound, match="greenprof runs"):
            store.run("nope")


def test_a_run_whose_process_stopped_writing_shows_as_interrupted(db_path: Path) -> None:
    writer = StoreWriter(db_path)
    run_id = writer.create_run(RunSpec("killed", started_at=time.time(), interval_s=0.1))
    writer.flush()
    later = time.time() + STALE_AFTER_S + 5
    with RunStore(db_path, wall_clock=lambda: later) as store:
        assert store.run(run_id).status == "interrupted"
    with RunStore(db_path) as store:
        assert store.run(run_id).status == "running"
    writer.close()


def test_writer_flushes_in_the_background_without_close(db_path: Path) -> None:
    writer = StoreWriter(db_path, flush_interval_s=0.05)
    run_id = writer.create_run(RunSpec("live", started_at=time.time(), interval_s=0.1))
    writer.add_steps([(0, 0, 0.0, 1.0, None, 5.0, 0, None)])
    deadline = time.monotonic() + 5
    with RunStore(db_path) as store:
        while not store.steps(run_id) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [s.energy_j for s in store.steps(run_id)] == [5.0]
    writer.close()


def _many_runs(path: str, name: str) -> None:
    for _ in range(3):
        _write_run(Path(path), name, 400)


def test_several_processes_write_one_file_without_losing_rows(db_path: Path) -> None:
    _write_run(db_path, "seed", 1)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_many_runs, args=(str(db_path), f"p{i}")) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    with RunStore(db_path) as store:
        runs = store.runs()
        assert len(runs) == 13
        counts = sum(store.step_aggregate(run.run_id).steps for run in runs)
        assert counts == 1 + 12 * 400
        energies = sum(
            len(step.device_energy_j) for run in runs for step in store.iter_steps(run.run_id)
        )
        assert energies == 2 * counts


def test_a_run_can_be_marked_failed_from_outside_but_a_failure_is_never_overwritten(
    db_path: Path,
) -> None:
    from greenprof.store.writer import mark_run_ended

    run_id = _write_run(db_path, "child", 3)
    mark_run_ended(db_path, run_id, "failed", "exit code 2")
    mark_run_ended(db_path, run_id, "interrupted", "killed by SIGTERM")
    run = RunStore(db_path).run(run_id)
    assert (run.status, run.error) == ("failed", "exit code 2")


def test_tags_edited_into_other_json_values_read_as_their_json_text(db_path: Path) -> None:
    run_id = _write_run(db_path, "edited", 1)
    conn = sqlite3.connect(db_path)
    with conn:
        conn.execute(
            """UPDATE runs SET tags = '{"bs": 64, "gone": null, "sizes": [1, 2]}'"""
            " WHERE run_id = ?",
            (run_id,),
        )
    conn.close()
    with RunStore(db_path) as store:
        assert store.run(run_id).tags == {"bs": 64, "gone": "null", "sizes": "[1, 2]"}


def test_tags_keep_json_types_and_what_json_cannot_hold_is_stored_as_text(
    db_path: Path,
) -> None:
    writer = StoreWriter(db_path, flush_interval_s=3600)
    run_id = writer.create_run(
        RunSpec(
            "typed",
            started_at=time.time(),
            interval_s=0.1,
            tags={"bs": 64, "lr": 0.5, "amp": False, "diverged": float("nan"), "opt": "adam"},
        )
    )
    writer.rename("typed-2", {"bs": 128, "limit": float("inf"), "where": Path("/data")})  # type: ignore[dict-item]
    writer.close(status="completed")
    with RunStore(db_path) as store:
        run = store.run(run_id)
    assert run.name == "typed-2"
    assert run.tags == {
        "bs": 128, "lr": 0.5, "amp": False, "diverged": "nan", "opt": "adam", "limit": "inf",
        "where": "/data",
    }  # fmt: skip
    assert type(run.tags["amp"]) is bool
