"""`greenprof run`: unmodified example scripts profiled step by step; exit codes,
signals, output and an existing sitecustomize pass through."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hooks.conftest import assert_consistent, only_run

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _greenprof_run(
    db: Path, *command: str, env: dict[str, str] | None = None, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    child_env = dict(os.environ if env is None else env)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), child_env.get("PYTHONPATH")) if p
    )
    return subprocess.run(
        [sys.executable, "-m", "greenprof", "run", "--db", str(db), "--", *command],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=REPO,
        **kwargs,  # type: ignore[arg-type]
    )


def test_unmodified_torch_script(db_path: Path) -> None:
    pytest.importorskip("torch")
    result = _greenprof_run(db_path, sys.executable, "examples/torch_train.py", "--epochs", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("epoch ") == 2  # the child's output, unchanged
    assert result.stdout.startswith("epoch 0: loss ")
    stored = only_run(db_path)
    assert stored.run.name == "torch_train"
    assert stored.run.status == "completed"
    assert len(stored.steps) == 2 * 20  # 640 samples / 32 per batch, 2 epochs
    assert stored.run.samples == 2 * 640
    assert_consistent(stored)


def test_unmodified_keras_script(db_path: Path) -> None:
    pytest.importorskip("keras")
    result = _greenprof_run(db_path, sys.executable, "examples/keras_train.py", "--epochs", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "epoch 1: loss" in result.stdout
    stored = only_run(db_path)
    assert stored.run.name == "keras_train"
    assert len(stored.steps) == 40
    assert [(e.epoch, e.steps, e.samples) for e in stored.epochs] == [(0, 20, 640), (1, 20, 640)]
    assert_consistent(stored)


def test_exit_code_passes_through_and_fails_the_run(db_path: Path) -> None:
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    result = _greenprof_run(db_path, sys.executable, "-c", code)
    assert result.returncode == 3
    assert result.stdout == "out\n"
    assert "err\n" in result.stderr
    stored = only_run(db_path)
    assert stored.run.status == "failed"
    assert "exit code 3" in (stored.run.error or "")


def test_uncaught_exception_is_recorded(db_path: Path) -> None:
    result = _greenprof_run(db_path, sys.executable, "-c", "raise ValueError('bad data')")
    assert result.returncode == 1
    assert "ValueError: bad data" in result.stderr
    assert "bad data" in (only_run(db_path).run.error or "")
    assert only_run(db_path).run.status == "failed"


def test_existing_sitecustomize_is_chained(db_path: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os\nos.environ['CHAINED'] = 'yes'\n")
    env = dict(os.environ, PYTHONPATH=str(site))
    code = "import os; print(os.environ.get('CHAINED'), 'GREENPROF_AUTOHOOK' in os.environ)"
    result = _greenprof_run(db_path, sys.executable, "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "yes False\n"  # chained; the flag consumed by the first process
    assert only_run(db_path).run.status == "completed"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_reach_the_child(db_path: Path, signum: signal.Signals) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    # Deterministic: `greenprof run` forwards signals from before it starts the child, so
    # once the child says it is ready (its own handlers in place), the signal reaches it.
    # The child would sleep past the timeout below if it did not.
    code = "import time; print('ready', flush=True); time.sleep(120)"
    command = [sys.executable, "-m", "greenprof", "run", "--db", str(db_path), "--"]
    parent = subprocess.Popen(
        [*command, sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # not the test's terminal: the signal comes only from us
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline() == "ready\n"
        parent.send_signal(signum)
        _out, err = parent.communicate(timeout=90)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait()
    # The child dies of the signal (Python re-raises SIGINT after a KeyboardInterrupt),
    # and so does `greenprof run`, so a shell sees what it would have seen.
    assert parent.returncode == -signum
    if signum == signal.SIGINT:
        assert "KeyboardInterrupt" in err
    assert only_run(db_path).run.status == "interrupted"
