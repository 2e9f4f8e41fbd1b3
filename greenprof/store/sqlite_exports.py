"""SQLite row streams for the exporters: the large CSV tables and CodeCarbon's utilization.

The large tables (steps, step-devices, samples) come from one query per run, joined in
SQLite (several times faster than going through ``RunStore.iter_steps``), with each ISO
time as integer Unix milliseconds and NULL numbers as ``''``, so the CSV renderer formats
a row with one ``%`` and no per-cell call (see :mod:`greenprof.exporters.csv`). They are
fetched in bounded batches, so memory stays flat however long the run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator

from greenprof.store import queries
from greenprof.store.api import ExportTable

_MS_SQL = (
    "CAST(round({m}) AS INTEGER)"
    " - (round({m}) - {m} = 0.5 AND CAST(round({m}) AS INTEGER) % 2 <> 0)"
    " + ({m} - round({m}) = 0.5 AND CAST(round({m}) AS INTEGER) % 2 <> 0)"
)
"""Unix milliseconds ``m`` (a REAL) to the nearest integer, ties to even like Python's
``round`` (SQLite's round() takes ties away from zero, and its strftime('%f') is off by
1 ms for about 1 time in 130: it rounds through a Julian day)."""


def _ms(column: str) -> str:
    """SQL for the run's start plus ``column`` seconds, as integer Unix milliseconds."""
    return _MS_SQL.format(m=f"((:at + {column}) * 1000)")


def export_query(table: ExportTable) -> str:
    """The one SQL query producing one run's rows of ``table`` (parameters ``:run_id``,
    ``:at`` the run's start, ``:factor`` grams CO2e per joule or NULL)."""
    if table == "steps":
        return (
            "SELECT step, epoch, start_s, end_s, end_s - start_s,"
            f" {_ms('start_s')}, {_ms('end_s')},"
            " ifnull(samples, ''), energy_j, ifnull(energy_j * :factor, ''), interpolated,"
            " ifnull(loss, ''), ifnull(energy_uncertainty_j, '')"
            " FROM steps WHERE run_id = :run_id ORDER BY step"
        )
    if table == "step-devices":
        return (
            "SELECT s.step, s.epoch, e.device, d.method, s.start_s, s.end_s,"
            f" {_ms('s.start_s')}, e.energy_j, ifnull(e.energy_j * :factor, ''),"
            " ifnull(e.energy_uncertainty_j, '') FROM steps AS s"
            " JOIN step_energy AS e ON e.run_id = s.run_id AND e.step = s.step"
            " LEFT JOIN devices AS d ON d.run_id = e.run_id AND d.device = e.device"
            " WHERE s.run_id = :run_id ORDER BY s.step, e.device"
        )
    if table == "samples":
        return (
            f"SELECT device, time_s, {_ms('time_s')},"
            " ifnull(energy_j, ''), ifnull(power_w, ''), ifnull(utilization_pct, ''),"
            " ifnull(memory_used_bytes, ''), ifnull(temperature_c, '')"
            " FROM samples WHERE run_id = :run_id ORDER BY time_s, device"
        )
    raise ValueError(f"unknown table {table!r}")


def export_batches(
    conn: sqlite3.Connection,
    table: ExportTable,
    run_id: int,
    *,
    started_at: float,
    co2_g_per_j: float | None,
    batch_rows: int,
) -> Generator[list[tuple[object, ...]], None, None]:
    """The rows of ``table`` for one run in lists of at most ``batch_rows``; the cursor is
    closed when done or abandoned.

    One thread: a helper thread fetching ahead was slower than none once the formatting
    got cheap (the two threads trade the GIL for every row SQLite steps).
    """
    params = {"at": started_at, "factor": co2_g_per_j, "run_id": run_id}
    cursor = conn.execute(export_query(table), params)
    try:
        while rows := cursor.fetchmany(batch_rows):
            yield rows
    finally:
        cursor.close()


def utilization_by_kind(conn: sqlite3.Connection, run_id: int) -> dict[str, float]:
    """Mean utilization of the run's samples per device kind."""
    return {
        str(kind): float(mean)
        for kind, mean in conn.execute(queries.UTILIZATION_BY_KIND, (run_id,))
    }
