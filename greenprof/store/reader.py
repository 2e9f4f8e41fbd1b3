"""RunStore: the read API over a run store, used by the CLI, the TUI and exporters.

``RunStore(db)`` picks a backend from the location (:func:`~greenprof.store.location.
parse_location`): a SQLite file (:class:`~greenprof.store.sqlite_read.SqliteReadBackend`)
or a PostgreSQL URL (``greenprof.store.postgres.reader.PostgresReadBackend``, imported
only then). Every method is the backend's (see :class:`~greenprof.store.api.ReadBackend`
for what each must return); callers never see SQL or a connection. Incremental readers
pass ``after_step`` / ``after_s``.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from greenprof.errors import StoreError
from greenprof.records import DeviceInfo, EpochRecord, RunInfo, RunStatus, SampleRecord, StepRecord
from greenprof.store.api import (
    DeviceEnergy,
    ExportTable,
    MetricRun,
    ReadBackend,
    StepAggregate,
    StepBoundRow,
    StepBucket,
    StepColumns,
    TimelineCell,
)
from greenprof.store.liveness import STALE_AFTER_S, RunLiveness, pid_alive
from greenprof.store.location import StoreLocation, parse_location

__all__ = ["STALE_AFTER_S", "RunStore", "open_read_backend"]

POSTGRES_READER = "greenprof.store.postgres.reader"


def open_read_backend(location: StoreLocation, liveness: RunLiveness) -> ReadBackend:
    """The backend for ``location``: SQLite here, PostgreSQL imported on first use (so
    ``import greenprof`` never loads a server driver)."""
    if location.kind == "sqlite":
        from greenprof.store.sqlite_read import SqliteReadBackend

        return SqliteReadBackend(location, liveness=liveness)
    try:
        module = importlib.import_module(POSTGRES_READER)
    except ImportError as exc:
        if exc.name not in (POSTGRES_READER, "greenprof.store.postgres"):
            raise
        raise StoreError(
            f"cannot read {location.display}: this greenprof has no PostgreSQL backend"
        ) from None
    backend: ReadBackend = module.PostgresReadBackend(location, liveness=liveness)
    return backend


class RunStore:
    """Read access to a greenprof store (a SQLite file or a PostgreSQL database).

    Example::

        store = RunStore("runs.db")          # or RunStore("postgresql://me@db/greenprof")
        for run in store.runs():
            print(run.name, run.energy_j)
        for step in store.steps(store.run("resnet18").run_id):
            print(step.step, step.energy_j, step.device_energy_j)
    """

    def __init__(
        self,
        db: str | os.PathLike[str] | StoreLocation | None = None,
        *,
        env: Mapping[str, str] = os.environ,
        wall_clock: Callable[[], float] = time.time,
        alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        self.location = parse_location(db, env)
        self._backend = open_read_backend(
            self.location, RunLiveness(wall_clock=wall_clock, alive=alive)
        )

    @property
    def path(self) -> Path:
        """The SQLite file. A server store has none: :class:`StoreError` (use
        :attr:`location`, whose ``display`` is safe to print)."""
        if self.location.kind != "sqlite":
            raise StoreError(f"{self.location.display} is a PostgreSQL store, not a file")
        return self.location.path

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Runs -------------------------------------------------------------------------

    def runs(
        self,
        *,
        status: RunStatus | None = None,
        name: str | None = None,
        job: str | None = None,
        limit: int | None = None,
    ) -> list[RunInfo]:
        """Runs, newest first, optionally filtered by (displayed) status, name and job."""
        return self._backend.runs(status=status, name=name, job=job, limit=limit)

    def run(self, ref: int | str) -> RunInfo:
        """One run by id, or by name (its newest run). Raises :class:`RunNotFound`."""
        return self._backend.run(ref)

    def stored_status(self, run_id: int) -> str | None:
        """The run's status as stored (no liveness rule), None for an unknown run."""
        return self._backend.stored_status(run_id)

    def devices(self, run_ids: Sequence[int]) -> dict[int, tuple[DeviceInfo, ...]]:
        """Each run's devices."""
        return self._backend.devices(run_ids)

    def device_energy_j(self, run_id: int) -> dict[str, float]:
        """Each device's energy over the whole run."""
        return self._backend.device_energy_j(run_id)

    def device_energies(self, run_ids: Sequence[int]) -> dict[int, tuple[DeviceEnergy, ...]]:
        """Method and energy of each device of each run."""
        return self._backend.device_energies(run_ids)

    def metric_runs(self, run_ids: Collection[int] | None = None) -> list[MetricRun]:
        """One row per run for the Prometheus collector, ordered by run id."""
        return self._backend.metric_runs(run_ids)

    # Steps ------------------------------------------------------------------------

    def steps_frame(self, run: int | str | RunInfo) -> Any:
        """The run's steps as a pandas DataFrame, one row per step (pandas needed; see
        :func:`greenprof.frames.steps_frame`)."""
        from greenprof.frames import steps_frame

        return steps_frame(self, run)

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
            batch = self._backend.step_batch(run_id, after_step=last, size=size)
            yield from batch
            if len(batch) < size:
                return
            last = batch[-1].step
            if remaining is not None:
                remaining -= len(batch)

    def step_batch(self, run_id: int, *, after_step: int, size: int) -> list[StepRecord]:
        """At most ``size`` steps after ``after_step``."""
        return self._backend.step_batch(run_id, after_step=after_step, size=size)

    def step_bound_batch(self, run_id: int, *, after_step: int, size: int) -> list[StepBoundRow]:
        """At most ``size`` steps after ``after_step``, as their bound parts only."""
        return self._backend.step_bound_batch(run_id, after_step=after_step, size=size)

    def iter_step_bounds(self, run_id: int, *, batch_size: int = 50_000) -> Iterator[StepBoundRow]:
        """Every step's bound parts, in step order, streamed (for
        :func:`greenprof.step_windows.step_window_bounds`: many times faster than
        :meth:`iter_steps` on a long run)."""
        last = -1
        while True:
            batch = self._backend.step_bound_batch(run_id, after_step=last, size=batch_size)
            yield from batch
            if len(batch) < batch_size:
                return
            last = batch[-1][0]

    def step_flag_counts(self, run_id: int) -> dict[str, int]:
        """How many of a run's steps carry each flag (``recovered``, ``device_missing``,
        ``reading_rejected``); flags no step carries are left out."""
        return self._backend.step_flag_counts(run_id)

    def pending_steps(self, run_id: int) -> int:
        """Steps whose boundaries are stored but whose energy is not: a run whose process
        died before attributing them (``greenprof repair`` attributes them)."""
        return self._backend.pending_steps(run_id)

    def epochs(self, run_id: int) -> list[EpochRecord]:
        """Per-epoch totals of a run."""
        return self._backend.epochs(run_id)

    def step_aggregate(self, run_id: int) -> StepAggregate:
        """Count, energy, samples and last step of a run's stored steps."""
        return self._backend.step_aggregate(run_id)

    def step_range(self, run_id: int) -> tuple[int, int] | None:
        """First and last stored step numbers."""
        return self._backend.step_range(run_id)

    def step_columns(self, run_id: int) -> StepColumns:
        """Every step's energy, samples and loss, in step order."""
        return self._backend.step_columns(run_id)

    def step_buckets(self, run_id: int, *, width: int, head: int) -> list[StepBucket]:
        """A long run's steps condensed into ranges of ``width`` step numbers."""
        return self._backend.step_buckets(run_id, width=width, head=head)

    # Samples ----------------------------------------------------------------------

    def samples(
        self, run_id: int, *, device: str | None = None, after_s: float | None = None
    ) -> list[SampleRecord]:
        """Raw sensor samples of a run in time order; ``after_s`` for increments."""
        return self._backend.samples(run_id, device=device, after_s=after_s)

    def last_sample_time_s(self, run_id: int, device: str | None = None) -> float | None:
        """Time of the newest sample of ``device`` (any device when None)."""
        return self._backend.last_sample_time_s(run_id, device)

    def latest_power_w(self, run_id: int, devices: Sequence[str]) -> dict[str, float]:
        """Newest power of each device."""
        return self._backend.latest_power_w(run_id, devices)

    def sample_timeline(self, run_id: int, *, width_s: float, points: int) -> list[TimelineCell]:
        """Samples bucketed by time per device."""
        return self._backend.sample_timeline(run_id, width_s=width_s, points=points)

    def step_timeline(self, run_id: int, *, width_s: float, points: int) -> list[TimelineCell]:
        """Per-device step energies bucketed by step start."""
        return self._backend.step_timeline(run_id, width_s=width_s, points=points)

    def utilization_by_kind(self, run_id: int) -> dict[str, float]:
        """Mean sample utilization per device kind."""
        return self._backend.utilization_by_kind(run_id)

    # Exports ----------------------------------------------------------------------

    def export_batches(
        self,
        table: ExportTable,
        run_id: int,
        *,
        started_at: float,
        co2_g_per_j: float | None,
        batch_rows: int = 5_000,
    ) -> Iterator[list[tuple[object, ...]]]:
        """One run's rows of a large CSV table in bounded batches."""
        return self._backend.export_batches(
            table, run_id, started_at=started_at, co2_g_per_j=co2_g_per_j, batch_rows=batch_rows
        )
