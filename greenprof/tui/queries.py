"""Read-only queries the terminal UI needs beyond :class:`~greenprof.store.RunStore`.

Each is one short statement over the primary-key order of the tables, so it stays fast on
large databases and never holds a read transaction between refreshes.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from greenprof.tui.comparison import StepColumns


@dataclass(frozen=True, slots=True)
class StepAggregate:
    """Totals of the steps already stored for a run."""

    steps: int
    energy_j: float
    samples: int
    last_step: int


def step_aggregate(conn: sqlite3.Connection, run_id: int) -> StepAggregate:
    """Count, energy and samples of a run's stored steps, and its last step number."""
    count, energy, samples, last = conn.execute(
        "SELECT count(*), total(energy_j), total(samples), max(step) FROM steps WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    return StepAggregate(int(count), float(energy), int(samples), -1 if last is None else last)


def step_columns(conn: sqlite3.Connection, run_id: int) -> StepColumns:
    """A run's per-step energy, samples and loss, in step order (one primary-key scan)."""
    rows = conn.execute(
        "SELECT energy_j, samples, loss FROM steps WHERE run_id = ? ORDER BY step", (run_id,)
    ).fetchall()
    if not rows:
        return StepColumns((), (), ())
    energy, samples, loss = zip(*rows, strict=True)
    return StepColumns(energy, samples, loss)


def last_sample_time_s(conn: sqlite3.Connection, run_id: int, device: str) -> float | None:
    """Time of a device's newest stored sample (an index seek)."""
    row = conn.execute(
        "SELECT max(time_s) FROM samples WHERE run_id = ? AND device = ?", (run_id, device)
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])
