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
from greenprof.store import queries, sqlite_exports, sqlite_runs, sqlite_summaries
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
        sql, params, exact = queries.runs_query(
            status=status,
            name=name,
            job=job,
            limit=limit,
            silent_since=self._liveness.silent_since(),
        )
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
            row = self._conn.execute(queries.RUN_BY_ID, (int(ref),)).fetchone()
        if row is None and isinstance(ref, str):
            row = self._conn.execute(queries.RUN_BY_NAME, (ref,)).fetchone()
        if row is None:
            raise RunNotFound(
                f"no run {ref!r} in {self.location.display}: `greenprof runs` lists run ids"
                " and names"
            )
        return sqlite_runs.run_info(row, self._status(row), self.devices([row[0]]).get(row[0], ()))

    @_one_line_errors
    def stored_status(self, run_id: int) -> str | None:
        row = self._conn.execute(queries.STORED_STATUS, (run_id,)).fetchone()
        return None if row is None else str(row[0])

    @_one_line_errors
    def devices(self, run_ids: Sequence[int]) -> dict[int, tuple[DeviceInfo, ...]]:
        return sqlite_runs.devices(self._conn, run_ids)

    @_one_line_errors
    def device_energy_j(self, run_id: int) -> dict[str, float]:
        return {
            str(device): float(energy)
            for device, energy in self._conn.execute(queries.DEVICE_ENERGY_J, (run_id,))
        }

    @_one_line_errors
    def device_energies(self, run_ids: Sequence[int]) -> dict[int, tuple[DeviceEnergy, ...]]:
        found: dict[int, list[DeviceEnergy]] = {}
        for chunk in _chunks(run_ids):
            marks = ",".join("?" * len(chunk))
            for run_id, device, method, energy in self._conn.execute(
                f"SELECT {queries.DEVICE_ENERGY_COLUMNS} FROM devices"
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
        rows = self._conn.execute(queries.STEP_BATCH, (run_id, after_step, size)).fetchall()
        if not rows:
            return []
        energies = self._conn.execute(
            queries.STEP_ENERGY_BETWEEN, (run_id, rows[0][0], rows[-1][0])
        )
        return step_records(run_id, rows, energies)

    @_one_line_errors
    def step_bound_batch(self, run_id: int, *, after_step: int, size: int) -> list[StepBoundRow]:
        rows: list[StepBoundRow] = self._conn.execute(
            queries.STEP_BOUND_BATCH, (run_id, after_step, size)
        ).fetchall()
        return rows

    @_one_line_errors
    def step_flag_counts(self, run_id: int) -> dict[str, int]:
        counts: dict[str, int] = {}
        for bit, name in STEP_FLAG_NAMES.items():
            (n,) = self._conn.execute(queries.STEP_FLAG_COUNT, (run_id, bit)).fetchone()
            if n:
                counts[name] = int(n)
        return counts

    @_one_line_errors
    def pending_steps(self, run_id: int) -> int:
        row = self._conn.execute(queries.PENDING_STEPS, (run_id,)).fetchone()
        return int(row[0])

    @_one_line_errors
    def epochs(self, run_id: int) -> list[EpochRecord]:
        return [
            EpochRecord(run_id, epoch, steps, start_s, end_s, samples, energy_j)
            for epoch, steps, start_s, end_s, samples, energy_j in self._conn.execute(
                queries.EPOCHS, (run_id,)
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
        sql, params = queries.samples_query(device=device, after_s=after_s)
        return [SampleRecord(run_id, *row) for row in self._conn.execute(sql, [run_id, *params])]

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
