"""One batching writer thread per process.

Callers on any thread enqueue rows (a list append under the GIL, no I/O); the writer
thread commits them in one ``BEGIN IMMEDIATE`` transaction per flush, at least every
``flush_interval_s`` and at :meth:`StoreWriter.close`. A killed process therefore loses at
most its last interval. Several processes may write one file: WAL mode and a busy
timeout serialise their commits without losing rows.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from greenprof.records import CarbonSettings, DeviceInfo, RunStatus
from greenprof.store.schema import connect

log = logging.getLogger("greenprof")

StepRow = tuple[int, int, float, float, "int | None", float, int, "float | None"]
"""(step, epoch, start_s, end_s, samples, energy_j, interpolated, loss)"""
StepEnergyRow = tuple[int, str, float]
"""(step, device, energy_j)"""
SampleRow = tuple[
    str, float, "float | None", "float | None", "float | None", "int | None", "float | None"
]
"""(device, time_s, energy_j, power_w, utilization_pct, memory_used_bytes, temperature_c)"""


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything known about a run when it starts."""

    name: str
    started_at: float
    interval_s: float
    devices: Sequence[DeviceInfo] = ()
    carbon: CarbonSettings | None = None
    framework: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    rank: int | None = None
    world_size: int | None = None
    expected_steps: int | None = None
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    greenprof_version: str = ""


@dataclass(frozen=True, slots=True)
class RunTotals:
    """Running totals of a run, written with each flush."""

    steps: int
    samples: int | None
    energy_j: float
    step_energy_j: float
    duration_s: float
    device_energy_j: dict[str, float]


@dataclass
class _Pending:
    steps: list[StepRow] = field(default_factory=list)
    step_energy: list[StepEnergyRow] = field(default_factory=list)
    samples: list[SampleRow] = field(default_factory=list)
    totals: RunTotals | None = None
    updates: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)


class StoreWriter:
    """Writes one run's rows from a background thread.

    Example::

        writer = StoreWriter(Path("runs.db"))
        run_id = writer.create_run(RunSpec("resnet", started_at=time.time(), interval_s=0.1))
        writer.add_steps([(0, 0, 0.0, 0.5, 64, 12.5, 0, None)], [(0, "gpu:0", 12.5)])
        writer.close(status="completed")
    """

    def __init__(
        self,
        path: Path,
        *,
        flush_interval_s: float = 0.5,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._conn = connect(path, create=True)
        self._flush_interval_s = flush_interval_s
        self._wall_clock = wall_clock
        self._lock = threading.Lock()  # guards _pending swaps
        self._db_lock = threading.Lock()  # guards the connection
        self._pending = _Pending()
        self._wake = threading.Event()
        self._stopping = False
        self._run_id: int | None = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.rows_written = 0

    @property
    def run_id(self) -> int:
        if self._run_id is None:
            raise RuntimeError("create_run() first")
        return self._run_id

    def create_run(self, spec: RunSpec) -> int:
        """Insert the run and its devices synchronously, then start the writer thread."""
        carbon = spec.carbon
        with self._db_lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._conn.execute(
                    "INSERT INTO runs (name, status, started_at, heartbeat_at, host, pid, rank,"
                    " world_size, framework, tags, interval_s, expected_steps, country, region,"
                    " pue, intensity_g_per_kwh, intensity_source, greenprof_version)"
                    " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        spec.name,
                        spec.started_at,
                        spec.started_at,
                        spec.host,
                        spec.pid,
                        spec.rank,
                        spec.world_size,
                        spec.framework,
                        json.dumps(spec.tags, sort_keys=True),
                        spec.interval_s,
                        spec.expected_steps,
                        carbon.country if carbon else None,
                        carbon.region if carbon else None,
                        carbon.pue if carbon else 1.0,
                        carbon.intensity_g_per_kwh if carbon else None,
                        carbon.source if carbon else None,
                        spec.greenprof_version,
                    ),
                )
                run_id = int(cursor.lastrowid or 0)
                self._conn.executemany(
                    "INSERT INTO devices (run_id, device, kind, method, name, uuid, power_limit_w,"
                    " idle_power_w, node_wide, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [_device_row(run_id, info) for info in spec.devices],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        self._run_id = run_id
        self._thread = threading.Thread(target=self._loop, name="greenprof-writer", daemon=True)
        self._thread.start()
        return run_id

    def add_steps(
        self, steps: Iterable[StepRow], step_energy: Iterable[StepEnergyRow] = ()
    ) -> None:
        """Queue step rows and their per-device energies."""
        with self._lock:
            self._pending.steps.extend(steps)
            self._pending.step_energy.extend(step_energy)

    def add_samples(self, samples: Iterable[SampleRow]) -> None:
        """Queue raw sensor samples."""
        with self._lock:
            self._pending.samples.extend(samples)

    def set_totals(self, totals: RunTotals) -> None:
        """Replace the run's running totals at the next flush."""
        with self._lock:
            self._pending.totals = totals

    def update_device(
        self, device: str, *, idle_power_w: float | None = None, note: str | None = None
    ) -> None:
        """Record what was learnt about a device during the run."""
        with self._lock:
            if idle_power_w is not None:
                self._pending.updates.append(
                    (
                        "UPDATE devices SET idle_power_w = ? WHERE run_id = ? AND device = ?",
                        (idle_power_w, self.run_id, device),
                    )
                )
            if note is not None:
                self._pending.updates.append(
                    (
                        "UPDATE devices SET note = ? WHERE run_id = ? AND device = ?",
                        (note, self.run_id, device),
                    )
                )

    def flush(self) -> None:
        """Commit everything queued so far (any thread)."""
        with self._lock:
            pending, self._pending = self._pending, _Pending()
        with self._db_lock:
            self._write(pending)

    def close(self, *, status: RunStatus = "completed", error: str | None = None) -> None:
        """Flush, mark the run ended with ``status``, stop the thread and close the file."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()
        if self._run_id is not None:
            now = self._wall_clock()
            with self._db_lock:
                self._conn.execute(
                    "UPDATE runs SET status = ?, ended_at = ?, heartbeat_at = ?,"
                    " error = coalesce(?, error) WHERE run_id = ?",
                    (status, now, now, error, self._run_id),
                )
        self._conn.close()

    def set_framework(self, framework: str) -> None:
        """Record the framework that drives the run (known only once a hook joins)."""
        with self._lock:
            self._pending.updates.append(
                ("UPDATE runs SET framework = ? WHERE run_id = ?", (framework, self.run_id))
            )

    def record_error(self, message: str) -> None:
        """Record a problem on the run without ending it (shown by `greenprof show`)."""
        with self._lock:
            self._pending.updates.append(
                ("UPDATE runs SET error = ? WHERE run_id = ?", (message, self.run_id))
            )

    def _loop(self) -> None:
        while not self._stopping:
            self._wake.wait(self._flush_interval_s)
            if self._stopping:
                break
            try:
                self.flush()
            except Exception as exc:  # never let the writer die silently
                if self.error is None:
                    log.warning("greenprof: could not write to %s: %s (will retry)", self.path, exc)
                self.error = exc

    def _write(self, pending: _Pending) -> None:
        run_id = self.run_id
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if pending.steps:
                conn.executemany(
                    "INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, *row) for row in pending.steps],
                )
            if pending.step_energy:
                conn.executemany(
                    "INSERT OR REPLACE INTO step_energy VALUES (?, ?, ?, ?)",
                    [(run_id, *row) for row in pending.step_energy],
                )
            if pending.samples:
                conn.executemany(
                    "INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(run_id, *row) for row in pending.samples],
                )
            for sql, params in pending.updates:
                conn.execute(sql, params)
            totals = pending.totals
            if totals is not None:
                conn.execute(
                    "UPDATE runs SET steps = ?, samples = ?, energy_j = ?, step_energy_j = ?,"
                    " duration_s = ? WHERE run_id = ?",
                    (
                        totals.steps,
                        totals.samples,
                        totals.energy_j,
                        totals.step_energy_j,
                        totals.duration_s,
                        run_id,
                    ),
                )
                conn.executemany(
                    "UPDATE devices SET energy_j = ? WHERE run_id = ? AND device = ?",
                    [(energy, run_id, device) for device, energy in totals.device_energy_j.items()],
                )
            conn.execute(
                "UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", (self._wall_clock(), run_id)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            # Put the rows back so a transient lock does not lose them.
            with self._lock:
                self._pending.steps[:0] = pending.steps
                self._pending.step_energy[:0] = pending.step_energy
                self._pending.samples[:0] = pending.samples
                self._pending.updates[:0] = pending.updates
                if self._pending.totals is None:
                    self._pending.totals = pending.totals
            raise
        self.rows_written += len(pending.steps) + len(pending.step_energy) + len(pending.samples)


def _device_row(run_id: int, info: DeviceInfo) -> tuple[object, ...]:
    return (
        run_id,
        info.device,
        info.kind,
        info.method,
        info.name,
        info.uuid,
        info.power_limit_w,
        info.idle_power_w,
        int(info.node_wide),
        info.note,
    )


def mark_run_ended(
    path: Path,
    run_id: int,
    status: RunStatus,
    error: str,
    *,
    wall_clock: Callable[[], float] = time.time,
) -> None:
    """Record from outside a run's process how it ended (``greenprof run`` does this when
    the child exits non-zero). A run already marked failed or interrupted keeps its status;
    an error already recorded is kept."""
    conn = connect(path, create=False)
    try:
        conn.execute(
            "UPDATE runs SET status = ?, error = coalesce(error, ?),"
            " ended_at = coalesce(ended_at, ?)"
            " WHERE run_id = ? AND status IN ('running', 'completed')",
            (status, error, wall_clock(), run_id),
        )
    finally:
        conn.close()
