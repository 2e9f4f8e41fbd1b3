"""The SQLite sink: one ``BEGIN IMMEDIATE`` transaction per flush into a WAL database.

Several processes may write one file: WAL mode and a busy timeout serialise their commits;
a commit that fails (locked, disk full, read-only) raises ``sqlite3.Error`` and the writer
keeps the batch queued. A database file deleted during the run is restored at its path
from the open handle (SQLite's backup API), so nothing written before is lost with it.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
from collections.abc import Sequence
from itertools import chain
from pathlib import Path

from greenprof.errors import StoreError
from greenprof.records import RunStatus
from greenprof.store.rows import (
    DEVICE_COLUMNS,
    PENDING_COLUMNS,
    RUN_COLUMNS,
    SAMPLE_COLUMNS,
    STEP_COLUMNS,
    STEP_ENERGY_COLUMNS,
    PreparedBatch,
    RunSpec,
    device_row,
    run_row,
    tags_json,
    update_params,
)
from greenprof.store.schema import FILE_MODE, connect, describe_sqlite_error

log = logging.getLogger("greenprof")

ROWS_PER_STATEMENT = 256
"""Rows bound into one multi-row INSERT. ``executemany`` steps SQLite once per row and
gives up the GIL at each step: next to a training loop that holds the GIL (a pure-Python
step, a Keras loop) every handover waits a switch interval (5 ms), which capped the
writer at a few hundred rows a second. One statement per 256 rows waits once."""

UPDATE_SQL = {
    "idle_power_w": "UPDATE devices SET idle_power_w = ? WHERE run_id = ? AND device = ?",
    "device_note": "UPDATE devices SET note = trim(note || '; ' || ?, '; ')"
    " WHERE run_id = ? AND device = ?",
    "rejected_readings": "UPDATE devices SET rejected_readings = ? WHERE run_id = ? AND device = ?",
    "rename": "UPDATE runs SET name = ?, tags = json_patch(tags, ?) WHERE run_id = ?",
    "framework": "UPDATE runs SET framework = ? WHERE run_id = ?",
    "error": "UPDATE runs SET error = substr(coalesce(error || '; ', '') || ?, 1, ?)"
    " WHERE run_id = ?",
}
"""The statement of each :class:`~greenprof.store.rows.Update` kind (parameters:
:func:`~greenprof.store.rows.update_params`)."""


class SqliteSink:
    """Stores a run into a SQLite file (see the module docstring)."""

    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        self.conn = connect(path, create=True)
        self._identity = _file_identity(path)
        self._notes: list[str] = []

    def create_run(self, spec: RunSpec, uid: str) -> int:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            cursor = conn.execute(
                f"INSERT INTO runs ({', '.join(RUN_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
                run_row(spec, uid, tags_json(spec.tags)),
            )
            run_id = int(cursor.lastrowid or 0)
            conn.executemany(
                f"INSERT INTO devices ({', '.join(DEVICE_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(DEVICE_COLUMNS))})",
                [device_row(run_id, info) for info in spec.devices],
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            rollback(conn)
            raise StoreError(describe_sqlite_error(self.path, exc)) from exc
        return run_id

    def write(self, run_id: int, batch: PreparedBatch) -> None:
        self._check_file()
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            if batch.steps:
                insert_rows(conn, "steps", STEP_COLUMNS, batch.steps)
            if batch.step_energy:
                insert_rows(conn, "step_energy", STEP_ENERGY_COLUMNS, batch.step_energy)
            if batch.pending:
                insert_rows(conn, "pending_steps", PENDING_COLUMNS, batch.pending)
            if batch.delete_pending_through is not None:
                conn.execute(
                    "DELETE FROM pending_steps WHERE run_id = ? AND step <= ?",
                    (run_id, batch.delete_pending_through),
                )
            if batch.samples:
                insert_rows(conn, "samples", SAMPLE_COLUMNS, batch.samples)
            for update in batch.updates:
                conn.execute(UPDATE_SQL[update.kind], update_params(update, run_id))
            totals = batch.totals
            if totals is not None:
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
                (batch.heartbeat_at, batch.lost_steps, run_id),
            )
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
        self._notes.clear()

    def end_run(
        self, run_id: int, *, status: RunStatus, error: str | None, lost_steps: int, now: float
    ) -> None:
        self.conn.execute(
            "UPDATE runs SET status = ?, ended_at = ?, heartbeat_at = ?,"
            " error = coalesce(?, error), lost_steps = ? WHERE run_id = ?",
            (status, now, now, error, lost_steps, run_id),
        )

    def repair_dead_runs(self, *, exclude: int, now: float) -> None:
        from greenprof.store.recovery import repair_dead_runs

        repair_dead_runs(self.conn, host=socket.gethostname(), now=now, exclude=exclude)

    def describe(self, exc: BaseException) -> str:
        if isinstance(exc, sqlite3.Error):
            return describe_sqlite_error(self.path, exc)
        return f"{self.path}: {exc}"

    def close(self) -> None:
        self.conn.close()

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
            self.conn.backup(target)
            target.execute("PRAGMA journal_mode=WAL")
        except BaseException:
            target.close()
            raise
        self.conn.close()
        self.conn = target
        target.execute("PRAGMA synchronous=NORMAL")
        target.execute("PRAGMA busy_timeout=5000")
        self._identity = _file_identity(self.path)
        log.warning(
            "greenprof: %s was deleted during the run; restored it from the open file", self.path
        )


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
        conn.execute(head + ", ".join([group] * size), list(chain.from_iterable(chunk)))
        start += size


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is open; SQLite may already have rolled back by itself
    (disk full, I/O error), and that follow-on error must not hide the real one."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.debug("greenprof: rollback failed after an error: %r", exc)


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino
