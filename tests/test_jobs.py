"""Jobs: each rank is a run of one job; the job's total counts every device once."""

import dataclasses
import time
from pathlib import Path

import pytest

import greenprof
from greenprof.cli import main
from greenprof.errors import ConfigError
from greenprof.jobs import detect_job
from greenprof.sensors.fake import FakeSensor


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, (None, None, None, None)),
        (
            {"TORCHELASTIC_RUN_ID": "abc", "RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"},
            ("torchrun-abc", 3, 1, 4),
        ),
        (  # torchrun without --rdzv-id: the rendezvous address tells launches apart
            {"TORCHELASTIC_RUN_ID": "none", "MASTER_ADDR": "n1", "MASTER_PORT": "29500",
             "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2"},
            ("torchrun-n1-29500", 0, 0, 2),
        ),
        (
            {"SLURM_JOB_ID": "77", "SLURM_STEP_ID": "2", "SLURM_PROCID": "5",
             "SLURM_LOCALID": "1", "SLURM_NTASKS": "8"},
            ("slurm-77.2", 5, 1, 8),
        ),
        (
            {"OMPI_MCA_ess_base_jobid": "123", "OMPI_COMM_WORLD_RANK": "1",
             "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"},
            ("ompi-123", 1, 1, 2),
        ),
        ({"GREENPROF_JOB": "sweep-7", "SLURM_JOB_ID": "77"}, ("sweep-7", None, None, None)),
    ],
)  # fmt: skip
def test_the_job_comes_from_the_launchers_environment(
    env: dict[str, str], expected: tuple[object, ...]
) -> None:
    job = detect_job(env, host="node-1")
    assert (job.job_id, job.rank, job.local_rank, job.world_size) == expected
    assert job.host == "node-1"


def test_a_bad_rank_variable_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"\$RANK must be an integer"):
        detect_job({"RANK": "zero"})


def _rank(db: Path, rank: int, sensors: list[FakeSensor], *, steps: int = 5) -> int:
    env = {
        "TORCHELASTIC_RUN_ID": "job42",
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": "2",
        "GREENPROF_DB": str(db),
    }
    with greenprof.Profiler("ddp", db=db, sensors=sensors, interval_s=0.02, env=env) as prof:
        time.sleep(0.05)  # setup before the first step
        for _ in range(steps):
            with prof.step(samples=16):
                time.sleep(0.01)
    assert prof.run_id is not None
    return prof.run_id


def _gpu(uuid: str, power_w: float) -> FakeSensor:
    sensor = FakeSensor("gpu:0", power_w, update_period_s=0.02)
    sensor.info = dataclasses.replace(sensor.info, uuid=uuid)
    return sensor


def test_a_jobs_total_counts_each_gpu_and_each_node_sensor_once(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two ranks on one node: each its own GPU; both (wrongly) given the node's CPU sensor,
    # and rank 1 also measured rank 0's GPU: the job must count each device once.
    first = _rank(db_path, 0, [_gpu("GPU-a", 200.0), FakeSensor("cpu:0", 40.0)])
    second = _rank(
        db_path, 1, [_gpu("GPU-b", 100.0), FakeSensor("cpu:0", 40.0), _gpu_alias("GPU-a")]
    )
    store = greenprof.RunStore(db_path)
    runs = store.runs(job="torchrun-job42")
    assert {r.run_id for r in runs} == {first, second}
    assert {(r.rank, r.local_rank, r.world_size) for r in runs} == {(0, 0, 2), (1, 1, 2)}
    assert all(r.duration_s > 0 and r.setup_s > 0 and r.setup_energy_j > 0 for r in runs)

    assert main(["show", "torchrun-job42", "--db", str(db_path)]) == 0
    out = capsys.readouterr().out
    assert "job torchrun-job42: 2 rank(s) on 1 node(s), 5 steps" in out
    assert "counted once; summing the ranks would count" in out

    from greenprof.jobs import job_totals

    energies = {r.run_id: store.device_energy_j(r.run_id) for r in runs}
    totals = job_totals("torchrun-job42", runs, energies)
    by_run = {r.run_id: energies[r.run_id] for r in runs}
    expected = (
        max(by_run[first]["gpu:0"], by_run[second]["gpu:1"])  # GPU-a, measured twice
        + by_run[second]["gpu:0"]  # GPU-b
        + max(by_run[first]["cpu:0"], by_run[second]["cpu:0"])  # the node's CPU
    )
    assert totals.energy_j == pytest.approx(expected)
    assert totals.counted_twice_j == pytest.approx(sum(r.energy_j for r in runs) - expected)
    assert totals.samples == 2 * 5 * 16
    assert totals.steps == 5

    # `show NAME` of a rank shows its job, not one rank's share
    assert main(["show", "ddp", "--db", str(db_path)]) == 0
    assert "job torchrun-job42" in capsys.readouterr().out
    # and `runs` says which rank each run is
    assert main(["runs", "--db", str(db_path)]) == 0
    table = capsys.readouterr().out
    assert "job/rank" in table and "torchrun-job42/1" in table


def _gpu_alias(uuid: str) -> FakeSensor:
    sensor = FakeSensor("gpu:1", 200.0, update_period_s=0.02)
    sensor.info = dataclasses.replace(sensor.info, uuid=uuid)
    return sensor


def test_a_rank_without_sensors_has_a_duration_and_no_absurd_efficiency(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = _rank(db_path, 1, [])
    run = greenprof.RunStore(db_path).run(run_id)
    assert run.duration_s > 0.05
    assert main(["show", str(run_id), "--db", str(db_path)]) == 0
    out = capsys.readouterr().out
    assert "no energy measured" in out
    assert "samples/kWh" not in out
