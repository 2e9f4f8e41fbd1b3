"""RunStore: the read API over a run database, used by the CLI, the TUI and exporters.

Every query is a short read transaction, so readers never block the writing process and
never starve WAL checkpoints. Incremental readers pass ``after_step`` / ``after_s``.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from greenprof.errors import RunNotFound, StoreError
from greenprof.records import (
    STEP_FLAG_NAMES,
    CarbonSettings,
    DeviceInfo,
    EpochRecord,
    RunInfo,
    RunStatus,
    SampleRecord,
    StepRecord,
)
from greenprof.store.liveness import STALE_AFTER_S, pid_alive, run_is_dead
from greenprof.store.paths import resolve_db_path
from greenprof.store.schema import connect_read_only, describe_sqlite_error

__all__ = ["STALE_AFTER_S", "RunStore"]

P = ParamSpec("P")
R = TypeVar("R")


def _one_line_errors(
    method: Callable[Concatenate[RunStore, P], R],
) -> Callable[Concatenate[RunStore, P], R]:
    """SQLite failures (a damaged page, a lock) become one :class:`StoreError` line that
    names the file, never a traceback."""

    @functools.wraps(method)
    def wrapper(self: RunStore, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise StoreError(describe_sqlite_error(self.path, exc)) from exc

    return wrapper  # type: ignore[return-value]


_RUN_COLUMNS = (
    "run_id, name, status, started_at, ended_at, heartbeat_at, host, pid, rank, framework, tags,"
    " expected_steps, country, region, pue, intensity_g_per_kwh, intensity_source, steps, samples,"
    " energy_j, step_energy_j, duration_s, error, greenprof_version, lost_steps, job_id,"
    " local_rank, world_size, setup_s, setup_energy_j"
)


class RunStore:
    """Read access to a greenprof database.

    Example::

        store = RunStore("runs.db")
        for run in store.runs():
            print(run.name, run.energy_j)
        for step in store.steps(store.run("resnet18").run_id):
            print(step.step, step.energy_j, step.device_energy_j)
    """

    def __init__(
        self,
        db: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] = os.environ,
        wall_clock: Callable[[], float] = time.time,
        alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        self.path: Path = resolve_db_path(db, env)
        self._conn = connect_read_only(self.path)
        self._wall_clock = wall_clock
        self._alive = alive

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection, for ad-hoc read queries (do not write through it)."""
        return self._conn

    # Runs -----------------------------------------------------------------

    @_one_line_errors
    def runs(
        self,
        *,
        status: RunStatus | None = None,
        name: str | None = None,
        job: str | None = None,
        limit: int | None = None,
    ) -> list[RunInfo]:
        """Runs, newest first, optionally filtered by (displayed) status, name and job."""
        where, params = [], []
        if name is not None:
            where.append("name = ?")
            params.append(name)
        if job is not None:
            where.append("job_id = ?")
            params.append(job)
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, run_id DESC"
        rows = self._conn.execute(sql, params).fetchall()
        devices = self._devices([row[0] for row in rows])
        runs = [self._run_info(row, devices.get(row[0], ())) for row in rows]
        if status is not None:
            runs = [run for run in runs if run.status == status]
        return runs[:limit] if limit is not None else runs

    @_one_line_errors
    def run(self, ref: int | str) -> RunInfo:
        """One run by id, or by name (its newest run). Raises :class:`RunNotFound`."""
        row = None
        if _is_run_id(ref):
            row = self._conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (int(ref),)
            ).fetchone()
        if row is None and isinstance(ref, str):
            row = self._conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE name = ?"
                " ORDER BY started_at DESC, run_id DESC LIMIT 1",
                (ref,),
            ).fetchone()
        if row is None:
            raise RunNotFound(
                f"no run {ref!r} in {self.path}: `greenprof runs` lists run ids and names"
            )
        return self._run_info(row, self._devices([row[0]]).get(row[0], ()))

    def _devices(self, run_ids: list[int]) -> dict[int, tuple[DeviceInfo, ...]]:
        if not run_ids:
            return {}
        found: dict[int, list[DeviceInfo]] = {}
        for chunk_start in range(0, len(run_ids), 500):
            chunk = run_ids[chunk_start : chunk_start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._conn.execute(
                "SELECT run_id, device, kind, method, name, uuid, power_limit_w, idle_power_w,"
                f" node_wide, note FROM devices WHERE run_id IN ({marks}) ORDER BY run_id, device",
                chunk,
            ):
                found.setdefault(row[0], []).append(
                    DeviceInfo(
                        device=row[1],
                        kind=row[2],
                        method=row[3],
                        name=row[4],
                        uuid=row[5],
                        power_limit_w=row[6],
                        idle_power_w=row[7],
                        node_wide=bool(row[8]),
                        note=row[9],
                    )
                )
        return {run_id: tuple(devices) for run_id, devices in found.items()}

    @_one_line_errors
    def device_energy_j(self, run_id: int) -> dict[str, float]:
        """Each device's energy over the whole run."""
        return dict(
            self._conn.execute(
                "SELECT device, energy_j FROM devices WHERE run_id = ? ORDER BY device", (run_id,)
            ).fetchall()
        )

    def _run_info(self, row: tuple[Any, ...], devices: tuple[DeviceInfo, ...]) -> RunInfo:
        (
            run_id,
            name,
            status,
            started_at,
            ended_at,
            heartbeat_at,
            host,
            pid,
            rank,
            framework,
            tags,
            expected_steps,
            country,
            region,
            pue,
            intensity,
            source,
            steps,
            samples,
            energy_j,
            step_energy_j,
            duration_s,
            error,
            version,
            lost_steps,
            job_id,
            local_rank,
            world_size,
            setup_s,
            setup_energy_j,
        ) = row
        if status == "running" and run_is_dead(
            host=str(host),
            pid=int(pid),
            age_s=self._wall_clock() - float(heartbeat_at),
            alive=self._alive,
        ):
            status = "interrupted"
        carbon = None
        if intensity is not None:
            carbon = CarbonSettings(
                intensity_g_per_kwh=float(intensity),
                pue=float(pue),
                source=str(source or ""),
                country=country,
                region=region,
            )
        return RunInfo(
            run_id=int(run_id),
            name=str(name),
            status=status,
            started_at=float(started_at),
            ended_at=None if ended_at is None else float(ended_at),
            host=str(host),
            pid=int(pid),
            rank=rank,
            framework=str(framework),
            tags=_tags(tags),
            devices=devices,
            carbon=carbon,
            steps=int(steps),
            samples=samples,
            energy_j=float(energy_j),
            step_energy_j=float(step_energy_j),
            duration_s=float(duration_s),
            expected_steps=expected_steps,
            error=error,
            greenprof_version=str(version),
            lost_steps=int(lost_steps),
            job_id=job_id,
            local_rank=local_rank,
            world_size=world_size,
            setup_s=float(setup_s),
            setup_energy_j=float(setup_energy_j),
        )

    # Steps ----------------------------------------------------------------

    def steps(
        self, run_id: int, *, after_step: int | None = None, limit: int | None = None
    ) -> list[StepRecord]:
        """Steps of a run in order, with per-device energies; ``after_step`` for increments."""
        return list(self.iter_steps(run_id, after_step=after_step, limit=limit))

    def iter_steps(
        self,
        run_id: int,
        *,
        after_step: int | None = None,
        limit: int | None = None,
        batch_size: int = 10_000,
    ) -> Iterator[StepRecord]:
        """Stream steps without loading the run into memory (one short query per batch)."""
        last = -1 if after_step is None else after_step
        remaining = limit
        while remaining is None or remaining > 0:
            size = batch_size if remaining is None else min(batch_size, remaining)
            batch = self._step_batch(run_id, last, size)
            yield from batch
            if len(batch) < size:
                return
            last = batch[-1].step
            if remaining is not None:
                remaining -= len(batch)

    @_one_line_errors
    def _step_batch(self, run_id: int, after_step: int, size: int) -> list[StepRecord]:
        rows = self._conn.execute(
            "SELECT step, epoch, start_s, end_s, samples, energy_j, interpolated, loss, flags"
            " FROM steps"
            " WHERE run_id = ? AND step > ? ORDER BY step LIMIT ?",
            (run_id, after_step, size),
        ).fetchall()
        if not rows:
            return []
        per_device: dict[int, dict[str, float]] = {}
        for step, device, energy in self._conn.execute(
            "SELECT step, device, energy_j FROM step_energy"
            " WHERE run_id = ? AND step BETWEEN ? AND ?",
            (run_id, rows[0][0], rows[-1][0]),
        ):
            per_device.setdefault(step, {})[device] = energy
        return [
            StepRecord(
                run_id=run_id,
                step=step,
                epoch=epoch,
                start_s=start_s,
                end_s=end_s,
                samples=samples,
                energy_j=energy_j,
                device_energy_j=per_device.get(step, {}),
                interpolated=bool(interpolated),
                loss=loss,
                flags=flags,
            )
            for step, epoch, start_s, end_s, samples, energy_j, interpolated, loss, flags in rows
        ]

    @_one_line_errors
    def step_flag_counts(self, run_id: int) -> dict[str, int]:
        """How many of a run's steps carry each flag (``recovered``, ``device_missing``,
        ``reading_rejected``); flags no step carries are left out."""
        counts: dict[str, int] = {}
        for bit, name in STEP_FLAG_NAMES.items():
            (n,) = self._conn.execute(
                "SELECT count(*) FROM steps WHERE run_id = ? AND flags & ? != 0", (run_id, bit)
            ).fetchone()
            if n:
                counts[name] = int(n)
        return counts

    @_one_line_errors
    def pending_steps(self, run_id: int) -> int:
        """Steps whose boundaries are stored but whose energy is not: a run whose process
        died before attributing them (``greenprof repair`` attributes them)."""
        row = self._conn.execute(
            "SELECT count(*) FROM pending_steps WHERE run_id = ?"
            " AND step NOT IN (SELECT step FROM steps WHERE run_id = ?)",
            (run_id, run_id),
        ).fetchone()
        return int(row[0])

    @_one_line_errors
    def epochs(self, run_id: int) -> list[EpochRecord]:
        """Per-epoch totals of a run."""
        return [
            EpochRecord(run_id, epoch, steps, start_s, end_s, samples, energy_j)
            for epoch, steps, start_s, end_s, samples, energy_j in self._conn.execute(
                "SELECT epoch, steps, start_s, end_s, samples, energy_j FROM epochs"
                " WHERE run_id = ? ORDER BY epoch",
                (run_id,),
            )
        ]

    # Samples --------------------------------------------------------------

    @_one_line_errors
    def samples(
        self, run_id: int, *, device: str | None = None, after_s: float | None = None
    ) -> list[SampleRecord]:
        """Raw sensor samples of a run in time order; ``after_s`` for increments."""
        sql = (
            "SELECT device, time_s, energy_j, power_w, utilization_pct, memory_used_bytes,"
            " temperature_c FROM samples WHERE run_id = ?"
        )
        params: list[object] = [run_id]
        if device is not None:
            sql += " AND device = ?"
            params.append(device)
        if after_s is not None:
            sql += " AND time_s > ?"
            params.append(after_s)
        sql += " ORDER BY time_s, device"
        return [SampleRecord(run_id, *row) for row in self._conn.execute(sql, params)]


def _is_run_id(ref: int | str) -> bool:
    """An int, or a string of at most 19 ASCII digits (SQLite's 64-bit integer range)."""
    if isinstance(ref, int):
        return 0 <= ref < 2**63
    return ref.isascii() and ref.isdigit() and len(ref) <= 18


def _tags(raw: object) -> dict[str, str]:
    """The run's tags; an edited, unparseable value reads as no tags rather than a crash."""
    try:
        tags = json.loads(str(raw))
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}
