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
from greenprof.store.postgres import summaries
from greenprof.store.postgres.connect import connect_url, describe_error, open_raw, require_psycopg
from greenprof.store.postgres.schema import prepare_database
from greenprof.store.sqlite_runs import RUN_COLUMNS, is_run_id, run_info
from greenprof.store.step_records import (
    STEP_BOUND_SELECT,
    STEP_ENERGY_SELECT,
    STEP_SELECT,
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
        where: list[str] = []
        params: list[object] = []
        if name is not None:
            where.append("name = %s")
            params.append(name)
        if job is not None:
            where.append("job_id = %s")
            params.append(job)
        if status == "running":  # only rows alive by time; the pid check follows
            where.append("status = 'running' AND heartbeat_at >= %s")
            params.append(self._liveness.silent_since())
        elif status == "interrupted":
            where.append("status IN ('interrupted', 'running')")
        elif status is not None:
            where.append("status = %s")
            params.append(status)
        sql = f"SELECT {RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, run_id DESC"
        exact = status is None or status not in ("running", "interrupted")
        if exact and limit is not None:
            sql += " LIMIT %s"
            params.append(max(0, limit))
        rows = [
            row
            for row in self._conn.execute(sql, params).fetchall()
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
            row = self._conn.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = %s", (int(ref),)
            ).fetchone()
        if row is None and isinstance(ref, str):
            row = self._conn.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE name = %s"
                " ORDER BY started_at DESC, run_id DESC LIMIT 1",
                (ref,),
            ).fetchone()
        if row is None:
            raise RunNotFound(
                f"no run {ref!r} in {self.location.display}: `greenprof runs` lists run ids"
                " and names"
            )
        return run_info(row, self._status(row), self.devices([row[0]]).get(row[0], ()))

    @_one_line_errors
    def stored_status(self, run_id: int) -> str | None:
        row = self._conn.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        return None if row is None else str(row[0])

    @_one_line_errors
    def devices(self, run_ids: Sequence[int]) -> dict[int, tuple[DeviceInfo, ...]]:
        found: dict[int, list[DeviceInfo]] = {}
        if not run_ids:
            return {}
        for row in self._conn.execute(
            "SELECT run_id, device, kind, method, name, uuid, power_limit_w, idle_power_w,"
            " node_wide, note, power_window_s FROM devices WHERE run_id = ANY(%s)"
            " ORDER BY run_id, device",
            (list(run_ids),),
        ):
            found.setdefault(row[0], []).append(
                DeviceInfo(
                    device=row[1],
                    kind=row[2],
                    method=row[3],
                    name=row[4],
                    uuid=row[5],
                    power_limit_w=row[6],
                    idle_power_w=row[7],
                    node_wide=bool(row[8]),
                    note=row[9],
                    power_window_s=row[10],
                )
            )
        return {run_id: tuple(devices) for run_id, devices in found.items()}

    @_one_line_errors
    def device_energy_j(self, run_id: int) -> dict[str, float]:
        return {
            str(device): float(energy)
            for device, energy in self._conn.execute(
                "SELECT device, energy_j FROM devices WHERE run_id = %s ORDER BY device",
                (run_id,),
            )
        }

    @_one_line_errors
    def device_energies(self, run_ids: Sequence[int]) -> dict[int, tuple[DeviceEnergy, ...]]:
        found: dict[int, list[DeviceEnergy]] = {}
        for run_id, device, method, energy in self._conn.execute(
            "SELECT run_id, device, method, energy_j FROM devices"
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
            f"SELECT {STEP_SELECT}"
            " FROM steps WHERE run_id = %s AND step > %s ORDER BY step LIMIT %s",
            (run_id, after_step, size),
            binary=True,  # about twice as fast to fetch many rows here
        ).fetchall()
        if not rows:
            return []
        energies = self._conn.execute(
            f"SELECT {STEP_ENERGY_SELECT} FROM step_energy"
            " WHERE run_id = %s AND step BETWEEN %s AND %s",
            (run_id, rows[0][0], rows[-1][0]),
            binary=True,
        )
        return step_records(run_id, rows, energies)

    @_one_line_errors
    def step_bound_batch(self, run_id: int, *, after_step: int, size: int) -> list[StepBoundRow]:
        rows: list[StepBoundRow] = self._conn.execute(
            f"SELECT {STEP_BOUND_SELECT} FROM steps"
            " WHERE run_id = %s AND step > %s ORDER BY step LIMIT %s",
            (run_id, after_step, size),
            binary=True,
        ).fetchall()
        return rows

    @_one_line_errors
    def step_flag_counts(self, run_id: int) -> dict[str, int]:
        counts: dict[str, int] = {}
        for bit, name in STEP_FLAG_NAMES.items():
            row = self._conn.execute(
                "SELECT count(*) FROM steps WHERE run_id = %s AND (flags & %s::integer) <> 0",
                (run_id, bit),
            ).fetchone()
            if row and row[0]:
                counts[name] = int(row[0])
        return counts

    @_one_line_errors
    def pending_steps(self, run_id: int) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM pending_steps p WHERE p.run_id = %s"
            " AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.run_id = p.run_id"
            " AND s.step = p.step)",
            (run_id,),
        ).fetchone()
        return int(row[0]) if row else 0

    @_one_line_errors
    def epochs(self, run_id: int) -> list[EpochRecord]:
        return [
            EpochRecord(
                run_id, int(epoch), int(steps), start_s, end_s, _int(samples), float(energy_j)
            )
            for epoch, steps, start_s, end_s, samples, energy_j in self._conn.execute(
                "SELECT epoch, steps, start_s, end_s, samples, energy_j FROM epochs"
                " WHERE run_id = %s ORDER BY epoch",
                (run_id,),
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
        sql = (
            "SELECT device, time_s, energy_j, power_w, utilization_pct, memory_used_bytes,"
            " temperature_c FROM samples WHERE run_id = %s"
        )
        params: list[object] = [run_id]
        if device is not None:
            sql += " AND device = %s"
            params.append(device)
        if after_s is not None:
            sql += " AND time_s > %s"
            params.append(after_s)
        sql += " ORDER BY time_s, device"
        return [SampleRecord(run_id, *row) for row in self._conn.execute(sql, params, binary=True)]

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


def _int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
