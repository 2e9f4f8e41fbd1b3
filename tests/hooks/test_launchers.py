"""`greenprof run` over launchers: every worker process is one run of the job; the
launcher itself is not a run. Real torchrun with gloo workers on CPU, and a shell
standing in for srun/mpirun (a non-Python launcher that starts Python ranks)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from greenprof.hooks.commands import _RunInfo
from tests.hooks.conftest import StoredRun, assert_consistent, read_runs

REPO = Path(__file__).resolve().parents[2]

DDP_SCRIPT = """
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

dist.init_process_group("gloo")
torch.manual_seed(0)
data = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
loader = DataLoader(data, batch_size=8, sampler=DistributedSampler(data, shuffle=False))
model = DistributedDataParallel(torch.nn.Linear(4, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for x, y in loader:
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()
dist.destroy_process_group()
"""


def _greenprof_run(
    db: Path, tmp_path: Path, *command: str, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "GREENPROF_JOB", "TORCHELASTIC_RUN_ID"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "greenprof", "run", "--db", str(db), *options, "--", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )


def _script(tmp_path: Path, text: str) -> str:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(text))
    return str(path)


def _by_rank(runs: list[StoredRun]) -> list[StoredRun]:
    return sorted(runs, key=lambda r: r.run.rank if r.run.rank is not None else -1)


def _assert_two_ranks(runs: list[StoredRun]) -> None:
    assert [r.run.rank for r in _by_rank(runs)] == [0, 1]
    for stored in runs:
        assert stored.run.name == "train"
        assert stored.run.status == "completed"
        assert stored.run.world_size == 2
        assert [s.samples for s in stored.steps] == [8] * 4  # 64 samples, 2 ranks, batch 8
        assert_consistent(stored)


@pytest.mark.slow
def test_torchrun_profiles_each_worker_not_the_launcher(db_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("no torchrun next to this interpreter")
    script = _script(tmp_path, DDP_SCRIPT)
    result = _greenprof_run(
        db_path, tmp_path, str(torchrun), "--standalone", "--nproc_per_node=2", script
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "no training step" not in result.stderr
    runs = read_runs(db_path)
    assert len(runs) == 2, [(r.run.name, r.run.rank) for r in runs]  # the launcher: no run
    _assert_two_ranks(runs)
    jobs = {getattr(r.run, "job_id", "") for r in runs}
    assert len(jobs) == 1 and None not in jobs  # one job, both ranks


ACCELERATE_SCRIPT = """
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset

accelerator = Accelerator(cpu=True)
torch.manual_seed(0)
data = TensorDataset(torch.randn(64, 4), torch.randn(64, 1))
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
loader = DataLoader(data, batch_size=8)
model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
for x, y in loader:
    optimizer.zero_grad()
    accelerator.backward(torch.nn.functional.mse_loss(model(x), y))
    optimizer.step()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_accelerate_launch_with_a_named_job(db_path: Path, tmp_path: Path) -> None:
    pytest.importorskip("accelerate")
    accelerate = Path(sys.executable).with_name("accelerate")
    if not accelerate.exists():
        pytest.skip("no accelerate next to this interpreter")
    script = _script(tmp_path, ACCELERATE_SCRIPT)
    command = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2"]
    command += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += ["--main_process_port", str(_free_port()), script]
    result = _greenprof_run(db_path, tmp_path, *command, options=("--job", "exp7"))
    assert result.returncode == 0, result.stderr[-4000:]
    runs = read_runs(db_path)
    assert len(runs) == 2, [(r.run.name, r.run.rank) for r in runs]
    assert [r.run.rank for r in _by_rank(runs)] == [0, 1]
    for stored in runs:
        assert stored.run.status == "completed"
        assert len(stored.steps) == 4  # 64 samples, 2 processes, batch 8
        assert stored.run.samples == 32
    if hasattr(runs[0].run, "job_id"):
        assert {r.run.job_id for r in runs} == {"exp7"}


WORKER = """
import torch
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for _ in range(3):
    optimizer.zero_grad()
    model(torch.randn(8, 4)).sum().backward()
    optimizer.step()
"""


@pytest.mark.slow
def test_a_non_python_launcher_starts_profiled_ranks(db_path: Path, tmp_path: Path) -> None:
    """A shell in srun's or mpirun's place: each Python rank it starts is a run."""
    pytest.importorskip("torch")
    script = _script(tmp_path, WORKER)
    rank = "SLURM_JOB_ID=4242 SLURM_NTASKS=2 SLURM_LOCALID={0} SLURM_PROCID={0}"
    line = " & ".join(f"{rank.format(i)} {sys.executable} {script}" for i in range(2))
    result = _greenprof_run(db_path, tmp_path, "sh", "-c", f"{line} & wait")
    assert result.returncode == 0, result.stderr[-4000:]
    runs = _by_rank(read_runs(db_path))
    assert [r.run.rank for r in runs] == [0, 1]
    assert [len(r.steps) for r in runs] == [3, 3]
    assert all(r.run.status == "completed" for r in runs)
    if hasattr(runs[0].run, "job_id"):
        assert {r.run.job_id for r in runs} == {"slurm-4242"}


def test_run_info_holds_one_line_per_process(tmp_path: Path) -> None:
    info = tmp_path / "info"
    lines = [
        {"launcher": 10},
        {"run_id": 1, "db": "/x/runs.db", "pid": 11},
        {"not_profiled": "bad\nsetting", "pid": 12},
        {"run_id": 2, "db": "/x/runs.db", "pid": 13},
    ]
    info.write_text("".join(json.dumps(line) + "\n" for line in lines) + '{"run_id": 3, "d')
    read = _RunInfo.read(str(info))
    assert read.runs == [(Path("/x/runs.db"), 1), (Path("/x/runs.db"), 2)]  # torn line dropped
    assert read.not_profiled == ["bad setting"]
    assert read.launchers == 1
