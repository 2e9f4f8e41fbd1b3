"""Shared helpers of the fault-injection tests: real SQLite files, real child processes,
real mounts (tmpfs, read-only bind mounts; skipped where mount(8) is not permitted)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from greenprof.records import RunInfo, StepRecord
from greenprof.sensors.fake import FakeSensor
from greenprof.store.reader import RunStore

REPO = Path(__file__).resolve().parents[2]


def busy(duration_s: float) -> None:
    """Burn CPU for ``duration_s`` (a training step's work)."""
    end = time.perf_counter() + duration_s
    while time.perf_counter() < end:
        pass


def fake_sensors(period_s: float = 0.02) -> list[FakeSensor]:
    return [
        FakeSensor("gpu:0", 200.0, update_period_s=period_s),
        FakeSensor("cpu:0", 40.0, update_period_s=period_s),
    ]


def wait_for(
    condition: Callable[[], object], timeout_s: float = 30.0, every_s: float = 0.05
) -> bool:
    """Poll ``condition`` until it is true or ``timeout_s`` has passed; return the last result."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every_s)


@dataclass
class Stored:
    run: RunInfo
    steps: list[StepRecord]


def read_run(db: Path, run_id: int | None = None) -> Stored:
    """One run and its steps, read back through the public read API."""
    with RunStore(db) as store:
        if run_id is None:
            runs = store.runs()
            assert len(runs) == 1, [(r.run_id, r.name) for r in runs]
            run_id = runs[0].run_id
        return Stored(store.run(run_id), store.steps(run_id))


def sql(db: Path, query: str, *params: object) -> list[tuple[object, ...]]:
    """A raw read query (the schema is a user interface: people query it directly)."""
    conn = sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def file_state(path: Path) -> dict[str, bytes | None]:
    """The bytes of a database file and whether its sidecar files exist."""
    return {
        suffix: Path(f"{path}{suffix}").read_bytes() if Path(f"{path}{suffix}").exists() else None
        for suffix in ("", "-wal", "-shm", "-journal")
    }


# Child processes --------------------------------------------------------------------


def child_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["GREENPROF_DB"] = str(tmp_path / "default-runs.db")
    env.pop("GREENPROF_PROMETHEUS_PORT", None)
    env.pop("GREENPROF_PUSHGATEWAY", None)
    return env


def start_script(
    tmp_path: Path, source: str, *args: str, name: str = "child.py"
) -> subprocess.Popen[str]:
    script = tmp_path / name
    script.write_text(source, encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        env=child_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout_s: float = 120.0) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"child did not finish in {timeout_s} s:\n{out}\n{err}")
    return proc.returncode, out, err


def read_int(path: Path) -> int:
    """A counter a child rewrites in place (0 while it does not exist or is mid-write)."""
    try:
        text = path.read_text().split()
    except OSError:
        return 0
    return int(text[0]) if text and text[0].isdigit() else 0


# Mounts -----------------------------------------------------------------------------


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise OSError(result.stderr.strip() or f"mount {' '.join(args)} failed")


def _umount(path: Path) -> None:
    for _ in range(50):
        result = subprocess.run(["umount", str(path)], capture_output=True, check=False)
        if result.returncode == 0 or not os.path.ismount(path):
            return
        time.sleep(0.1)  # a child or a connection may still hold it for a moment
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


@contextlib.contextmanager
def _mounts() -> Iterator[list[Path]]:
    mounted: list[Path] = []
    try:
        yield mounted
    finally:
        for path in reversed(mounted):
            _umount(path)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``tmpfs("2m")``: a fresh size-limited tmpfs, unmounted at the end of the test."""
    with _mounts() as mounted:

        def make(size: str) -> Path:
            where = tmp_path / f"tmpfs-{uuid.uuid4().hex[:8]}"
            where.mkdir()
            try:
                _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where))
            except OSError as exc:
                pytest.skip(f"needs permission to mount a tmpfs (root): {exc}")
            mounted.append(where)
            return where

        yield make


@pytest.fixture
def ro_bind(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """``ro_bind(src)``: a read-only bind mount of directory ``src`` (root ignores file
    permission bits, so read-only must come from the mount), unmounted at the end."""
    with _mounts() as mounted:

        def make(src: Path) -> Path:
            where = tmp_path / f"ro-{uuid.uuid4().hex[:8]}"
            where.mkdir()
            try:
                _mount("--bind", str(src), str(where))
            except OSError as exc:
                pytest.skip(f"needs permission to bind-mount (root): {exc}")
            mounted.append(where)
            try:
                _mount("-o", "remount,ro,bind", str(where))
            except OSError as exc:
                pytest.skip(f"needs permission to remount read-only (root): {exc}")
            probe = where / ".probe"
            with contextlib.suppress(OSError):
                probe.write_bytes(b"")
                pytest.skip("the read-only bind mount accepted a write")
            return where

        yield make
