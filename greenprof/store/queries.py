"""The read queries both backends run, each written once, and the one conversion of their
rows both share.

A text here is written for SQLite with named parameters (``:run``) and positional ``?``
markers, in the SQL both servers accept (``coalesce(sum(x), 0)`` rather than SQLite's
``total(x)``); :func:`greenprof.store.dialect.in_dialect` gives PostgreSQL's spelling
(``%(run)s``, ``%s``). Statements whose semantics need each server's own words (bucket
truncation, ``= ANY`` lists, SQL-side CSV formatting) stay in their backend's module.
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from greenprof.records import DeviceInfo, RunStatus
from greenprof.store.api import MetricRun, StepAggregate, StepBucket, StepColumns
from greenprof.store.dialect import Dialect, in_dialect
from greenprof.store.liveness import RunLiveness
from greenprof.store.step_records import STEP_BOUND_SELECT, STEP_ENERGY_SELECT, STEP_SELECT

RUN_COLUMNS = (
    "run_id, name, status, started_at, ended_at, heartbeat_at, host, pid, rank, framework, tags,"
    " expected_steps, country, region, pue, intensity_g_per_kwh, intensity_source, steps, samples,"
    " energy_j, step_energy_j, duration_s, error, greenprof_version, lost_steps, job_id,"
    " local_rank, world_size, setup_s, setup_energy_j"
)
"""The columns of :func:`greenprof.store.sqlite_runs.run_info` (``FROM runs``)."""

STEP_AGGREGATE = (
    "SELECT count(*), coalesce(sum(energy_j), 0), coalesce(sum(samples), 0), max(step)"
    " FROM steps WHERE run_id = ?"
)
"""Count, energy and samples of a run's stored steps, and its last step number."""

STEP_RANGE = (
    "SELECT (SELECT min(step) FROM steps WHERE run_id = :run),"
    " (SELECT max(step) FROM steps WHERE run_id = :run)"
)
"""First and last stored step: two primary-key seeks (``min(step), max(step)`` in one
SELECT scans the run's steps in SQLite, which optimizes a lone min or max only)."""

STEP_COLUMNS = "SELECT energy_j, samples, loss FROM steps WHERE run_id = ? ORDER BY step"
"""Every step's energy, samples and loss, in step order (one primary-key range scan)."""

STEP_BUCKETS = (
    "WITH RECURSIVE span(first_step, last_step) AS (SELECT"
    " (SELECT min(step) FROM steps WHERE run_id = :run),"
    " (SELECT max(step) FROM steps WHERE run_id = :run)),"
    " b(low) AS (SELECT first_step FROM span WHERE first_step IS NOT NULL"
    " UNION ALL SELECT b.low + :width FROM b, span WHERE b.low + :width <= span.last_step),"
    " cut(low, high) AS (SELECT low, coalesce((SELECT step FROM steps WHERE run_id = :run"
    " AND step >= b.low AND step < b.low + :width ORDER BY step LIMIT 1 OFFSET :head),"
    " b.low + :width) FROM b)"
    " SELECT b.low, span.last_step, NULL, (SELECT {sum_and_min} FROM steps"
    " WHERE run_id = :run AND step >= b.low AND step < b.low + :width), NULL, 0 FROM b, span"
    " UNION ALL SELECT cut.low, s.step, s.energy_j, NULL, s.samples, 1"
    " FROM cut JOIN steps AS s ON s.run_id = :run AND s.step >= cut.low AND s.step < cut.high"
)
"""A run's step buckets in one statement (parameters ``run``, ``width``, ``head``; the
text through :func:`step_buckets_sql`): a row per bucket ``(low, the run's last step, NULL,
"energy-sum minimum-loss", NULL, 0)`` and a row per head step ``(low, step, energy, NULL,
samples, 1)``. Every part is a primary-key seek or range scan, visiting each step once
plus the heads, however long the run: one round trip to a server (the compare screen
reads two runs at first paint). The sum and the minimum come back as one text so one
scan gives both (a GROUP BY over the run sorted every step; two scalar subqueries scanned
twice; a JSON pair kept 15 digits in SQLite); each dialect writes them exactly."""

SUM_AND_MIN: dict[Dialect, str] = {
    "sqlite": "printf('%!.17g', total(energy_j)) || ' ' ||"
    " CASE WHEN min(loss) IS NULL THEN '' ELSE printf('%!.17g', min(loss)) END",
    "postgresql": "coalesce(sum(energy_j), 0)::text || ' ' || coalesce(min(loss)::text, '')",
}
"""Each dialect's exact text of a bucket's energy sum and minimum loss (SQLite's own REAL
to text keeps 15 digits, ``%!.17g`` round-trips; PostgreSQL 12+ writes the shortest exact
text)."""


def step_buckets_sql(dialect: Dialect) -> str:
    """:data:`STEP_BUCKETS` in ``dialect``."""
    return in_dialect(STEP_BUCKETS.replace("{sum_and_min}", SUM_AND_MIN[dialect]), dialect)


LAST_SAMPLE_TIME = "SELECT max(time_s) FROM samples WHERE run_id = ?"
LAST_DEVICE_SAMPLE_TIME = "SELECT max(time_s) FROM samples WHERE run_id = ? AND device = ?"

UTILIZATION_BY_KIND = (
    "SELECT d.kind, avg(s.utilization_pct) FROM samples AS s"
    " JOIN devices AS d ON d.run_id = s.run_id AND d.device = s.device"
    " WHERE s.run_id = ? AND s.utilization_pct IS NOT NULL GROUP BY d.kind"
)
"""Mean utilization of a run's devices, per device kind (samples that have one)."""

METRIC_COLUMNS = (
    "run_id, name, status, heartbeat_at, started_at, ended_at, host, pid, rank, framework,"
    " greenprof_version, pue, intensity_g_per_kwh, steps, samples, energy_j, step_energy_j,"
    " duration_s"
)
"""The columns of one :class:`~greenprof.store.api.MetricRun` (``FROM runs``)."""


def step_aggregate(row: Sequence[Any]) -> StepAggregate:
    """The row of :data:`STEP_AGGREGATE` (a server's ``numeric`` sums made numbers)."""
    count, energy, samples, last = row
    return StepAggregate(int(count), float(energy), int(samples), -1 if last is None else last)


def step_range(row: Sequence[Any]) -> tuple[int, int] | None:
    first, last = row
    return None if first is None else (int(first), int(last))


def step_columns(rows: Sequence[Sequence[Any]]) -> StepColumns:
    if not rows:
        return StepColumns((), (), ())
    energy, samples, loss = zip(*rows, strict=True)
    return StepColumns(energy, samples, loss)


def step_buckets(rows: Iterable[Sequence[Any]], *, width: int) -> list[StepBucket]:
    """The rows of :data:`STEP_BUCKETS` as buckets in step order; the last bucket ends at
    the run's last step + 1. (Both drivers give the columns' own int and float types; the
    head rows arrive nearly in order, which the sort of each bucket's few rows costs
    little.)"""
    sums: dict[int, tuple[float, float | None]] = {}
    heads: dict[int, list[tuple[int, float, int | None]]] = {}
    last = 0
    for low, step, energy, pair, samples, kind in rows:
        if kind:
            heads.setdefault(low, []).append((step, energy, samples))
        else:
            energy_text, loss_text = pair.split(" ")
            sums[low] = (float(energy_text), float(loss_text) if loss_text else None)
            last = step
    buckets = []
    for low in sorted(sums):
        head = heads.get(low, [])
        head.sort()
        buckets.append(
            StepBucket(
                first_step=low,
                end_step=min(low + width, last + 1),
                energy_j=sums[low][0],
                min_loss=sums[low][1],
                head_energy_j=tuple([row[1] for row in head]),
                head_samples=tuple([row[2] for row in head]),
            )
        )
    return buckets


def metric_run(row: Sequence[Any], liveness: RunLiveness) -> MetricRun:
    """A row of :data:`METRIC_COLUMNS`, with its displayed status."""
    (run_id, name, status, heartbeat, started, ended, host, pid, rank, framework) = row[:10]
    (version, pue, grid, steps, samples, energy, step_energy, duration) = row[10:]
    return MetricRun(
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


# Runs and devices --------------------------------------------------------------------

RUN_BY_ID = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?"
RUN_BY_NAME = (
    f"SELECT {RUN_COLUMNS} FROM runs WHERE name = ? ORDER BY started_at DESC, run_id DESC LIMIT 1"
)
"""The newest run of that name."""
STORED_STATUS = "SELECT status FROM runs WHERE run_id = ?"
DEVICE_ENERGY_J = "SELECT device, energy_j FROM devices WHERE run_id = ? ORDER BY device"
DEVICE_COLUMNS = (
    "run_id, device, kind, method, name, uuid, power_limit_w, idle_power_w, node_wide, note,"
    " power_window_s"
)
"""The columns of :func:`device_info` (``FROM devices``)."""
DEVICE_ENERGY_COLUMNS = "run_id, device, method, energy_j"


def runs_query(
    *,
    status: RunStatus | None,
    name: str | None,
    job: str | None,
    limit: int | None,
    silent_since: float,
) -> tuple[str, list[object], bool]:
    """The history listing's statement, its parameters, and whether its rows are exactly
    the answer (False: ``running``/``interrupted`` rows still need the liveness check, so
    the limit is applied after it). ``silent_since``: the heartbeat a running run must
    have reached to count as alive by time (``RunLiveness.silent_since``)."""
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
        params.append(silent_since)
    elif status == "interrupted":
        where.append("status IN ('interrupted', 'running')")
    elif status is not None:
        where.append("status = ?")
        params.append(status)
    sql = f"SELECT {RUN_COLUMNS} FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started_at DESC, run_id DESC"
    exact = status is None or status not in ("running", "interrupted")
    if exact and limit is not None:
        sql += " LIMIT ?"
        params.append(max(0, limit))
    return sql, params, exact


def device_info(row: Sequence[Any]) -> DeviceInfo:
    """A row of :data:`DEVICE_COLUMNS` (its run id first)."""
    return DeviceInfo(
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


# Steps and samples -------------------------------------------------------------------

STEP_BATCH = f"SELECT {STEP_SELECT} FROM steps WHERE run_id = ? AND step > ? ORDER BY step LIMIT ?"
STEP_ENERGY_BETWEEN = (
    f"SELECT {STEP_ENERGY_SELECT} FROM step_energy WHERE run_id = ? AND step BETWEEN ? AND ?"
)
STEP_BOUND_BATCH = (
    f"SELECT {STEP_BOUND_SELECT} FROM steps WHERE run_id = ? AND step > ? ORDER BY step LIMIT ?"
)
STEP_FLAG_COUNT = (
    "SELECT count(*) FROM steps WHERE run_id = ? AND (flags & CAST(? AS INTEGER)) <> 0"
)
"""Steps of a run with one flag bit set."""
PENDING_STEPS = (
    "SELECT count(*) FROM pending_steps AS p WHERE p.run_id = ?"
    " AND NOT EXISTS (SELECT 1 FROM steps AS s WHERE s.run_id = p.run_id AND s.step = p.step)"
)
"""Step boundaries stored whose energy never was (a run that crashed, until repaired)."""
EPOCHS = (
    "SELECT epoch, steps, start_s, end_s, samples, energy_j FROM epochs"
    " WHERE run_id = ? ORDER BY epoch"
)


def samples_query(*, device: str | None, after_s: float | None) -> tuple[str, list[object]]:
    """A run's samples (first parameter: the run id, then these filters), by time then
    device; ``after_s`` exclusive."""
    sql = (
        "SELECT device, time_s, energy_j, power_w, utilization_pct, memory_used_bytes,"
        " temperature_c FROM samples WHERE run_id = ?"
    )
    params: list[object] = []
    if device is not None:
        sql += " AND device = ?"
        params.append(device)
    if after_s is not None:
        sql += " AND time_s > ?"
        params.append(after_s)
    return sql + " ORDER BY time_s, device", params
