"""The PostgreSQL :class:`~greenprof.store.api.ReadBackend`: the SQLite backend's semantics
(``greenprof.store.api``) over a server, for every command that reads.

Each query runs in autocommit (no transaction outlives a call, so readers never hold back
the writers' vacuum); the CSV streams read through a server-side cursor in bounded batches.
A connection the server dropped is reopened at the next call. Failures are one-line
:class:`~greenprof.errors.StoreError` s naming the server, never the password.
"""

from __future__ import annotations

import functools
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
from greenprof.store import queries
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
from greenprof.store.dialect import in_dialect
from greenprof.store.liveness import RunLiveness
from greenprof.store.location import StoreLocation
from greenprof.store.postgres import summaries
from greenprof.store.postgres.connect import connect_url, describe_error, open_raw, require_psycopg
from greenprof.store.postgres.schema import prepare_database
from greenprof.store.sqlite_runs import is_run_id, run_info
from greenprof.store.step_records import (
    step_records,
)

require_psycopg()  # without the extra: a StoreError naming it, not an ImportError
import psycopg  # noqa: E402

P = ParamSpec("P")
R = TypeVar("R")


def _one_line_errors(
    method: Callable[Concatenate[PostgresReadBackend, P], R],
) -> Callable[Concatenate[PostgresReadBackend, P], R]:
    """psycopg failures become one StoreError line naming the server (no password)."""

    @functools.wraps(method)
    def wrapper(self: PostgresReadBackend, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except psycopg.Error as exc:
            raise StoreError(describe_error(self.location.target, exc)) from None

    return wrapper  # type: ignore[return-value]


class PostgresReadBackend:
    """Read access to one greenprof PostgreSQL database."""

    def __init__(self, location: StoreLocation, *, liveness: RunLiveness | None = None) -> None:
        self.location = location
        self._liveness = liveness if liveness is not None else RunLiveness()
        self._url = location.target
        conn = connect_url(self._url)
        try:
            prepare_database(conn, self._url, create=False)
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(describe_error(self._url, exc)) from None
        except BaseException:
            conn.close()
            raise
        self._connection: psycopg.Connection[Any] | None = conn

    @property
    def _conn(self) -> psycopg.Connection[Any]:
        conn = self._connection
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            self._connection = conn = open_raw(self._url)
        return conn

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

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
        rows = [
            row
            for row in self._conn.execute(_sql(sql), params).fetchall()
            if exact or self._status(row) == status
        ]
        if limit is not None:
            rows = rows[: max(0, limit)]
        devices = self.devices([row[0] for row in rows])
        return [run_info(row, self._status(row), devices.get(row[0], ())) for row in rows]

    @_one_line_errors
    def run(self, ref: int | str) -> RunInfo:
        row = None
        if is_run_id(ref):
            row = self._conn.execute(_sql(queries.RUN_BY_ID), (int(ref),)).fetchone()
        if row is None and isinstance(ref, str):
            row = self._conn.execute(_sql(queries.RUN_BY_NAME), (ref,)).fetchone()
        if row is None:
            raise RunNotFound(
                f"no run {ref!r} in {self.location.display}: `greenprof runs` lists run ids"
                " and names"
            )
        return run_info(row, self._status(row), self.devices([row[0]]).get(row[0], ()))

    @_one_line_errors
    def stored_status(self, run_id: int) -> str | None:
        row = self._conn.execute(_sql(queries.STORED_STATUS), (run_id,)).fetchone()
        return None if row is None else str(row[0])

    @_one_line_errors
    def devices(self, run_ids: Sequence[int]) -> dict[int, tuple[DeviceInfo, ...]]:
        found: dict[int, list[DeviceInfo]] = {}
        if not run_ids:
            return {}
        for row in self._conn.execute(
            f"SELECT {queries.DEVICE_COLUMNS} FROM devices WHERE run_id = ANY(%s)"
            " ORDER BY run_id, device",
            (list(run_ids),),
        ):
            found.setdefault(row[0], []).append(queries.device_info(row))
        return {run_id: tuple(devices) for run_id, devices in found.items()}

    @_one_line_errors
    def device_energy_j(self, run_id: int) -> dict[str, float]:
        return {
            str(device): float(energy)
            for device, energy in self._conn.execute(_sql(queries.DEVICE_ENERGY_J), (run_id,))
        }

    @_one_line_errors
    def device_energies(self, run_ids: Sequence[int]) -> dict[int, tuple[DeviceEnergy, ...]]:
        found: dict[int, list[DeviceEnergy]] = {}
        for run_id, device, method, energy in self._conn.execute(
            f"SELECT {queries.DEVICE_ENERGY_COLUMNS} FROM devices"
            " WHERE run_id = ANY(%s) ORDER BY run_id, device",
            (list(run_ids),),
        ):
            found.setdefault(run_id, []).append(DeviceEnergy(device, method, float(energy)))
        return {run_id: tuple(devices) for run_id, devices in found.items()}

    @_one_line_errors
    def metric_runs(self, run_ids: Collection[int] | None = None) -> list[MetricRun]:
        return summaries.metric_runs(self._conn, self._liveness, run_ids)

    def _status(self, row: tuple[Any, ...]) -> RunStatus:
        return self._liveness.status(
            str(row[2]), host=str(row[6]), pid=int(row[7]), heartbeat_at=float(row[5])
        )

    # Steps ------------------------------------------------------------------------

    @_one_line_errors
    def step_batch(self, run_id: int, *, after_step: int, size: int) -> list[StepRecord]:
        rows = self._conn.execute(
            _sql(queries.STEP_BATCH),
            (run_id, after_step, size),
            binary=True,  # about twice as fast to fetch many rows here
        ).fetchall()
        if not rows:
            return []
        energies = self._conn.execute(
            _sql(queries.STEP_ENERGY_BETWEEN),
            (run_id, rows[0][0], rows[-1][0]),
            binary=True,
        )
        return step_records(run_id, rows, energies)

    @_one_line_errors
    def step_bound_batch(self, run_id: int, *, after_step: int, size: int) -> list[StepBoundRow]:
        rows: list[StepBoundRow] = self._conn.execute(
            _sql(queries.STEP_BOUND_BATCH),
            (run_id, after_step, size),
            binary=True,
        ).fetchall()
        return rows

    @_one_line_errors
    def step_flag_counts(self, run_id: int) -> dict[str, int]:
        counts: dict[str, int] = {}
        for bit, name in STEP_FLAG_NAMES.items():
            row = self._conn.execute(_sql(queries.STEP_FLAG_COUNT), (run_id, bit)).fetchone()
            if row and row[0]:
                counts[name] = int(row[0])
        return counts

    @_one_line_errors
    def pending_steps(self, run_id: int) -> int:
        row = self._conn.execute(_sql(queries.PENDING_STEPS), (run_id,)).fetchone()
        return int(row[0]) if row else 0

    @_one_line_errors
    def epochs(self, run_id: int) -> list[EpochRecord]:
        return [
            EpochRecord(
                run_id, int(epoch), int(steps), start_s, end_s, _int(samples), float(energy_j)
            )
            for epoch, steps, start_s, end_s, samples, energy_j in self._conn.execute(
                _sql(queries.EPOCHS), (run_id,)
            )
        ]

    @_one_line_errors
    def step_aggregate(self, run_id: int) -> StepAggregate:
        return summaries.step_aggregate(self._conn, run_id)

    @_one_line_errors
    def step_range(self, run_id: int) -> tuple[int, int] | None:
        return summaries.step_range(self._conn, run_id)

    @_one_line_errors
    def step_columns(self, run_id: int) -> StepColumns:
        return summaries.step_columns(self._conn, run_id)

    @_one_line_errors
    def step_buckets(self, run_id: int, *, width: int, head: int) -> list[StepBucket]:
        return summaries.step_buckets(self._conn, run_id, width=width, head=head)

    # Samples ----------------------------------------------------------------------

    @_one_line_errors
    def samples(
        self, run_id: int, *, device: str | None = None, after_s: float | None = None
    ) -> list[SampleRecord]:
        sql, params = queries.samples_query(device=device, after_s=after_s)
        rows = self._conn.execute(_sql(sql), [run_id, *params], binary=True)
        return [SampleRecord(run_id, *row) for row in rows]

    @_one_line_errors
    def last_sample_time_s(self, run_id: int, device: str | None = None) -> float | None:
        return summaries.last_sample_time_s(self._conn, run_id, device)

    @_one_line_errors
    def latest_power_w(self, run_id: int, devices: Sequence[str]) -> dict[str, float]:
        return summaries.latest_power_w(self._conn, run_id, devices)

    @_one_line_errors
    def sample_timeline(self, run_id: int, *, width_s: float, points: int) -> list[TimelineCell]:
        return summaries.sample_timeline(self._conn, run_id, width_s=width_s, points=points)

    @_one_line_errors
    def step_timeline(self, run_id: int, *, width_s: float, points: int) -> list[TimelineCell]:
        return summaries.step_timeline(self._conn, run_id, width_s=width_s, points=points)

    @_one_line_errors
    def utilization_by_kind(self, run_id: int) -> dict[str, float]:
        return summaries.utilization_by_kind(self._conn, run_id)

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
        try:
            yield from summaries.export_batches(
                self._conn,
                table,
                run_id,
                started_at=started_at,
                co2_g_per_j=co2_g_per_j,
                batch_rows=batch_rows,
            )
        except psycopg.Error as exc:
            raise StoreError(describe_error(self._url, exc)) from None


def _sql(text: str) -> str:
    return in_dialect(text, "postgresql")


def _int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
