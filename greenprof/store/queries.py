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

from greenprof.store.api import MetricRun, StepAggregate, StepBucket, StepColumns
from greenprof.store.dialect import Dialect, in_dialect
from greenprof.store.liveness import RunLiveness

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
    the run's last step + 1."""
    sums: dict[int, tuple[float, float | None]] = {}
    heads: dict[int, list[tuple[int, float, int | None]]] = {}
    last = 0
    for low, step, energy, pair, samples, kind in rows:
        if kind == 0:
            energy_text, loss_text = str(pair).split(" ")
            sums[int(low)] = (float(energy_text), float(loss_text) if loss_text else None)
            last = int(step)
        else:
            heads.setdefault(int(low), []).append((int(step), float(energy), samples))
    buckets = []
    for low in sorted(sums):
        head = sorted(heads.get(low, []))
        buckets.append(
            StepBucket(
                first_step=low,
                end_step=min(low + width, last + 1),
                energy_j=sums[low][0],
                min_loss=sums[low][1],
                head_energy_j=tuple(energy for _, energy, _ in head),
                head_samples=tuple(samples for _, _, samples in head),
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
