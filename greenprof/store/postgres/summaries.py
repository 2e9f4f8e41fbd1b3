"""PostgreSQL queries that condense a run (screens, metrics) and stream it (CSV exports),
with the semantics of :class:`~greenprof.store.api.ReadBackend` and the same results as
the SQLite ones (``sqlite_summaries``, ``sqlite_exports``): sums of integers come back as
``numeric`` here and are made ints, buckets truncate like SQLite's ``CAST(... AS INTEGER)``,
and the exports' milliseconds round half to even like Python (done in Python here).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any

from greenprof.store import queries
from greenprof.store.api import (
    ExportTable,
    MetricRun,
    StepAggregate,
    StepBucket,
    StepColumns,
    TimelineCell,
)
from greenprof.store.dialect import in_dialect
from greenprof.store.liveness import RunLiveness

Conn = Any  # a psycopg.Connection in autocommit mode


_STEP_BUCKETS = queries.step_buckets_sql("postgresql")


def _sql(text: str) -> str:
    return in_dialect(text, "postgresql")


def step_aggregate(conn: Conn, run_id: int) -> StepAggregate:
    return queries.step_aggregate(conn.execute(_sql(queries.STEP_AGGREGATE), (run_id,)).fetchone())


def step_range(conn: Conn, run_id: int) -> tuple[int, int] | None:
    return queries.step_range(conn.execute(_sql(queries.STEP_RANGE), {"run": run_id}).fetchone())


def step_columns(conn: Conn, run_id: int) -> StepColumns:
    rows = conn.execute(
        _sql(queries.STEP_COLUMNS),
        (run_id,),
        binary=True,  # about twice as fast to fetch many rows here
    ).fetchall()
    return queries.step_columns(rows)


def step_buckets(conn: Conn, run_id: int, *, width: int, head: int) -> list[StepBucket]:
    """One round trip (:data:`~greenprof.store.queries.STEP_BUCKETS`)."""
    width = max(1, width)
    params = {"run": run_id, "width": width, "head": max(0, head)}
    return queries.step_buckets(conn.execute(_STEP_BUCKETS, params), width=width)


def last_sample_time_s(conn: Conn, run_id: int, device: str | None) -> float | None:
    if device is None:
        row = conn.execute(_sql(queries.LAST_SAMPLE_TIME), (run_id,))
    else:
        row = conn.execute(_sql(queries.LAST_DEVICE_SAMPLE_TIME), (run_id, device))
    value = row.fetchone()[0]
    return None if value is None else float(value)


def latest_power_w(conn: Conn, run_id: int, devices: Sequence[str]) -> dict[str, float]:
    newest: dict[str, list[tuple[float, float | None, float | None]]] = {}
    for device, time_s, energy, power in conn.execute(
        "SELECT device, time_s, energy_j, power_w FROM (SELECT device, time_s, energy_j,"
        " power_w, row_number() OVER (PARTITION BY device ORDER BY time_s DESC) AS k"
        " FROM samples WHERE run_id = %s AND device = ANY(%s)) AS ranked WHERE k <= 2"
        " ORDER BY device, time_s DESC",
        (run_id, list(devices)),
    ):
        newest.setdefault(device, []).append((time_s, energy, power))
    power_w: dict[str, float] = {}
    for device in devices:
        rows = newest.get(device, [])
        if not rows:
            continue
        if rows[0][2] is not None:
            power_w[device] = float(rows[0][2])
        elif len(rows) == 2 and None not in (rows[0][1], rows[1][1]) and rows[0][0] > rows[1][0]:
            power_w[device] = (rows[0][1] - rows[1][1]) / (rows[0][0] - rows[1][0])  # type: ignore[operator]
    return power_w


def sample_timeline(conn: Conn, run_id: int, *, width_s: float, points: int) -> list[TimelineCell]:
    return [
        TimelineCell(str(device), int(bucket), power, energy)
        for device, bucket, power, energy in conn.execute(
            "SELECT device, least(trunc(time_s / %s)::bigint, %s) AS b, avg(power_w),"
            " max(energy_j) FROM samples WHERE run_id = %s GROUP BY device, b"
            " ORDER BY b, device",
            (width_s, points - 1, run_id),
        )
    ]


def step_timeline(conn: Conn, run_id: int, *, width_s: float, points: int) -> list[TimelineCell]:
    return [
        TimelineCell(str(device), int(bucket), None, energy)
        for device, bucket, energy in conn.execute(
            "SELECT e.device, least(trunc(s.start_s / %s)::bigint, %s) AS b, sum(e.energy_j)"
            " FROM steps AS s JOIN step_energy AS e ON e.run_id = s.run_id AND e.step = s.step"
            " WHERE s.run_id = %s GROUP BY e.device, b ORDER BY b, e.device",
            (width_s, points - 1, run_id),
        )
    ]


def utilization_by_kind(conn: Conn, run_id: int) -> dict[str, float]:
    return {
        str(kind): float(mean)
        for kind, mean in conn.execute(_sql(queries.UTILIZATION_BY_KIND), (run_id,))
    }


def metric_runs(
    conn: Conn, liveness: RunLiveness, run_ids: Collection[int] | None
) -> list[MetricRun]:
    sql = f"SELECT {queries.METRIC_COLUMNS} FROM runs"
    if run_ids is None:
        rows = conn.execute(sql + " ORDER BY run_id").fetchall()
    else:
        rows = conn.execute(
            sql + " WHERE run_id = ANY(%s) ORDER BY run_id", (sorted(run_ids),)
        ).fetchall()
    return [queries.metric_run(row, liveness) for row in rows]


EXPORT_SQL: dict[str, str] = {
    "steps": "SELECT step, epoch, start_s, end_s, samples, energy_j, interpolated, loss,"
    " energy_uncertainty_j FROM steps WHERE run_id = %s ORDER BY step",
    "step-devices": "SELECT s.step, s.epoch, e.device, d.method, s.start_s, s.end_s, e.energy_j,"
    " e.energy_uncertainty_j"
    " FROM steps AS s JOIN step_energy AS e ON e.run_id = s.run_id AND e.step = s.step"
    " LEFT JOIN devices AS d ON d.run_id = e.run_id AND d.device = e.device"
    " WHERE s.run_id = %s ORDER BY s.step, e.device",
    "samples": "SELECT device, time_s, energy_j, power_w, utilization_pct, memory_used_bytes,"
    " temperature_c FROM samples WHERE run_id = %s ORDER BY time_s, device",
}


def export_batches(
    conn: Conn,
    table: ExportTable,
    run_id: int,
    *,
    started_at: float,
    co2_g_per_j: float | None,
    batch_rows: int,
) -> Iterator[list[tuple[object, ...]]]:
    """The rows of ``table`` in the columns the CSV writer expects (see the Protocol),
    read through a server-side cursor ``batch_rows`` at a time."""
    if table not in EXPORT_SQL:
        raise ValueError(f"unknown table {table!r}")

    def ms(offset_s: float) -> int:
        return round((started_at + offset_s) * 1000)

    def co2(energy_j: float) -> object:
        return "" if co2_g_per_j is None else energy_j * co2_g_per_j

    def blank(value: object) -> object:
        return "" if value is None else value

    def shape(row: tuple[Any, ...]) -> tuple[object, ...]:
        if table == "steps":
            step, epoch, start, end, samples, energy, interpolated, loss, bound = row
            timing = (start, end, end - start, ms(start), ms(end))
            costs = (energy, co2(energy), interpolated, blank(loss), blank(bound))
            return (step, epoch, *timing, blank(samples), *costs)
        if table == "step-devices":
            step, epoch, device, method, start, end, energy, bound = row
            at = ms(start)
            return (step, epoch, device, method, start, end, at, energy, co2(energy), blank(bound))
        device, time_s, *rest = row
        return (device, time_s, ms(time_s), *(blank(v) for v in rest))

    with conn.transaction(), conn.cursor(f"greenprof_export_{run_id}", binary=True) as cursor:
        cursor.itersize = batch_rows
        cursor.execute(EXPORT_SQL[table], (run_id,))
        while rows := cursor.fetchmany(batch_rows):
            yield [shape(row) for row in rows]
