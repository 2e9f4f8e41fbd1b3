"""Attribute the steps of a run whose process died, from what it stored (``greenprof repair``).

A live run stores each step's boundaries as soon as the sampler sees them
(``pending_steps``) and each device's cumulative energy at every poll (``samples``);
only the energy attribution waits for the sensor. When the process is killed, the steps
that were still waiting are attributed here by the same attribution as a live run
(:class:`~greenprof.energy.StepAttributor`), replayed over each device's stored
cumulative energy (beyond the last reading: extrapolated for at most
:data:`MAX_EXTRAPOLATION_S`, then left unknown). They are flagged ``recovered`` (and
``interpolated``), the run's totals are recomputed from the rows, and the run ends
``interrupted`` with a note saying how many steps were recovered.

A run is taken for dead when it is still ``running`` and either its heartbeat is older
than :data:`~greenprof.store.liveness.STALE_AFTER_S` (30 s), or it was written on this host by a
process that no longer exists.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenprof.energy import StepAttributor
from greenprof.errors import StoreError
from greenprof.records import STEP_RECOVERED, Reading
from greenprof.store.dialect import Db
from greenprof.store.liveness import STALE_AFTER_S, pid_alive, run_is_dead
from greenprof.store.location import StoreLocation
from greenprof.store.schema import connect, describe_sqlite_error
from greenprof.store.sink import is_url

log = logging.getLogger("greenprof")

MAX_EXTRAPOLATION_S = 2.0
"""Steps ending later than this after a device's last stored reading get no energy from it."""


@dataclass(frozen=True, slots=True)
class Recovery:
    """What :func:`recover_run` did to one run."""

    run_id: int
    name: str
    recovered_steps: int
    steps: int


def dead_runs(
    conn: Any,
    *,
    host: str,
    now: float,
    alive: Callable[[int], bool] = pid_alive,
    stale_after_s: float | None = STALE_AFTER_S,
) -> list[int]:
    """Runs still marked running whose process is gone (see the module docstring).

    ``conn``: a sqlite3 or psycopg connection in autocommit mode. ``stale_after_s=None``:
    only this host's runs whose process no longer exists (what a new run checks at start;
    a silent run elsewhere may just be waiting for a lock)."""
    dead = []
    for run_id, run_host, pid, heartbeat_at in Db.of(conn).execute(
        "SELECT run_id, host, pid, heartbeat_at FROM runs WHERE status = 'running'"
    ):
        if run_is_dead(
            host=run_host,
            pid=int(pid),
            age_s=now - float(heartbeat_at),
            this_host=host,
            alive=alive,
            stale_after_s=stale_after_s,
        ):
            dead.append(int(run_id))
    return dead


def recover_run(conn: Any, run_id: int, *, now: float) -> Recovery:
    """Attribute a dead run's pending steps and close it (one transaction)."""
    db = Db.of(conn)
    with db.transaction():
        name, status = db.execute(
            "SELECT name, status FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        pending = db.execute(
            "SELECT step, epoch, start_s, end_s, samples, loss FROM pending_steps"
            " WHERE run_id = ? AND step NOT IN (SELECT step FROM steps WHERE run_id = ?)"
            " ORDER BY step",
            (run_id, run_id),
        ).fetchall()
        curves = _curves(db, run_id)
        energies = _attribute(curves, [(row[0], row[2], row[3]) for row in pending])
        step_rows: list[tuple[object, ...]] = []
        energy_rows: list[tuple[object, ...]] = []
        for step, epoch, start_s, end_s, samples, loss in pending:
            device_energy = energies.get(step, {})
            step_rows.append(
                (
                    run_id,
                    step,
                    epoch,
                    start_s,
                    end_s,
                    samples,
                    sum(device_energy.values()),
                    1,
                    loss,
                    STEP_RECOVERED,
                )
            )
            energy_rows.extend((run_id, step, d, e) for d, e in device_energy.items())
        db.executemany(
            "INSERT INTO steps (run_id, step, epoch, start_s, end_s, samples, energy_j,"
            " interpolated, loss, flags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, step) DO UPDATE SET epoch = excluded.epoch,"
            " start_s = excluded.start_s, end_s = excluded.end_s, samples = excluded.samples,"
            " energy_j = excluded.energy_j, interpolated = excluded.interpolated,"
            " loss = excluded.loss, flags = excluded.flags",
            step_rows,
        )
        db.executemany(
            "INSERT INTO step_energy (run_id, step, device, energy_j) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (run_id, step, device) DO UPDATE SET energy_j = excluded.energy_j",
            energy_rows,
        )
        db.execute("DELETE FROM pending_steps WHERE run_id = ?", (run_id,))
        _recompute_totals(db, run_id, curves)
        if status == "running" or step_rows:
            note = (
                f"the process died before the end of the run; {len(step_rows)} step(s) "
                "recovered from stored readings"
            )
            db.execute(
                "UPDATE runs SET status = CASE status WHEN 'running' THEN 'interrupted'"
                " ELSE status END, ended_at = coalesce(ended_at, ?),"
                " error = coalesce(error || '; ', '') || ? WHERE run_id = ?",
                (now, note, run_id),
            )
        steps = db.execute("SELECT steps FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]
    return Recovery(int(run_id), str(name), len(step_rows), int(steps))


def repair_dead_runs(conn: Any, *, host: str, now: float, exclude: int | None = None) -> None:
    """Recover this host's runs whose process no longer exists (a new run does this at start,
    on its writer thread); each is logged."""
    for run_id in dead_runs(conn, host=host, now=now, stale_after_s=None):
        if run_id != exclude:
            done = recover_run(conn, run_id, now=now)
            log.info(
                "greenprof: run %s (%s) had died; %d step(s) recovered",
                done.run_id,
                done.name,
                done.recovered_steps,
            )


def repair(
    db: str | os.PathLike[str] | StoreLocation,
    *,
    run_ids: Sequence[int] | None = None,
    host: str | None = None,
    wall_clock: Callable[[], float] = time.time,
    alive: Callable[[int], bool] = pid_alive,
) -> list[Recovery]:
    """Recover the given runs, or every dead run in the store ``db`` (a SQLite path or a
    ``postgresql://`` URL); a database failure is a one-line :class:`StoreError`."""
    if is_url(db):
        from greenprof.store.postgres.connect import connect_url, describe_error

        url = db.target if isinstance(db, StoreLocation) else str(db)
        pg = connect_url(url)
        try:
            return _repair(pg, run_ids, host, wall_clock(), alive)
        except pg_errors() as exc:
            raise StoreError(describe_error(url, exc)) from exc
        finally:
            pg.close()
    path = db.path if isinstance(db, StoreLocation) else Path(db)
    conn = connect(path, create=False)
    try:
        return _repair(conn, run_ids, host, wall_clock(), alive)
    except sqlite3.Error as exc:
        raise StoreError(describe_sqlite_error(path, exc)) from exc
    finally:
        conn.close()


def _repair(
    conn: Any,
    run_ids: Sequence[int] | None,
    host: str | None,
    now: float,
    alive: Callable[[int], bool],
) -> list[Recovery]:
    targets = (
        list(run_ids)
        if run_ids is not None
        else dead_runs(conn, host=host or socket.gethostname(), now=now, alive=alive)
    )
    return [recover_run(conn, run_id, now=now) for run_id in targets]


def pg_errors() -> tuple[type[Exception], ...]:
    import psycopg

    return (psycopg.Error,)


@dataclass(frozen=True, slots=True)
class _Curve:
    """One device's stored cumulative energy over time (seconds since the run started)."""

    times_s: list[float]
    energies_j: list[float]


def _attribute(
    curves: dict[str, _Curve], steps: Sequence[tuple[int, float, float]]
) -> dict[int, dict[str, float]]:
    """Per-step, per-device energy of ``steps`` (step, start_s, end_s), by the same
    attribution as a live run, replayed over the stored readings of each device. A step
    ending more than MAX_EXTRAPOLATION_S after a device's last reading gets nothing from
    that device (unknown, not invented)."""
    out: dict[int, dict[str, float]] = {}
    for device, curve in curves.items():
        attributor = StepAttributor()
        for t_s, e_j in zip(curve.times_s, curve.energies_j, strict=True):
            attributor.add_reading(Reading(device, t_s, e_j, None))
        horizon_s = curve.times_s[-1] + MAX_EXTRAPOLATION_S
        ends = {}
        for step, start_s, end_s in steps:
            attributor.add_step(step, start_s, end_s)
            ends[step] = end_s
        for energy in attributor.pop_ready() + attributor.finish():
            if ends[energy.step] <= horizon_s:
                out.setdefault(energy.step, {})[device] = max(0.0, energy.energy_j)
    return out


def _curves(db: Db, run_id: int) -> dict[str, _Curve]:
    points: dict[str, tuple[list[float], list[float]]] = {}
    for device, time_s, energy_j in db.execute(
        "SELECT device, time_s, energy_j FROM samples WHERE run_id = ? AND energy_j IS NOT NULL"
        " ORDER BY device, time_s",
        (run_id,),
    ):
        times, energies = points.setdefault(device, ([], []))
        times.append(float(time_s))
        energies.append(max(float(energy_j), energies[-1] if energies else 0.0))
    return {device: _Curve(t, e) for device, (t, e) in points.items() if t}


def _recompute_totals(db: Db, run_id: int, curves: dict[str, _Curve]) -> None:
    steps, samples, step_energy_j, last_end_s = db.execute(
        "SELECT count(*), sum(samples), coalesce(sum(energy_j), 0), coalesce(max(end_s), 0)"
        " FROM steps WHERE run_id = ?",
        (run_id,),
    ).fetchone()
    device_energy = {device: curve.energies_j[-1] for device, curve in curves.items()}
    last_sample_s = max((c.times_s[-1] for c in curves.values()), default=0.0)
    db.executemany(
        "UPDATE devices SET energy_j = greatest(energy_j, ?) WHERE run_id = ? AND device = ?",
        [(energy, run_id, device) for device, energy in device_energy.items()],
    )
    (energy_j,) = db.execute(
        "SELECT coalesce(sum(energy_j), 0) FROM devices WHERE run_id = ?", (run_id,)
    ).fetchone()
    db.execute(
        "UPDATE runs SET steps = ?, samples = ?, step_energy_j = ?, energy_j = ?,"
        " duration_s = greatest(duration_s, ?) WHERE run_id = ?",
        (
            steps,
            None if samples is None else int(samples),
            float(step_energy_j),
            float(energy_j),
            max(float(last_end_s), last_sample_s),
            run_id,
        ),
    )
