"""The PostgreSQL sink: one transaction per flush, rows streamed with COPY.

Rows are copied into session-local staging tables and moved with ``INSERT ... SELECT ...
ON CONFLICT``, so a batch retried after a commit whose acknowledgement was lost (the
server went away during COMMIT) replaces its rows instead of failing on duplicates for
ever. A lost connection is reopened at the next flush; until then ``psycopg.Error`` keeps
the batch queued in the writer. Nothing of the URL but its redacted form is logged.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import psycopg

from greenprof.errors import StoreError
from greenprof.records import RunStatus
from greenprof.store.postgres.connect import connect_url, describe_error, open_raw, redact
from greenprof.store.postgres.schema import prepare_database
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

UPDATE_SQL = {
    "idle_power_w": "UPDATE devices SET idle_power_w = %s WHERE run_id = %s AND device = %s",
    "device_note": "UPDATE devices SET note = btrim(note || '; ' || %s, '; ')"
    " WHERE run_id = %s AND device = %s",
    "rejected_readings": "UPDATE devices SET rejected_readings = %s"
    " WHERE run_id = %s AND device = %s",
    "rename": "UPDATE runs SET name = %s, tags = (tags::jsonb || %s::jsonb)::text"
    " WHERE run_id = %s",
    "framework": "UPDATE runs SET framework = %s WHERE run_id = %s",
    "error": "UPDATE runs SET error = substr(coalesce(error || '; ', '') || %s, 1, %s)"
    " WHERE run_id = %s",
}
"""The statement of each :class:`~greenprof.store.rows.Update` kind (parameters:
:func:`~greenprof.store.rows.update_params`)."""

Staged = tuple[str, Sequence[str], int, Sequence[str]]
STAGED: tuple[Staged, ...] = (
    ("steps", STEP_COLUMNS, 2, ("int8",) * 3 + ("float8",) * 2 + ("int8", "float8", "int4")
     + ("float8", "int4") + ("float8",) * 4),
    ("step_energy", STEP_ENERGY_COLUMNS, 3, ("int8", "int8", "text", "float8", "float8")),
    ("pending_steps", PENDING_COLUMNS, 2, ("int8",) * 3 + ("float8",) * 2 + ("int8", "float8")),
    ("samples", SAMPLE_COLUMNS, 3, ("int8", "text") + ("float8",) * 4 + ("int8", "float8")),
)  # fmt: skip
"""(table, columns, number of leading columns forming its primary key, column types for a
binary COPY)."""


class PostgresSink:
    """Stores a run into a PostgreSQL database (see the module docstring)."""

    errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def __init__(self, url: str) -> None:
        self._url = url
        self.name = redact(url)
        conn = connect_url(url)
        try:
            prepare_database(conn, url)
        except BaseException:
            conn.close()
            raise
        self._conn: psycopg.Connection[Any] | None = conn
        self._staged = False

    def create_run(self, spec: RunSpec, uid: str) -> int:
        try:
            conn = self._connection()
            with conn.transaction():
                row = conn.execute(
                    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)})"
                    f" VALUES ({', '.join(['%s'] * len(RUN_COLUMNS))}) RETURNING run_id",
                    run_row(spec, uid, tags_json(spec.tags)),
                ).fetchone()
                assert row is not None
                run_id = int(row[0])
                conn.cursor().executemany(
                    f"INSERT INTO devices ({', '.join(DEVICE_COLUMNS)})"
                    f" VALUES ({', '.join(['%s'] * len(DEVICE_COLUMNS))})",
                    [device_row(run_id, info) for info in spec.devices],
                )
        except psycopg.Error as exc:
            raise StoreError(describe_error(self._url, exc)) from None
        return run_id

    def write(self, run_id: int, batch: PreparedBatch) -> None:
        conn = self._connection()
        try:
            self._stage(conn)
            with conn.transaction():
                rows = (batch.steps, batch.step_energy, batch.pending, batch.samples)
                for staged, values in zip(STAGED, rows, strict=True):
                    if values:
                        _store_rows(conn, staged, values)
                if batch.delete_pending_through is not None:
                    conn.execute(
                        "DELETE FROM pending_steps WHERE run_id = %s AND step <= %s",
                        (run_id, batch.delete_pending_through),
                    )
                for update in batch.updates:
                    conn.execute(UPDATE_SQL[update.kind], update_params(update, run_id))
                totals = batch.totals
                if totals is not None:
                    conn.execute(
                        "UPDATE runs SET steps = %s, samples = %s, energy_j = %s,"
                        " step_energy_j = %s, duration_s = %s, setup_s = %s,"
                        " setup_energy_j = %s WHERE run_id = %s",
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
                    conn.cursor().executemany(
                        "UPDATE devices SET energy_j = %s WHERE run_id = %s AND device = %s",
                        [(e, run_id, device) for device, e in totals.device_energy_j.items()],
                    )
                conn.execute(
                    "UPDATE runs SET heartbeat_at = %s, lost_steps = %s WHERE run_id = %s",
                    (batch.heartbeat_at, batch.lost_steps, run_id),
                )
        except psycopg.OperationalError:
            self._drop()
            raise

    def end_run(
        self, run_id: int, *, status: RunStatus, error: str | None, lost_steps: int, now: float
    ) -> None:
        conn = self._connection()
        try:
            conn.execute(
                "UPDATE runs SET status = %s, ended_at = %s, heartbeat_at = %s,"
                " error = coalesce(%s, error), lost_steps = %s WHERE run_id = %s",
                (status, now, now, error, lost_steps, run_id),
            )
        except psycopg.OperationalError:
            self._drop()
            raise

    def repair_dead_runs(self, *, exclude: int, now: float) -> None:
        from greenprof.store.recovery import repair_dead_runs

        repair_dead_runs(self._connection(), host=socket.gethostname(), now=now, exclude=exclude)

    def describe(self, exc: BaseException) -> str:
        return describe_error(self._url, exc)

    def close(self) -> None:
        self._drop()

    def _connection(self) -> psycopg.Connection[Any]:
        """The open connection, reopened after the server went away (psycopg.Error if it
        is still gone: the writer keeps the rows queued)."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop()
            self._conn = open_raw(self._url)
            self._staged = False
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _stage(self, conn: psycopg.Connection[Any]) -> None:
        """Session-local staging tables, emptied at each commit (created outside the
        batch's transaction, which a failure may roll back)."""
        if self._staged:
            return
        for table, *_ in STAGED:
            conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS stage_{table}"
                f" (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
        self._staged = True


def _store_rows(
    conn: psycopg.Connection[Any], staged: Staged, rows: Sequence[Sequence[object]]
) -> None:
    """Binary COPY straight into ``table`` (the fast path: about 3x an upsert); where rows
    of this batch are stored already (a retried batch whose commit had in fact landed),
    COPY into the staging table and upsert from it."""
    table, columns, key, types = staged
    try:
        with conn.transaction():  # a savepoint
            _copy(conn, table, columns, types, rows)
        return
    except psycopg.errors.UniqueViolation:
        pass
    _copy(conn, f"stage_{table}", columns, types, rows)
    names = ", ".join(columns)
    keys = ", ".join(columns[:key])
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[key:])
    conn.execute(
        f"INSERT INTO {table} ({names}) SELECT DISTINCT ON ({keys}) {names}"
        f" FROM stage_{table} ON CONFLICT ({keys}) DO UPDATE SET {updates}"
    )
    conn.execute(f"DELETE FROM stage_{table}")


def _copy(
    conn: psycopg.Connection[Any],
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    rows: Sequence[Sequence[object]],
) -> None:
    with conn.cursor().copy(
        f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(list(types))
        for row in rows:
            copy.write_row(row)
