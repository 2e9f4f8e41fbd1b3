"""The read side of a run store, as a contract every backend implements.

:class:`~greenprof.store.reader.RunStore` (the public façade) delegates to one
:class:`ReadBackend`: :class:`~greenprof.store.sqlite_read.SqliteReadBackend` for a file,
``greenprof.store.postgres.reader.PostgresReadBackend`` for a server. The TUI, the
exporters and the CLI ask the store questions (listings, aggregates, digests, timelines,
export row streams) and get frozen values back, never cursors or SQL, so a second
backend changes no caller. ``tests/store/test_read_contract.py`` runs one set of tests
against every backend with data written by the real writer.

Construction: ``Backend(location, liveness=RunLiveness())`` where ``location`` is a
:class:`~greenprof.store.location.StoreLocation` of the backend's kind; it raises
:class:`~greenprof.errors.StoreError` (one line, no credentials) when the store cannot be
opened or is not a greenprof store. Every method raises ``StoreError`` (one line) for a
failure of the store itself and never a driver exception.

Shared semantics:

- Runs are ordered newest first: ``started_at`` descending, then ``run_id`` descending.
- A run's *status* is the displayed one: a stored ``running`` run that
  ``liveness`` (:class:`~greenprof.store.liveness.RunLiveness`) judges dead reads as
  ``interrupted``. Filters by status apply to the displayed status.
- Energies in J, times as documented per method (``start_s``/``end_s``/``time_s``:
  seconds since the run started; ``*_at``: Unix seconds).
- Unknown run ids give empty results (no exception), except :meth:`ReadBackend.run`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from greenprof.records import DeviceInfo, EpochRecord, RunInfo, RunStatus, SampleRecord, StepRecord
from greenprof.store.location import StoreLocation

ExportTable = Literal["steps", "step-devices", "samples"]

StepBoundRow = tuple[int, int, float, float, "float | None", "float | None", "float | None"]
"""(step, epoch, start_s, end_s, uncertainty_start_j, uncertainty_end_j,
uncertainty_interior_j): a stored step's bound parts (None: not known)."""
"""The large tables the CSV exporter streams (see :meth:`ReadBackend.export_batches`)."""


@dataclass(frozen=True, slots=True)
class StepAggregate:
    """Totals of the steps already stored for a run (``last_step`` -1 when none)."""

    steps: int
    energy_j: float
    samples: int
    last_step: int


@dataclass(frozen=True, slots=True)
class StepColumns:
    """A run's steps as parallel columns, in step order."""

    energy_j: tuple[float, ...]
    samples: tuple[int | None, ...]
    loss: tuple[float | None, ...]


@dataclass(frozen=True, slots=True)
class StepBucket:
    """A range of step numbers ``[first_step, end_step)`` of one run, condensed."""

    first_step: int
    end_step: int
    energy_j: float
    """Sum of the energies of the bucket's stored steps."""
    min_loss: float | None
    head_energy_j: tuple[float, ...]
    """Energies of the bucket's first stored steps (at most ``head`` of them), in order."""
    head_samples: tuple[int | None, ...]
    """Their samples, aligned with ``head_energy_j``."""


@dataclass(frozen=True, slots=True)
class TimelineCell:
    """One device in one time bucket of a run (see :meth:`ReadBackend.sample_timeline`)."""

    device: str
    bucket: int
    power_w: float | None
    energy_j: float | None


@dataclass(frozen=True, slots=True)
class DeviceEnergy:
    """A device's method and energy over its run."""

    device: str
    method: str
    energy_j: float


@dataclass(frozen=True, slots=True)
class MetricRun:
    """What the Prometheus collector exposes about one run (one cheap row per run)."""

    run_id: int
    name: str
    status: RunStatus
    """Displayed status (liveness applied)."""
    heartbeat_at: float
    """Unix time of the run's last write: unchanged means nothing of the run changed."""
    started_at: float
    ended_at: float | None
    host: str
    rank: int | None
    framework: str
    greenprof_version: str
    pue: float
    intensity_g_per_kwh: float | None
    steps: int
    samples: int | None
    energy_j: float
    step_energy_j: float
    duration_s: float


class ReadBackend(Protocol):
    """Every query the readers of a run store need. See the module docstring for the
    semantics all methods share."""

    location: StoreLocation

    def close(self) -> None:
        """Release the connection; idempotent."""

    # Runs -------------------------------------------------------------------------

    def runs(
        self,
        *,
        status: RunStatus | None = None,
        name: str | None = None,
        job: str | None = None,
        limit: int | None = None,
    ) -> list[RunInfo]:
        """Runs newest first, with their devices. ``name`` / ``job`` match exactly;
        ``status`` matches the displayed status; ``limit`` applies after every filter.
        Filters are evaluated in the database (at most the few stored-``running`` rows
        are checked in Python for liveness), so a frequent ``status="running"`` poll
        reads only the running rows."""
        ...

    def run(self, ref: int | str) -> RunInfo:
        """One run by id (an int, or a string of at most 18 ASCII digits), else by name
        (its newest run). Raises :class:`~greenprof.errors.RunNotFound` naming the store."""
        ...

    def stored_status(self, run_id: int) -> str | None:
        """The status as stored (no liveness rule), or None for an unknown run: what a
        launcher checks to see whether the run's own process ended it."""
        ...

    def devices(self, run_ids: Sequence[int]) -> dict[int, tuple[DeviceInfo, ...]]:
        """Each run's devices ordered by device name; runs without devices left out."""
        ...

    def device_energy_j(self, run_id: int) -> dict[str, float]:
        """Each device's energy over the whole run."""
        ...

    def device_energies(self, run_ids: Sequence[int]) -> dict[int, tuple[DeviceEnergy, ...]]:
        """Method and energy of each device of each run (ordered by device); runs without
        devices left out."""
        ...

    def metric_runs(self, run_ids: Collection[int] | None = None) -> list[MetricRun]:
        """Every run (or only ``run_ids``) ordered by ``run_id``, with displayed status."""
        ...

    # Steps ------------------------------------------------------------------------

    def step_batch(self, run_id: int, *, after_step: int, size: int) -> list[StepRecord]:
        """At most ``size`` steps numbered above ``after_step``, in step order, each with
        its per-device energies (``{}`` when none are stored)."""
        ...

    def step_bound_batch(self, run_id: int, *, after_step: int, size: int) -> list[StepBoundRow]:
        """At most ``size`` steps numbered above ``after_step``, in step order, as
        :data:`StepBoundRow` (what a window's error bound needs, without the rest)."""
        ...

    def step_flag_counts(self, run_id: int) -> dict[str, int]:
        """How many steps carry each flag of ``records.STEP_FLAG_NAMES``; zero counts
        left out."""
        ...

    def pending_steps(self, run_id: int) -> int:
        """Steps whose boundaries are stored but which have no step row (no energy)."""
        ...

    def epochs(self, run_id: int) -> list[EpochRecord]:
        """Per-epoch totals (count, first start, last end, samples, energy) by epoch."""
        ...

    def step_aggregate(self, run_id: int) -> StepAggregate:
        """Count, total energy, total samples (None as 0) and last step number."""
        ...

    def step_range(self, run_id: int) -> tuple[int, int] | None:
        """The first and last stored step numbers, or None without steps."""
        ...

    def step_columns(self, run_id: int) -> StepColumns:
        """Every step's energy, samples and loss, in step order."""
        ...

    def step_buckets(self, run_id: int, *, width: int, head: int) -> list[StepBucket]:
        """The run's step numbers from its first to its last step cut into consecutive
        ranges of ``width`` (the last one ends at last step + 1), each with its energy
        sum, minimum loss (None when no step has one) and its first ``head`` steps:
        what a comparison of long runs needs without reading every step."""
        ...

    # Samples ----------------------------------------------------------------------

    def samples(
        self, run_id: int, *, device: str | None = None, after_s: float | None = None
    ) -> list[SampleRecord]:
        """Raw sensor samples ordered by time, then device; ``after_s`` exclusive."""
        ...

    def last_sample_time_s(self, run_id: int, device: str | None = None) -> float | None:
        """Time of the newest sample of ``device`` (of any device when None), or None."""
        ...

    def latest_power_w(self, run_id: int, devices: Sequence[str]) -> dict[str, float]:
        """Newest power of each device: its newest sample's ``power_w``, else the energy
        rise between its two newest samples over their time apart; devices with neither
        left out."""
        ...

    def sample_timeline(self, run_id: int, *, width_s: float, points: int) -> list[TimelineCell]:
        """Samples in buckets ``min(floor(time_s / width_s), points - 1)`` per device:
        mean ``power_w`` (None when no sample has one) and maximum ``energy_j`` (the
        cumulative counter's level); ordered by bucket, then device."""
        ...

    def step_timeline(self, run_id: int, *, width_s: float, points: int) -> list[TimelineCell]:
        """Per-device step energies summed in buckets of the steps' ``start_s`` (as
        :meth:`sample_timeline`); ``power_w`` is None; ordered by bucket, then device."""
        ...

    def utilization_by_kind(self, run_id: int) -> dict[str, float]:
        """Mean ``utilization_pct`` of the run's samples per device kind (``gpu``, ``cpu``,
        ...), over the samples that report it."""
        ...

    # Exports ----------------------------------------------------------------------

    def export_batches(
        self,
        table: ExportTable,
        run_id: int,
        *,
        started_at: float,
        co2_g_per_j: float | None,
        batch_rows: int,
    ) -> Iterator[list[tuple[object, ...]]]:
        """One run's rows of a large CSV table, in lists of at most ``batch_rows``, in the
        order the CSV writes them (steps: by step; step-devices: by step, then device;
        samples: by time, then device). Columns, with ``ms(x)`` the Unix milliseconds of
        ``started_at + x`` as an int rounded half to even, ``co2(e)`` ``e * co2_g_per_j``,
        and nullable numbers given as ``''`` for NULL (so a row formats with ``%s``):

        - steps: step, epoch, start_s, end_s, end_s - start_s, ms(start_s), ms(end_s),
          samples, energy_j, co2(energy_j), interpolated (0/1), loss, energy_uncertainty_j
        - step-devices: step, epoch, device, method (None when the device is unknown),
          start_s, end_s, ms(start_s), device energy_j, co2(device energy_j), the device's
          energy_uncertainty_j
        - samples: device, time_s, ms(time_s), energy_j, power_w, utilization_pct,
          memory_used_bytes, temperature_c
        """
        ...
