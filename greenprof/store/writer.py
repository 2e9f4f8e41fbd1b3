"""One batching writer thread per process.

Callers on any thread enqueue rows (a list append under a lock, no I/O); the writer
thread commits them in one ``BEGIN IMMEDIATE`` transaction per flush, at least every
``flush_interval_s`` and at :meth:`StoreWriter.close`. Several processes may write one
file: WAL mode and a busy timeout serialise their commits.

Nothing accepted is dropped silently:

- A commit that fails (locked, disk full, I/O error, read-only) keeps its rows queued and
  is retried at the next flush; the real SQLite error is logged once per outage, and again
  when writing works again.
- The queue is bounded: past ``max_backlog_samples`` queued samples, every other queued
  sample is dropped (the sample curve gets coarser, counted); past ``max_backlog_steps``
  queued steps, new steps are counted as lost and not kept. Lost steps are recorded on the
  run (``lost_steps``), which then ends ``incomplete`` rather than ``completed``.
- A row whose values cannot be stored (a NaN where a number is required, a type SQLite
  cannot bind) is repaired where a rule exists (NaN/inf loss → NULL) and otherwise dropped
  and counted as lost: it never blocks the rows behind it.
- A database file deleted during the run is restored at its path from the open handle
  (SQLite's backup API), so nothing written before is lost with it.
- :meth:`StoreWriter.close` retries for at most ``close_timeout_s``; what is still not
  stored then is reported on stderr and, if the file can be written at all, on the run.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenprof.records import CarbonSettings, DeviceInfo, RunStatus
from greenprof.store.schema import FILE_MODE, connect, describe_sqlite_error
from greenprof.values import as_number

log = logging.getLogger("greenprof")

StepRow = tuple[Any, ...]
"""(step, epoch, start_s, end_s, samples, energy_j, interpolated, loss[, flags]); ``loss`` may
be any number-like object (a 0-d tensor is converted here, on the writer thread)."""
StepEnergyRow = tuple[int, str, float]
"""(step, device, energy_j)"""
PendingStepRow = tuple[Any, ...]
"""(step, epoch, start_s, end_s, samples, loss): a step whose energy is not known yet."""
SampleRow = tuple[
    str, float, "float | None", "float | None", "float | None", "int | None", "float | None"
]
"""(device, time_s, energy_j, power_w, utilization_pct, memory_used_bytes, temperature_c)"""

MAX_BACKLOG_STEPS = 1_000_000
"""Queued step rows kept while the database cannot be written (~150 MB)."""
MAX_BACKLOG_SAMPLES = 200_000
"""Queued sample rows past which every other one is dropped (thinned, counted)."""
MAX_ERROR_CHARS = 4000
"""A run's ``error`` keeps at most this much: the first problems, which explain the rest."""
CLOSE_TIMEOUT_S = 15.0
"""How long :meth:`StoreWriter.close` keeps retrying a database that cannot be written."""


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
    job_id: str | None = None
    local_rank: int | None = None
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
    setup_s: float = 0.0
    setup_energy_j: float = 0.0


@dataclass(frozen=True, slots=True)
class WriterHealth:
    """What the writer could not do so far (a snapshot, safe to read from any thread)."""

    lost_steps: int
    """Steps accepted but never stored (backlog overflow, unstorable values)."""
    thinned_samples: int
    """Samples dropped to bound the backlog during an outage."""
    pending_rows: int
    """Rows queued and not yet committed."""
    failing_since_s: float | None
    """Monotonic time of the first failed commit of the current outage (None: writing)."""
    last_error: str | None


@dataclass
class _Pending:
    steps: list[StepRow] = field(default_factory=list)
    step_energy: list[StepEnergyRow] = field(default_factory=list)
    samples: list[SampleRow] = field(default_factory=list)
    closed: list[PendingStepRow] = field(default_factory=list)
    totals: RunTotals | None = None
    updates: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)

    def rows(self) -> int:
        return len(self.steps) + len(self.step_energy) + len(self.samples) + len(self.closed)

    def put_back(self, older: _Pending) -> None:
        """Requeue ``older`` (a batch that failed) ahead of what arrived meanwhile."""
        self.steps[:0] = older.steps
        self.step_energy[:0] = older.step_energy
        self.samples[:0] = older.samples
        self.closed[:0] = older.closed
        self.updates[:0] = older.updates
        if self.totals is None:
            self.totals = older.totals


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
        flush_interval_s: float = 0.3,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        max_backlog_steps: int = MAX_BACKLOG_STEPS,
        max_backlog_samples: int = MAX_BACKLOG_SAMPLES,
        close_timeout_s: float = CLOSE_TIMEOUT_S,
    ) -> None:
        self.path = path
        self._conn = connect(path, create=True)
        self._identity = _file_identity(path)
        self._flush_interval_s = flush_interval_s
        self._wall_clock = wall_clock
        self._clock = clock
        self._max_backlog_steps = max_backlog_steps
        self._max_backlog_samples = max_backlog_samples
        self._close_timeout_s = close_timeout_s
        self._lock = threading.Lock()  # guards _pending swaps and the counters
        self._db_lock = threading.Lock()  # guards the connection
        self._pending = _Pending()
        self._wake = threading.Event()
        self._stopping = False
        self._run_id: int | None = None
        self._thread: threading.Thread | None = None
        self._stored_through = -1  # highest step stored: its pending row is obsolete
        self._lost_steps = 0
        self._lost_reasons: dict[str, int] = {}
        self._thinned_samples = 0
        self._failing_since_s: float | None = None
        self._notes: list[str] = []
        self.error: BaseException | None = None
        self.rows_written = 0

    @property
    def run_id(self) -> int:
        if self._run_id is None:
            raise RuntimeError("create_run() first")
        return self._run_id

    def health(self) -> WriterHealth:
        with self._lock:
            return WriterHealth(
                lost_steps=self._lost_steps,
                thinned_samples=self._thinned_samples,
                pending_rows=self._pending.rows(),
                failing_since_s=self._failing_since_s,
                last_error=None if self.error is None else str(self.error),
            )

    def create_run(self, spec: RunSpec) -> int:
        """Insert the run and its devices synchronously, then start the writer thread."""
        carbon = spec.carbon
        with self._db_lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                cursor = self._conn.execute(
                    "INSERT INTO runs (name, status, started_at, heartbeat_at, host, pid, rank,"
                    " world_size, framework, tags, interval_s, expected_steps, country, region,"
                    " pue, intensity_g_per_kwh, intensity_source, greenprof_version, job_id,"
                    " local_rank)"
                    " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                        spec.job_id,
                        spec.local_rank,
                    ),
                )
                run_id = int(cursor.lastrowid or 0)
                self._conn.executemany(
                    "INSERT INTO devices (run_id, device, kind, method, name, uuid, power_limit_w,"
                    " idle_power_w, node_wide, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [_device_row(run_id, info) for info in spec.devices],
                )
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(self._conn)
                raise _store_error(self.path, exc) from exc
        self._run_id = run_id
        self._thread = threading.Thread(target=self._loop, name="greenprof-writer", daemon=True)
        self._thread.start()
        return run_id

    def add_steps(
        self, steps: Iterable[StepRow], step_energy: Iterable[StepEnergyRow] = ()
    ) -> None:
        """Queue step rows and their per-device energies."""
        with self._lock:
            pending = self._pending
            room = self._max_backlog_steps - len(pending.steps)
            steps = list(steps)
            if len(steps) > room:
                self._lose(len(steps) - max(room, 0), "the database could not be written")
                kept = {row[0] for row in steps[: max(room, 0)]}
                steps = steps[: max(room, 0)]
                step_energy = [row for row in step_energy if row[0] in kept]
            pending.steps.extend(steps)
            pending.step_energy.extend(step_energy)

    def add_pending_steps(self, rows: Iterable[PendingStepRow]) -> None:
        """Queue step boundaries whose energy is not known yet (crash insurance)."""
        with self._lock:
            if len(self._pending.closed) < self._max_backlog_steps:
                self._pending.closed.extend(rows)

    def add_samples(self, samples: Iterable[SampleRow]) -> None:
        """Queue raw sensor samples."""
        with self._lock:
            queued = self._pending.samples
            queued.extend(samples)
            if len(queued) > self._max_backlog_samples:
                self._thinned_samples += len(queued) - len(queued[::2])
                self._pending.samples = queued[::2]

    def set_totals(self, totals: RunTotals) -> None:
        """Replace the run's running totals at the next flush."""
        with self._lock:
            self._pending.totals = totals

    def update_device(
        self,
        device: str,
        *,
        idle_power_w: float | None = None,
        note: str | None = None,
        rejected_readings: int | None = None,
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
                        "UPDATE devices SET note = trim(note || '; ' || ?, '; ')"
                        " WHERE run_id = ? AND device = ?",
                        (note, self.run_id, device),
                    )
                )
            if rejected_readings is not None:
                self._pending.updates.append(
                    (
                        "UPDATE devices SET rejected_readings = ? WHERE run_id = ? AND device = ?",
                        (rejected_readings, self.run_id, device),
                    )
                )

    def flush(self) -> None:
        """Commit everything queued so far (any thread). Raises the SQLite error on failure;
        the rows stay queued for the next attempt."""
        if self._run_id is None:
            return
        with self._lock:
            pending, self._pending = self._pending, _Pending()
        with self._db_lock:
            try:
                self._check_file()
                self._write(pending)
            except sqlite3.Error as exc:
                with self._lock:
                    self._pending.put_back(pending)
                self._outage(exc)
                raise
        if self._failing_since_s is not None:
            log.warning(
                "greenprof: writing to %s again after %.1f s; nothing queued was lost",
                self.path,
                self._clock() - self._failing_since_s,
            )
            self._failing_since_s = None

    def close(self, *, status: RunStatus = "completed", error: str | None = None) -> None:
        """Flush, mark the run ended with ``status``, stop the thread and close the file.

        A run whose accepted steps could not all be stored ends ``incomplete`` (if it would
        have been ``completed``), with the count and the cause in ``error``."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self._close_timeout_s)
        deadline_s = self._clock() + self._close_timeout_s
        flushed = self._retry_until(deadline_s, self.flush)
        if not flushed:
            with self._lock:
                unstored = len(self._pending.steps)
                self._pending = _Pending()
            self._lose(unstored, "the database could not be written at the end of the run")
        if self._run_id is not None:
            status, error = self._final_status(status, error)
            now = self._wall_clock()

            def end_run() -> None:
                with self._db_lock:
                    self._conn.execute(
                        "UPDATE runs SET status = ?, ended_at = ?, heartbeat_at = ?,"
                        " error = coalesce(?, error), lost_steps = ? WHERE run_id = ?",
                        (status, now, now, error, self._lost_steps, self._run_id),
                    )

            if not self._retry_until(deadline_s, end_run):
                log.error(
                    "greenprof: could not record the end of run %s in %s (%s); "
                    "`greenprof repair` will close it later",
                    self._run_id,
                    self.path,
                    self.error,
                )
        if self._lost_steps:
            log.error(
                "greenprof: %d step(s) of run %s could not be stored in %s: %s",
                self._lost_steps,
                self._run_id,
                self.path,
                self._lost_summary(),
            )
        self._conn.close()

    def rename(self, name: str, tags: Mapping[str, str]) -> None:
        """Give the run another name and more tags (an explicit Profiler joined it)."""
        with self._lock:
            self._pending.updates.append(
                (
                    "UPDATE runs SET name = ?, tags = json_patch(tags, ?) WHERE run_id = ?",
                    (name, json.dumps(dict(tags), sort_keys=True), self.run_id),
                )
            )

    def set_framework(self, framework: str) -> None:
        """Record the framework that drives the run (known only once a hook joins)."""
        with self._lock:
            self._pending.updates.append(
                ("UPDATE runs SET framework = ? WHERE run_id = ?", (framework, self.run_id))
            )

    def record_error(self, message: str) -> None:
        """Record a problem on the run without ending it (shown by `greenprof show`); each
        problem is added to the ones before (up to MAX_ERROR_CHARS)."""
        with self._lock:
            self._pending.updates.append(
                (
                    "UPDATE runs SET error = substr(coalesce(error || '; ', '') || ?, 1, ?)"
                    " WHERE run_id = ?",
                    (message, MAX_ERROR_CHARS, self.run_id),
                )
            )

    # Writer thread -------------------------------------------------------------

    def _loop(self) -> None:
        self._repair_dead_runs()
        while not self._stopping:
            self._wake.wait(self._flush_interval_s)
            if self._stopping:
                break
            try:
                self.flush()
            except sqlite3.Error:
                pass  # logged by _outage; the rows stay queued
            except Exception as exc:  # never let the writer die silently
                log.warning("greenprof: writer error on %s: %r", self.path, exc)
                self.error = exc

    def _repair_dead_runs(self) -> None:
        """Attribute and close this host's runs whose process died (``greenprof repair``
        for them), on this thread so that starting a run stays fast."""
        from greenprof.store.recovery import dead_runs, recover_run

        try:
            with self._db_lock:
                now = self._wall_clock()
                for run_id in dead_runs(
                    self._conn, host=socket.gethostname(), now=now, stale_after_s=None
                ):
                    if run_id != self._run_id:
                        done = recover_run(self._conn, run_id, now=now)
                        log.info(
                            "greenprof: run %s (%s) had died; %d step(s) recovered",
                            done.run_id,
                            done.name,
                            done.recovered_steps,
                        )
        except sqlite3.Error as exc:
            log.debug("greenprof: repairing dead runs failed: %r", exc)

    def _retry_until(self, deadline_s: float, action: Callable[[], None]) -> bool:
        while True:
            try:
                action()
                return True
            except sqlite3.Error:
                if self._clock() >= deadline_s:
                    return False
                time.sleep(min(0.2, max(0.0, deadline_s - self._clock())))

    def _outage(self, exc: sqlite3.Error) -> None:
        self.error = exc
        if self._failing_since_s is None:
            self._failing_since_s = self._clock()
            with self._lock:
                queued = self._pending.rows()
            log.warning(
                "greenprof: %s; keeping %d row(s) queued and retrying every %.1f s",
                describe_sqlite_error(self.path, exc),
                queued,
                self._flush_interval_s,
            )

    def _lose(self, count: int, reason: str) -> None:
        if count <= 0:
            return
        self._lost_steps += count
        self._lost_reasons[reason] = self._lost_reasons.get(reason, 0) + count

    def _lost_summary(self) -> str:
        cause = f" (last error: {self.error})" if self.error is not None else ""
        reasons = "; ".join(f"{n} because {why}" for why, n in self._lost_reasons.items())
        return reasons + cause

    def _final_status(self, status: RunStatus, error: str | None) -> tuple[RunStatus, str | None]:
        if not self._lost_steps:
            return status, error
        lost = f"{self._lost_steps} step(s) not stored: {self._lost_summary()}"
        if status == "completed":
            status = "incomplete"
        return status, lost if error is None else f"{error}; {lost}"

    def _check_file(self) -> None:
        """Notice a database file deleted (or replaced) under a running writer."""
        identity = _file_identity(self.path)
        if identity == self._identity or self._identity is None:
            return
        if identity is None:
            self._restore_deleted_file()
            return
        self._identity = identity  # warn once
        message = (
            f"{self.path} was replaced by another file during the run; greenprof keeps "
            "writing to the file it opened, which is no longer at that path"
        )
        log.error("greenprof: %s", message)
        self._notes.append(message)

    def _restore_deleted_file(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        os.close(fd)
        target = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self._conn.backup(target)
            target.execute("PRAGMA journal_mode=WAL")
        except BaseException:
            target.close()
            raise
        self._conn.close()
        self._conn = target
        target.execute("PRAGMA synchronous=NORMAL")
        target.execute("PRAGMA busy_timeout=5000")
        self._identity = _file_identity(self.path)
        log.warning(
            "greenprof: %s was deleted during run %s; restored it from the open file",
            self.path,
            self._run_id,
        )

    def _write(self, pending: _Pending) -> None:
        run_id = self.run_id
        conn = self._conn
        steps = _clean_steps(run_id, pending.steps)
        bad = len(pending.steps) - len(steps)
        stored_through = max((row[1] for row in steps), default=self._stored_through)
        closed = [
            (run_id, *row[:5], _loss(row[5])) for row in pending.closed if row[0] > stored_through
        ]
        try:
            conn.execute("BEGIN IMMEDIATE")
            if steps:
                insert_rows(conn, "steps", STEP_COLUMNS, steps)
            if pending.step_energy:
                insert_rows(
                    conn,
                    "step_energy",
                    ("run_id", "step", "device", "energy_j"),
                    [(run_id, s, d, e) for s, d, e in pending.step_energy if e - e == 0],
                )
            if closed:
                insert_rows(conn, "pending_steps", PENDING_COLUMNS, closed)
            if stored_through > self._stored_through:
                conn.execute(
                    "DELETE FROM pending_steps WHERE run_id = ? AND step <= ?",
                    (run_id, stored_through),
                )
            if pending.samples:
                insert_rows(
                    conn, "samples", SAMPLE_COLUMNS, [(run_id, *row) for row in pending.samples]
                )
            for sql, params in pending.updates:
                conn.execute(sql, params)
            totals = pending.totals
            if totals is not None and _finite_totals(totals):
                conn.execute(
                    "UPDATE runs SET steps = ?, samples = ?, energy_j = ?, step_energy_j = ?,"
                    " duration_s = ?, setup_s = ?, setup_energy_j = ? WHERE run_id = ?",
                    (
                        totals.steps,
                        totals.samples,
                        totals.energy_j,
                        totals.step_energy_j,
                        totals.duration_s,
                        totals.setup_s,
                        totals.setup_energy_j,
                        run_id,
                    ),
                )
                conn.executemany(
                    "UPDATE devices SET energy_j = ? WHERE run_id = ? AND device = ?",
                    [(energy, run_id, device) for device, energy in totals.device_energy_j.items()],
                )
            for note in self._notes:
                conn.execute(
                    "UPDATE runs SET error = coalesce(error || '; ', '') || ? WHERE run_id = ?",
                    (note, run_id),
                )
            conn.execute(
                "UPDATE runs SET heartbeat_at = ?, lost_steps = ? WHERE run_id = ?",
                (self._wall_clock(), self._lost_steps + bad, run_id),
            )
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        self._notes.clear()
        self._stored_through = stored_through
        self._lose(bad, "a value could not be stored (not a finite number)")
        self.rows_written += len(steps) + len(pending.step_energy) + len(pending.samples)


STEP_COLUMNS = (
    "run_id", "step", "epoch", "start_s", "end_s", "samples", "energy_j", "interpolated", "loss",
    "flags",
)  # fmt: skip
PENDING_COLUMNS = ("run_id", "step", "epoch", "start_s", "end_s", "samples", "loss")
SAMPLE_COLUMNS = (
    "run_id", "device", "time_s", "energy_j", "power_w", "utilization_pct", "memory_used_bytes",
    "temperature_c",
)  # fmt: skip
ROWS_PER_STATEMENT = 256
"""Rows bound into one multi-row INSERT. ``executemany`` steps SQLite once per row and
gives up the GIL at each step: next to a training loop that holds the GIL (a pure-Python
step, a Keras loop) every handover waits a switch interval (5 ms), which capped the
writer at a few hundred rows a second. One statement per 256 rows waits once."""


def insert_rows(
    conn: sqlite3.Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    per_statement: int = ROWS_PER_STATEMENT,
) -> None:
    """``INSERT OR REPLACE`` ``rows`` in multi-row statements of ``per_statement`` rows, the
    rest in power-of-two chunks (a handful of distinct statements, all cached by sqlite3)."""
    head = f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES "
    group = "(" + ", ".join("?" * len(columns)) + ")"
    start, size = 0, per_statement
    while start < len(rows):
        while size > len(rows) - start:
            size //= 2
        chunk = rows[start : start + size]
        conn.execute(head + ", ".join([group] * size), [value for row in chunk for value in row])
        start += size


def _clean_steps(run_id: int, rows: Sequence[StepRow]) -> list[tuple[Any, ...]]:
    """Step rows ready to bind: loss made a float (or NULL), flags defaulted; a row whose
    energy is not a finite number is dropped (the caller counts it as lost)."""
    cleaned = []
    for row in rows:
        energy = row[5]
        if not isinstance(energy, (int, float)) or energy - energy != 0:
            continue
        loss = row[7]
        if loss is not None and type(loss) is not float:
            loss = _loss(loss)
        elif loss is not None and loss - loss != 0:
            loss = None
        cleaned.append(
            (run_id, row[0], row[1], row[2], row[3], row[4], energy, row[6], loss, _flags(row))
        )
    return cleaned


def _flags(row: StepRow) -> int:
    return int(row[8]) if len(row) > 8 else 0


def _loss(value: object) -> float | None:
    try:
        return as_number(value, "loss")
    except (TypeError, ValueError):
        return None


def _finite_totals(totals: RunTotals) -> bool:
    values = (totals.energy_j, totals.step_energy_j, totals.duration_s, totals.setup_energy_j)
    return all(v - v == 0 for v in values) and all(
        e - e == 0 for e in totals.device_energy_j.values()
    )


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is open; SQLite may already have rolled back by itself
    (disk full, I/O error), and that follow-on error must not hide the real one."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.debug("greenprof: rollback failed after an error: %r", exc)


def _store_error(path: Path, exc: sqlite3.Error) -> Exception:
    from greenprof.errors import StoreError

    return StoreError(describe_sqlite_error(path, exc))


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


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
    the cause goes first in ``error``, before what the run had recorded."""
    conn = connect(path, create=False)
    try:
        conn.execute(
            "UPDATE runs SET status = ?, error = ? || coalesce('; ' || error, ''),"
            " ended_at = coalesce(ended_at, ?)"
            " WHERE run_id = ? AND status IN ('running', 'completed')",
            (status, error, wall_clock(), run_id),
        )
    except sqlite3.Error as exc:
        raise _store_error(path, exc) from exc
    finally:
        conn.close()
