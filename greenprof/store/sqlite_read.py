"""The SQLite :class:`~greenprof.store.api.ReadBackend`: runs, devices, steps, samples.

Every query is a short read transaction, so readers never block the writing process and
never starve WAL checkpoints. The aggregates and timelines live in
:mod:`greenprof.store.sqlite_summaries`, the CSV row streams in
:mod:`greenprof.store.sqlite_exports`; this class binds them to its connection.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from greenprof.errors import RunNotFound, StoreError
from greenprof.records import (
    STEP_FLAG_NAMES,
    DeviceInfo,
    EpochRecord,
    RunInfo,
    RunStatus,
    SampleRecord,
    StepRecord,
)
from greenprof.store import sqlite_exports, sqlite_runs, sqlite_summaries
from greenprof.store.api import (
    DeviceEnergy,
    ExportTable,
    MetricRun,
    StepAggregate,
    StepBoundRow,
    StepBucket,
    StepColumns,
    TimelineCell,
)
from greenprof.store.liveness import RunLiveness
from greenprof.store.location import StoreLocation
from greenprof.store.schema import connect_read_only, describe_sqlite_error
from greenprof.store.step_records import (
    STEP_BOUND_SELECT,
    STEP_ENERGY_SELECT,
    STEP_SELECT,
    step_records,
)

P = ParamSpec("P")
R = TypeVar("R")


def _one_line_errors(
    method: Callable[Concatenate[SqliteReadBackend, P], R],
) -> Callable[Concatenate[SqliteReadBackend, P], R]:
    """SQLite failures (a damaged page, a lock) become one :class:`StoreError` line that
    names the file, never a traceback."""

    @functools.wraps(method)
    def wrapper(self: SqliteReadBackend, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise StoreError(describe_sqlite_error(self.location.path, exc)) from exc

    return wrapper  # type: ignore[return-value]


class SqliteReadBackend:
    """Read access to one greenprof SQLite file (see :class:`~greenprof.store.api.ReadBackend`)."""

    def __init__(self, location: StoreLocation, *, liveness: RunLiveness | None = None) -> None:
        self.location = location
        self._liveness = liveness if liveness is not None else RunLiveness()
        self._conn = connect_read_only(location.path)

    def close(self) -> None:
        self._conn.close()

    # Runs -------------------------------------------------------------------------

    @_one_line_errors
    def runs(
        self,
        *,
        status: RunStatus | None = None,
        name: str | None = None,
        job: str | None = None,
        limit: int | None = None,
    ) -> list[RunInfo]:
        where: list[str] = []
        params: list[object] = []
        if name is not None:
            where.append("name = ?")
            params.append(name)
        if job is not None:
            where.append("job_id = ?")
            params.append(job)
        if status == "running":  # only rows alive by time; the pid check follows
            where.append("status = 'running' AND heartbeat_at >= ?")
            params.append(self._liveness.silent_since())
        elif status == "interrupted":
            where.append("status IN ('interrupted', 'running')")
        elif status is not None:
            where.append("status = ?")
            params.append(status)
        sql = f"SELECT {sqlite_runs.RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, run_id DESC"
        exact = status is None or status not in ("running", "interrupted")
        if exact and limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, limit))
        rows: list[tuple[Any, ...]] = []
        cursor = self._conn.execute(sql, params)
        try:  # closed early: no read transaction outlives the call
            for row in cursor:
                if exact or self._status(row) == status:
                    rows.append(row)
                    if limit is not None and len(rows) >= limit:
                        break
        finally:
            cursor.close()
        devices = self.devices([row[0] for row in rows])
        return [
            sqlite_runs.run_info(row, self._status(row), devices.get(row[0], ())) for row in rows
        ]

    @_one_line_errors
    def run(self, ref: int | str) -> RunInfo:
        row = None
        if sqlite_runs.is_run_id(ref):
            row = self._conn.execute(
                f"SELECT {sqlite_runs.RUN_COLUMNS} FROM runs WHERE run_id = ?", (int(ref),)
            ).fetchone()
        if row is None and isinstance(ref, str):
            row = self._conn.execute(
                f"SELECT {sqlite_runs.RUN_COLUMNS} FROM runs WHERE name = ?"
                " ORDER BY started_at DESC, run_id DESC LIMIT 1",
                (ref,),
            ).fetchone()
        if row is None:
            raise RunNotFound(
                f"no run {ref!r} in {self.location.display}: `greenprof runs` lists run ids"
                " and names"
            )
        return sqlite_runs.run_info(row, self._status(row), self.devices([row[0]]).get(row[0], ()))

    @_one_line_errors
    def stored_status(self, run_id: int) -> str | None:
        row = self._conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else str(row[0])

    @_one_line_errors
    def devices(self, run_ids: Sequence[int]) -> dict[int, tuple[DeviceInfo, ...]]:
        return sqlite_runs.devices(self._conn, run_ids)

    @_one_line_errors
    def device_energy_j(self, run_id: int) -> dict[str, float]:
        return {
            str(device): float(energy)
            for device, energy in self._conn.execute(
                "SELECT device, energy_j FROM devices WHERE run_id = ? ORDER BY device", (run_id,)
            )
        }

    @_one_line_errors
    def device_energies(self, run_ids: Sequence[int]) -> dict[int, tuple[DeviceEnergy, ...]]:
        found: dict[int, list[DeviceEnergy]] = {}
        for chunk in _chunks(run_ids):
            marks = ",".join("?" * len(chunk))
            for run_id, device, method, energy in self._conn.execute(
                "SELECT run_id, device, method, energy_j FROM devices"
                f" WHERE run_id IN ({marks}) ORDER BY run_id, device",
                chunk,
            ):
                found.setdefault(run_id, []).append(DeviceEnergy(device, method, float(energy)))
        return {run_id: tuple(devices) for run_id, devices in found.items()}

    @_one_line_errors
    def metric_runs(self, run_ids: Collection[int] | None = None) -> list[MetricRun]:
        return sqlite_summaries.metric_runs(self._conn, self._liveness, run_ids)

    def _status(self, row: tuple[Any, ...]) -> RunStatus:
        return self._liveness.status(
            str(row[2]), host=str(row[6]), pid=int(row[7]), heartbeat_at=float(row[5])
        )

    # Steps ------------------------------------------------------------------------

    @_one_line_errors
    def step_batch(self, run_id: int, *, after_step: int, size: int) -> list[StepRecord]:
        rows = self._conn.execute(
            f"SELECT {STEP_SELECT} FROM steps WHERE run_id = ? AND step > ? ORDER BY step LIMIT ?",
            (run_id, after_step, size),
        ).fetchall()
        if not rows:
            return []
        energies = self._conn.execute(
            f"SELECT {STEP_ENERGY_SELECT} FROM step_energy"
            " WHERE run_id = ? AND step BETWEEN ? AND ?",
            (run_id, rows[0][0], rows[-1][0]),
        )
        return step_records(run_id, rows, energies)

    @_one_line_errors
    def step_bound_batch(self, run_id: int, *, after_step: int, size: int) -> list[StepBoundRow]:
        rows: list[StepBoundRow] = self._conn.execute(
            f"SELECT {STEP_BOUND_SELECT} FROM steps"
            " WHERE run_id = ? AND step > ? ORDER BY step LIMIT ?",
            (run_id, after_step, size),
        ).fetchall()
        return rows

    @_one_line_errors
    def step_flag_counts(self, run_id: int) -> dict[str, int]:
        counts: dict[str, int] = {}
        for bit, name in STEP_FLAG_NAMES.items():
            (n,) = self._conn.execute(
                "SELECT count(*) FROM steps WHERE run_id = ? AND flags & ? != 0", (run_id, bit)
            ).fetchone()
            if n:
                counts[name] = int(n)
        return counts

    @_one_line_errors
    def pending_steps(self, run_id: int) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM pending_steps WHERE run_id = ?"
            " AND step NOT IN (SELECT step FROM steps WHERE run_id = ?)",
            (run_id, run_id),
        ).fetchone()
        return int(row[0])

    @_one_line_errors
    def epochs(self, run_id: int) -> list[EpochRecord]:
        return [
            EpochRecord(run_id, epoch, steps, start_s, end_s, samples, energy_j)
            for epoch, steps, start_s, end_s, samples, energy_j in self._conn.execute(
                "SELECT epoch, steps, start_s, end_s, samples, energy_j FROM epochs"
                " WHERE run_id = ? ORDER BY epoch",
                (run_id,),
            )
        ]

    @_one_line_errors
    def step_aggregate(self, run_id: int) -> StepAggregate:
        return sqlite_summaries.step_aggregate(self._conn, run_id)

    @_one_line_errors
    def step_range(self, run_id: int) -> tuple[int, int] | None:
        return sqlite_summaries.step_range(self._conn, run_id)

    @_one_line_errors
    def step_columns(self, run_id: int) -> StepColumns:
        return sqlite_summaries.step_columns(self._conn, run_id)

    @_one_line_errors
    def step_buckets(self, run_id: int, *, width: int, head: int) -> list[StepBucket]:
        return sqlite_summaries.step_buckets(self._conn, run_id, width=width, head=head)

    # Samples ----------------------------------------------------------------------

    @_one_line_errors
    def samples(
        self, run_id: int, *, device: str | None = None, after_s: float | None = None
    ) -> list[SampleRecord]:
        sql = (
            "SELECT device, time_s, energy_j, power_w, utilization_pct, memory_used_bytes,"
            " temperature_c FROM samples WHERE run_id = ?"
        )
        params: list[object] = [run_id]
        if device is not None:
            sql += " AND device = ?"
            params.append(device)
        if after_s is not None:
            sql += " AND time_s > ?"
            params.append(after_s)
        sql += " ORDER BY time_s, device"
        return [SampleRecord(run_id, *row) for row in self._conn.execute(sql, params)]

    @_one_line_errors
    def last_sample_time_s(self, run_id: int, device: str | None = None) -> float | None:
        return sqlite_summaries.last_sample_time_s(self._conn, run_id, device)

    @_one_line_errors
    def latest_power_w(self, run_id: int, devices: Sequence[str]) -> dict[str, float]:
        return sqlite_summaries.latest_power_w(self._conn, run_id, devices)

    @_one_line_errors
    def sample_timeline(self, run_id: int, *, width_s: float, points: int) -> list[TimelineCell]:
        return sqlite_summaries.sample_timeline(self._conn, run_id, width_s=width_s, points=points)

    @_one_line_errors
    def step_timeline(self, run_id: int, *, width_s: float, points: int) -> list[TimelineCell]:
        return sqlite_summaries.step_timeline(self._conn, run_id, width_s=width_s, points=points)

    @_one_line_errors
    def utilization_by_kind(self, run_id: int) -> dict[str, float]:
        return sqlite_exports.utilization_by_kind(self._conn, run_id)

    # Exports ----------------------------------------------------------------------

    def export_batches(
        self,
        table: ExportTable,
        run_id: int,
        *,
        started_at: float,
        co2_g_per_j: float | None,
        batch_rows: int,
    ) -> Iterator[list[tuple[object, ...]]]:
        batches = sqlite_exports.export_batches(
            self._conn,
            table,
            run_id,
            started_at=started_at,
            co2_g_per_j=co2_g_per_j,
            batch_rows=batch_rows,
        )
        try:
            yield from batches
        except sqlite3.Error as exc:
            raise StoreError(describe_sqlite_error(self.location.path, exc)) from exc
        finally:
            batches.close()


def _chunks(run_ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(run_ids), sqlite_runs.CHUNK):
        yield list(run_ids[start : start + sqlite_runs.CHUNK])
