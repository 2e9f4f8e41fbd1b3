"""SQLite queries that condense a run for the screens and the metrics endpoint.

Each is one short statement (or a few, over primary-key ranges), so it stays fast on
large databases and never holds a read transaction between refreshes. The semantics are
those of :class:`~greenprof.store.api.ReadBackend`; these functions take the connection
so :class:`~greenprof.store.sqlite_read.SqliteReadBackend` stays one readable class.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence

from greenprof.store.api import MetricRun, StepAggregate, StepBucket, StepColumns, TimelineCell
from greenprof.store.liveness import RunLiveness
from greenprof.store.sqlite_runs import CHUNK

_METRIC_COLUMNS = (
    "run_id, name, status, heartbeat_at, started_at, ended_at, host, pid, rank, framework,"
    " greenprof_version, pue, intensity_g_per_kwh, steps, samples, energy_j, step_energy_j,"
    " duration_s"
)


def step_aggregate(conn: sqlite3.Connection, run_id: int) -> StepAggregate:
    """Count, energy and samples of a run's stored steps, and its last step number."""
    count, energy, samples, last = conn.execute(
        "SELECT count(*), total(energy_j), total(samples), max(step) FROM steps WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    return StepAggregate(int(count), float(energy), int(samples), -1 if last is None else last)


def step_range(conn: sqlite3.Connection, run_id: int) -> tuple[int, int] | None:
    """First and last stored step: two primary-key seeks (``min(step), max(step)`` in one
    SELECT would scan the run's steps: SQLite optimizes a lone min or max only)."""
    first, last = conn.execute(
        "SELECT (SELECT min(step) FROM steps WHERE run_id = :run),"
        " (SELECT max(step) FROM steps WHERE run_id = :run)",
        {"run": run_id},
    ).fetchone()
    return None if first is None else (int(first), int(last))


def step_columns(conn: sqlite3.Connection, run_id: int) -> StepColumns:
    """A run's per-step energy, samples and loss, in step order (one primary-key scan)."""
    rows = conn.execute(
        "SELECT energy_j, samples, loss FROM steps WHERE run_id = ? ORDER BY step", (run_id,)
    ).fetchall()
    if not rows:
        return StepColumns((), (), ())
    energy, samples, loss = zip(*rows, strict=True)
    return StepColumns(energy, samples, loss)


def step_buckets(
    conn: sqlite3.Connection, run_id: int, *, width: int, head: int
) -> list[StepBucket]:
    """Per-bucket sums over primary-key ranges (each an index range scan inside SQLite)
    and each bucket's first ``head`` steps: a few thousand rows reach Python for a run
    of 100,000 steps."""
    span = step_range(conn, run_id)
    if span is None:
        return []
    first, last = span
    width = max(1, width)
    bucket_sql = (
        "SELECT total(energy_j), min(loss) FROM steps WHERE run_id = ? AND step >= ? AND step < ?"
    )
    head_sql = (
        "SELECT energy_j, samples FROM steps WHERE run_id = ? AND step >= ? AND step < ?"
        " ORDER BY step LIMIT ?"
    )
    buckets = []
    for low in range(first, last + 1, width):
        end = min(low + width, last + 1)
        energy, loss = conn.execute(bucket_sql, (run_id, low, end)).fetchone()
        heads = conn.execute(head_sql, (run_id, low, end, max(0, head))).fetchall()
        buckets.append(
            StepBucket(
                first_step=low,
                end_step=end,
                energy_j=float(energy),
                min_loss=None if loss is None else float(loss),
                head_energy_j=tuple(float(row[0]) for row in heads),
                head_samples=tuple(row[1] for row in heads),
            )
        )
    return buckets


def last_sample_time_s(conn: sqlite3.Connection, run_id: int, device: str | None) -> float | None:
    """Time of a device's (or any device's) newest stored sample."""
    if device is None:
        row = conn.execute("SELECT max(time_s) FROM samples WHERE run_id = ?", (run_id,))
    else:
        row = conn.execute(
            "SELECT max(time_s) FROM samples WHERE run_id = ? AND device = ?", (run_id, device)
        )
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
    sql = f"SELECT {_METRIC_COLUMNS} FROM runs"
    if run_ids is None:
        rows = conn.execute(sql + " ORDER BY run_id").fetchall()
    else:
        ids = sorted(run_ids)
        rows = []
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            marks = ",".join("?" * len(chunk))
            rows += conn.execute(f"{sql} WHERE run_id IN ({marks}) ORDER BY run_id", chunk)
    return [
        MetricRun(
            run_id=int(run_id),
            name=str(name),
            status=liveness.status(
                str(status), host=str(host), pid=int(pid), heartbeat_at=float(heartbeat)
            ),
            heartbeat_at=float(heartbeat),
            started_at=float(started),
            ended_at=None if ended is None else float(ended),
            host=str(host),
            rank=rank,
            framework=str(framework),
            greenprof_version=str(version),
            pue=float(pue),
            intensity_g_per_kwh=None if grid is None else float(grid),
            steps=int(steps),
            samples=samples,
            energy_j=float(energy),
            step_energy_j=float(step_energy),
            duration_s=float(duration),
        )
        for (
            run_id,
            name,
            status,
            heartbeat,
            started,
            ended,
            host,
            pid,
            rank,
            framework,
            version,
            pue,
            grid,
            steps,
            samples,
            energy,
            step_energy,
            duration,
        ) in rows
    ]
