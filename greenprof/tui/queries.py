"""Read-only queries the terminal UI needs beyond :class:`~greenprof.store.RunStore`.

Each is one short statement over the primary-key order of the tables, so it stays fast on
large databases and never holds a read transaction between refreshes.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

from greenprof.tui.comparison import CURVE_POINTS, StepColumns, StepDigest, digest_columns

EXACT_UP_TO_STEPS = 20_000
"""Runs up to this many steps are digested exactly from every step."""
SAMPLED_STEPS = 5_000
"""Longer runs: percentiles from about this many evenly spaced steps."""


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


def step_digest(
    conn: sqlite3.Connection, run_id: int, *, exact_up_to: int = EXACT_UP_TO_STEPS
) -> StepDigest:
    """What the compare screen needs from a run's steps, reading few rows for long runs.

    Up to ``exact_up_to`` steps: every step (exact). Beyond: per-bucket sums over
    primary-key ranges (CURVE_POINTS buckets; each an index range scan inside SQLite)
    for the energy curve, the loss frontier and the step-energy total, plus the first
    steps of every bucket (about SAMPLED_STEPS in all) for the J/step and J/sample
    percentiles. Python then handles a few thousand rows, not 100,000.
    """
    first, last = conn.execute(
        "SELECT min(step), max(step) FROM steps WHERE run_id = ?", (run_id,)
    ).fetchone()
    if first is None or last - first + 1 <= exact_up_to:
        return digest_columns(step_columns(conn, run_id))
    span = last - first + 1
    width = math.ceil(span / CURVE_POINTS)
    block = max(1, min(width, math.ceil(SAMPLED_STEPS / CURVE_POINTS)))
    curve: list[tuple[float, float]] = []
    frontier: list[tuple[float, float]] = []
    step_j: list[float] = []
    sample_j: list[float] = []
    cumulative, best = 0.0, math.inf
    bucket_sql = (
        "SELECT total(energy_j), min(loss) FROM steps WHERE run_id = ? AND step >= ? AND step < ?"
    )
    block_sql = "SELECT energy_j, samples FROM steps WHERE run_id = ? AND step >= ? AND step < ?"
    for low in range(first, last + 1, width):
        energy, loss = conn.execute(bucket_sql, (run_id, low, low + width)).fetchone()
        cumulative += energy
        curve.append((float(min(low + width, last + 1) - 1 - first), cumulative))
        if loss is not None and loss < best:
            best = loss
            frontier.append((loss, cumulative))
        for energy_j, samples in conn.execute(block_sql, (run_id, low, low + block)):
            step_j.append(energy_j)
            if samples:
                sample_j.append(energy_j / samples)
    return StepDigest(
        step_j=step_j,
        sample_j=sample_j,
        curve=tuple(curve),
        loss_frontier=tuple(frontier),
        step_energy_j=cumulative,
        samples=None,  # the run's total from the runs table
        sampled_every=max(1, width // block),
    )
