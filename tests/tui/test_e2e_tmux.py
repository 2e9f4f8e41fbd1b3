"""End to end: the real `greenprof top` in a tmux terminal, watching a run being written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.tui.test_app import _write_live

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed: cannot drive a real terminal"
)

REPO = Path(__file__).resolve().parents[2]


def _capture(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=False
    ).stdout


def _wait_for(session: str, predicate: str, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    screen = ""
    while time.monotonic() < deadline:
        screen = _capture(session)
        if predicate in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{predicate!r} never appeared; screen was:\n{screen}")


def _steps(screen: str) -> float:
    for line in screen.splitlines():
        words = line.split()
        if "steps" in words and words.index("steps") + 1 < len(words):
            value = words[words.index("steps") + 1]
            scale = 1000.0 if value.endswith("k") else 1.0
            return float(value.rstrip("k")) * scale
    raise AssertionError(f"no steps figure on screen:\n{screen}")


def test_greenprof_top_in_tmux_follows_a_run_being_written(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    stop, started = threading.Event(), threading.Event()
    writer = threading.Thread(target=_write_live, args=(db, stop, started), daemon=True)
    writer.start()
    assert started.wait(5)
    session = f"greenprof-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "GREENPROF_DB": str(tmp_path / "unused.db"), "TERM": "xterm-256color"}
    command = f"{sys.executable} -m greenprof top --db {db} --refresh 0.3; sleep 30"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y", "30", command],
        check=True,
        cwd=REPO,
        env=env,
    )
    try:
        first = _wait_for(session, "live-run")
        first = _wait_for(session, "J/step")
        assert "RUNNING" in first
        time.sleep(1.5)
        later = _capture(session)
        assert _steps(later) > _steps(first), later
        assert "forecast at step 100k" in later
        assert "Next run" in later  # the footer's bindings
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        deadline = time.monotonic() + 10
        while "J/step" in _capture(session) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "J/step" not in _capture(session), "q did not quit the UI"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)
        stop.set()
        writer.join(5)
