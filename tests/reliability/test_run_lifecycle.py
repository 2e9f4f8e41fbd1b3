"""`greenprof run` as a stand-in for its command: killed children, early signals,
settings checked before the command starts, secrets kept out of the database and the
output, runs ended when the child could not end them. Real processes throughout; no
timing assumptions (signals are held pending by a blocked mask, not raced)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.hooks.conftest import only_run

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "greenprof" / "hooks" / "_site"
pytestmark = pytest.mark.slow


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["GREENPROF_DB"] = str(tmp_path / "default-runs.db")
    env.update(extra)
    return env


def _command(db: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "greenprof", "run", "--db", str(db), *options, "--"]


def _greenprof_run(
    tmp_path: Path,
    db: Path,
    *command: str,
    options: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], object] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_command(db, *options), *command],
        env=_env(tmp_path) if env is None else env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp_path,
        preexec_fn=preexec_fn,
    )


def _script(tmp_path: Path, source: str) -> str:
    path = tmp_path / "child.py"
    path.write_text(source, encoding="utf-8")
    return str(path)


def test_child_killed_by_sigkill(tmp_path: Path, db_path: Path) -> None:
    """The OOM killer's way: 137, as a shell reports it, no traceback, the run interrupted."""
    code = "import os, signal; print('training', flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    result = _greenprof_run(tmp_path, db_path, sys.executable, "-c", code)
    assert result.returncode == 128 + signal.SIGKILL
    assert result.stdout == "training\n"
    assert "Traceback" not in result.stderr
    stored = only_run(db_path).run
    assert stored.status == "interrupted"
    assert "SIGKILL" in (stored.error or "")
    assert stored.ended_at is not None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_before_the_child_exists_reaches_it(
    tmp_path: Path, db_path: Path, signum: signal.Signals
) -> None:
    """The signal is sent as `greenprof run` starts, and held pending (blocked, as a
    launcher may hand it over) until `greenprof run` is ready for it: it arrives before
    the child exists, deterministically, and must still stop the child."""
    marker = tmp_path / "still-running"
    child = _script(
        tmp_path,
        f"import pathlib, time\ntime.sleep(60)\npathlib.Path({str(marker)!r}).touch()\n",
    )
    parent = subprocess.Popen(
        [*_command(db_path), sys.executable, child],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        start_new_session=True,  # no terminal: the signal comes only from us
        # the one way to hand over a blocked mask; the test process runs no threads
        preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signum}),  # noqa: PLW1509
    )
    try:
        parent.send_signal(signum)
        _out, err = parent.communicate(timeout=50)  # the child would sleep 60 s
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait()
    # The child dies of the signal as it starts; SIGINT may instead find Python's handler
    # in place and end start-up with a KeyboardInterrupt (exit 1, the child's traceback).
    if signum == signal.SIGINT:
        assert parent.returncode in (-signum, 1), err
    else:
        assert parent.returncode == -signum, err
        assert "Traceback" not in err
    assert not marker.exists()


@pytest.mark.parametrize(
    "options",
    [
        ("--pue", "nan"),
        ("--pue", "inf"),
        ("--pue", "0.5"),
        ("--pue", "abc"),
        ("--intensity", "nan"),
        ("--intensity", "-1"),
        ("--interval-s", "inf"),
        ("--interval-s", "nan"),
        ("--interval-s", "0"),
        ("--interval-s", "0.001"),
        ("--interval-s", "61"),
        ("--expected-steps", "0"),
        ("--expected-steps", "2.5"),
        ("--country", "XYZ"),
        ("--region", "nowhere-1"),
        ("--prometheus-port", "0"),
        ("--prometheus-port", "65536"),
        ("--prometheus-port", "http"),
    ],
)
def test_bad_settings_fail_before_the_child_starts(
    tmp_path: Path, db_path: Path, options: tuple[str, str]
) -> None:
    marker = tmp_path / "child-ran"
    child = _script(tmp_path, f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    result = _greenprof_run(tmp_path, db_path, sys.executable, child, options=options)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("greenprof: error: "), result.stderr
    assert not marker.exists()
    assert not db_path.exists()


def test_bad_inherited_setting_fails_before_the_child_starts(tmp_path: Path, db_path: Path) -> None:
    marker = tmp_path / "child-ran"
    child = _script(tmp_path, f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    env = _env(tmp_path, GREENPROF_PROMETHEUS_PORT="ninety")
    result = _greenprof_run(tmp_path, db_path, sys.executable, child, env=env)
    assert result.returncode == 2
    assert "GREENPROF_PROMETHEUS_PORT" in result.stderr
    assert not marker.exists()


def test_good_settings_reach_the_run(tmp_path: Path, db_path: Path) -> None:
    options = ("--pue", "1.25", "--intensity", "300", "--interval-s", "0.05")
    options += ("--expected-steps", "7", "--name", "tuned")
    result = _greenprof_run(tmp_path, db_path, sys.executable, "-c", "pass", options=options)
    assert result.returncode == 0, result.stderr
    stored = only_run(db_path).run
    assert (stored.name, stored.status, stored.expected_steps) == ("tuned", "completed", 7)
    assert stored.carbon is not None
    assert (stored.carbon.pue, stored.carbon.intensity_g_per_kwh) == (1.25, 300.0)


def test_bad_settings_in_the_child_leave_training_running(tmp_path: Path) -> None:
    """The child never dies of greenprof: bad GREENPROF_* values (set by hand, say) mean
    one warning line and an unprofiled run, and `greenprof run` is told why."""
    info = tmp_path / "info.json"
    env = _env(tmp_path, GREENPROF_AUTOHOOK="1", GREENPROF_PUE="nan")
    env["GREENPROF_RUN_INFO"] = str(info)
    env["PYTHONPATH"] = os.pathsep.join((str(SITE), env["PYTHONPATH"]))
    result = subprocess.run(
        [sys.executable, "-c", "print('trained')"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0
    assert result.stdout == "trained\n"
    assert result.stderr.splitlines() == [
        "greenprof: warning: not profiling this run: $GREENPROF_PUE must be a finite number;"
        " got 'nan'"
    ]
    assert "GREENPROF_PUE" in info.read_text(encoding="utf-8")
    assert not (tmp_path / "default-runs.db").exists()


def test_unprofiled_child_is_reported_not_failed(tmp_path: Path, db_path: Path) -> None:
    """Settings spoiled after the parent checked them (here by the user's own
    sitecustomize, which runs first): training goes on, exit 0, and `greenprof run`
    warns that the run was not profiled."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('GREENPROF_AUTOHOOK'):  # the child only, not `greenprof run`\n"
        "    os.environ['GREENPROF_PUE'] = 'nan'\n"
    )
    env = _env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join((env["PYTHONPATH"], str(site)))
    result = _greenprof_run(tmp_path, db_path, sys.executable, "-c", "print('trained')", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "trained\n"
    assert result.stderr.splitlines() == [
        "greenprof: warning: not profiling this run: $GREENPROF_PUE must be a finite number;"
        " got 'nan'",
        "greenprof run: warning: the command ran unprofiled: $GREENPROF_PUE must be a finite"
        " number; got 'nan'",
    ]
    assert not db_path.exists()


def test_a_database_that_is_not_ours_is_refused_before_the_child_starts(
    tmp_path: Path,
) -> None:
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("my notes, not a database\n" * 100, encoding="utf-8")
    marker = tmp_path / "child-ran"
    child = _script(tmp_path, f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    result = _greenprof_run(tmp_path, not_a_db, sys.executable, child)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("greenprof: error: "), result.stderr
    assert not marker.exists()
    assert not_a_db.read_text(encoding="utf-8") == "my notes, not a database\n" * 100


def test_command_without_python_is_reported(tmp_path: Path, db_path: Path) -> None:
    result = _greenprof_run(tmp_path, db_path, sys.executable, "-S", "-c", "print('hi')")
    assert result.returncode == 0
    assert result.stdout == "hi\n"
    assert "greenprof run: warning: no run was recorded" in result.stderr


def test_child_that_skips_atexit_gets_its_run_ended(tmp_path: Path, db_path: Path) -> None:
    code = "import os; print('done', flush=True); os._exit(0)"
    result = _greenprof_run(tmp_path, db_path, sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    stored = only_run(db_path).run
    assert stored.status == "completed"
    assert stored.ended_at is not None
    assert "greenprof run" in (stored.error or "")


def test_ignored_signals_stay_ignored_in_the_child(tmp_path: Path, db_path: Path) -> None:
    """Under `nohup`, a hangup must not kill the training either."""
    code = "import signal; print(signal.getsignal(signal.SIGHUP) == signal.SIG_IGN)"

    def ignore_hangups() -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    result = _greenprof_run(
        tmp_path, db_path, sys.executable, "-c", code, preexec_fn=ignore_hangups
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True\n"


def test_secrets_are_neither_stored_nor_printed(tmp_path: Path, db_path: Path) -> None:
    secrets = ["s3cr3t-VALUE-one", "s3cr3t-VALUE-two", "s3cr3t-VALUE-three"]
    child = _script(tmp_path, "import sys\nprint('args', len(sys.argv))\nsys.exit(3)\n")
    command = [sys.executable, child, f"--hf-token={secrets[0]}", "--api-key", secrets[1]]
    command += [f"--db-url=postgresql://ann:{secrets[2]}@db/runs", "--lr", "0.1"]
    result = _greenprof_run(tmp_path, db_path, *command)
    assert result.returncode == 3
    assert result.stdout == "args 7\n"  # the child itself gets them all
    stored = only_run(db_path).run
    assert stored.tags["command"].endswith(
        "child.py --hf-token=*** --api-key *** --db-url=postgresql://ann:***@db/runs --lr 0.1"
    )
    files = [p for p in tmp_path.iterdir() if p.name.startswith(db_path.name)]
    assert db_path in files
    for secret in secrets:
        assert secret not in result.stdout + result.stderr
        for path in files:
            assert secret.encode() not in path.read_bytes(), path
