"""SQLite queries that condense a run for the screens and the metrics endpoint.

Each is one short statement (or a few, over primary-key ranges), so it stays fast on
large databases and never holds a read transaction between refreshes. The semantics are
those of :class:`~greenprof.store.api.ReadBackend`; these functions take the connection
so :class:`~greenprof.store.sqlite_read.SqliteReadBackend` stays one readable class.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence

from greenprof.store import queries
from greenprof.store.api import MetricRun, StepAggregate, StepBucket, StepColumns, TimelineCell
from greenprof.store.liveness import RunLiveness
from greenprof.store.sqlite_runs import CHUNK

_STEP_BUCKETS = queries.step_buckets_sql("sqlite")


def step_aggregate(conn: sqlite3.Connection, run_id: int) -> StepAggregate:
    """Count, energy and samples of a run's stored steps, and its last step number."""
    return queries.step_aggregate(conn.execute(queries.STEP_AGGREGATE, (run_id,)).fetchone())


def step_range(conn: sqlite3.Connection, run_id: int) -> tuple[int, int] | None:
    """First and last stored step (two primary-key seeks)."""
    return queries.step_range(conn.execute(queries.STEP_RANGE, {"run": run_id}).fetchone())


def step_columns(conn: sqlite3.Connection, run_id: int) -> StepColumns:
    """A run's per-step energy, samples and loss, in step order (one primary-key scan)."""
    return queries.step_columns(conn.execute(queries.STEP_COLUMNS, (run_id,)).fetchall())


def step_buckets(
    conn: sqlite3.Connection, run_id: int, *, width: int, head: int
) -> list[StepBucket]:
    """One statement (:data:`~greenprof.store.queries.STEP_BUCKETS`): per-bucket sums over
    primary-key ranges and each bucket's first ``head`` steps; a few thousand rows reach
    Python for a run of 100,000 steps."""
    width = max(1, width)
    params = {"run": run_id, "width": width, "head": max(0, head)}
    return queries.step_buckets(conn.execute(_STEP_BUCKETS, params), width=width)


def last_sample_time_s(conn: sqlite3.Connection, run_id: int, device: str | None) -> float | None:
    """Time of a device's (or any device's) newest stored sample."""
    if device is None:
        row = conn.execute(queries.LAST_SAMPLE_TIME, (run_id,))
    else:
        row = conn.execute(queries.LAST_DEVICE_SAMPLE_TIME, (run_id, device))
    value = row.fetchone()[0]
    return None if value is None else float(value)


def latest_power_w(
    conn: sqlite3.Connection, run_id: int, devices: Sequence[str]
) -> dict[str, float]:
    """Newest power per device: the sensor's power, else the last energy rise over time."""
    power: dict[str, float] = {}
    for device in devices:
        rows = conn.execute(
            "SELECT time_s, energy_j, power_w FROM samples WHERE run_id = ? AND device = ?"
            " ORDER BY time_s DESC LIMIT 2",
            (run_id, device),
        ).fetchall()
        if not rows:
            continue
        if rows[0][2] is not None:
            power[device] = float(rows[0][2])
        elif len(rows) == 2 and None not in (rows[0][1], rows[1][1]) and rows[0][0] > rows[1][0]:
            power[device] = (rows[0][1] - rows[1][1]) / (rows[0][0] - rows[1][0])
    return power


def sample_timeline(
    conn: sqlite3.Connection, run_id: int, *, width_s: float, points: int
) -> list[TimelineCell]:
    """Samples bucketed by time per device, in SQL."""
    return [
        TimelineCell(str(device), int(bucket), power, energy)
        for device, bucket, power, energy in conn.execute(
            "SELECT device, MIN(CAST(time_s / ? AS INTEGER), ?) AS b, AVG(power_w),"
            " MAX(energy_j) FROM samples WHERE run_id = ? GROUP BY device, b ORDER BY b, device",
            (width_s, points - 1, run_id),
        )
    ]


def step_timeline(
    conn: sqlite3.Connection, run_id: int, *, width_s: float, points: int
) -> list[TimelineCell]:
    """Per-device step energies bucketed by the steps' start, in SQL."""
    return [
        TimelineCell(str(device), int(bucket), None, energy)
        for device, bucket, energy in conn.execute(
            "SELECT e.device, MIN(CAST(s.start_s / ? AS INTEGER), ?) AS b, SUM(e.energy_j)"
            " FROM steps AS s JOIN step_energy AS e ON e.run_id = s.run_id AND e.step = s.step"
            " WHERE s.run_id = ? GROUP BY e.device, b ORDER BY b, e.device",
            (width_s, points - 1, run_id),
        )
    ]


def metric_runs(
    conn: sqlite3.Connection, liveness: RunLiveness, run_ids: Collection[int] | None
) -> list[MetricRun]:
    """One cheap row per run (no tags, no devices) for each Prometheus scrape."""
    sql = f"SELECT {queries.METRIC_COLUMNS} FROM runs"
    if run_ids is None:
        rows = conn.execute(sql + " ORDER BY run_id").fetchall()
    else:
        ids = sorted(run_ids)
        rows = []
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            marks = ",".join("?" * len(chunk))
            rows += conn.execute(f"{sql} WHERE run_id IN ({marks}) ORDER BY run_id", chunk)
    return [queries.metric_run(row, liveness) for row in rows]
