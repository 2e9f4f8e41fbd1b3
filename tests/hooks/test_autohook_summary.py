"""`greenprof run` prints one end-of-run summary (from its own process, after the run's
ending is recorded), not one per Profiler of the script, and none with
GREENPROF_SUMMARY=0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import greenprof

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

SCRIPT = """
import sys, time, greenprof
from greenprof.sensors.fake import FakeSensor
with greenprof.Profiler("own", sensors=[FakeSensor("gpu:0", 100.0)]) as prof:
    for _ in range(3):
        with prof.step(samples=2):
            time.sleep(0.01)
sys.exit(int(sys.argv[1]))
"""


def _greenprof_run(
    db: Path | str, script: Path, code: int, summary: str
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GREENPROF_SUMMARY=summary)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "greenprof", "run", "--db", str(db), "--"]
    return subprocess.run(
        [*command, sys.executable, str(script), str(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=REPO,
    )


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    return path


def test_greenprof_run_prints_one_summary_with_the_recorded_ending(
    db_path: Path, script: Path
) -> None:
    result = _greenprof_run(db_path, script, 0, "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("greenprof: run ") == 1, result.stderr  # joined: one run
    with greenprof.RunStore(db_path) as store:
        (run,) = store.runs()
    assert f"greenprof: run {run.run_id} 'own' completed:" in result.stderr
    assert f"stored in {db_path}: `greenprof show --db {db_path} {run.run_id}`" in result.stderr
    assert f"{run.steps} steps, 6 samples" in result.stderr

    failed = _greenprof_run(db_path, script, 3, "1")
    assert failed.returncode == 3
    assert "'own' failed (exit code 3):" in failed.stderr  # the ending greenprof run recorded


def test_greenprof_run_prints_no_summary_when_turned_off(db_path: Path, script: Path) -> None:
    result = _greenprof_run(db_path, script, 0, "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "greenprof: run " not in result.stderr


def test_a_hook_that_starts_its_own_run_prints_its_summary(
    db_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    from greenprof.hooks.torch import attach
    from greenprof.sensors.fake import FakeSensor

    monkeypatch.setenv("GREENPROF_SUMMARY", "1")  # the settings every hook's run reads
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    handle = attach(
        optimizer, samples=4, run="hooked", db=db_path, sensors=[FakeSensor("gpu:0", 80.0)]
    )
    for _ in range(2):
        model(torch.ones(4, 2)).sum().backward()
        optimizer.step()
    handle.remove()
    err = capsys.readouterr().err
    assert err.count("greenprof: run ") == 1
    assert "'hooked' completed:" in err and "2 steps, 8 samples" in err


def test_greenprof_run_into_a_server_store_ends_the_run_and_hides_the_password(
    pg_url: str, script: Path
) -> None:
    from tests.pg_cluster import TEST_PASSWORD

    result = _greenprof_run(pg_url, script, 3, "1")
    assert result.returncode == 3
    assert TEST_PASSWORD not in result.stderr
    assert "'own' failed (exit code 3):" in result.stderr  # the URL reached the store intact
    assert "stored in postgresql://" in result.stderr and ":***@" in result.stderr
    with greenprof.RunStore(pg_url) as store:
        (run,) = store.runs()
    assert run.status == "failed" and "exit code 3" in (run.error or "")
