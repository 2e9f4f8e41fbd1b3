"""What the writer queues and what a sink stores: backend-independent row shapes.

The writer (``writer.py``) accepts rows from any thread, keeps them in a :class:`Batch`,
and at each flush hands a :class:`PreparedBatch` (cleaned, run id attached, every value
bindable) to a sink (``sink.py``) that stores it in one transaction. Nothing here does I/O.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from greenprof.records import CarbonSettings, DeviceInfo, TagValue
from greenprof.values import as_number

StepRow = tuple[Any, ...]
"""(step, epoch, start_s, end_s, samples, energy_j, interpolated, loss[, flags[, start_j,
end_j, interior_j]]); ``loss`` may be any number-like object (a 0-d tensor is converted here,
on the writer thread). The last three are the step's error bounds
(:class:`greenprof.records.Bounds`); absent or None: not known (stored NULL)."""
StepEnergyRow = tuple[Any, ...]
"""(step, device, energy_j[, energy_uncertainty_j]): the device's share and its bound (absent
or None: not known)."""
PendingStepRow = tuple[Any, ...]
"""(step, epoch, start_s, end_s, samples, loss): a step whose energy is not known yet."""
SampleRow = tuple[
    str, float, "float | None", "float | None", "float | None", "int | None", "float | None"
]
"""(device, time_s, energy_j, power_w, utilization_pct, memory_used_bytes, temperature_c)"""

STEP_COLUMNS = (
    "run_id", "step", "epoch", "start_s", "end_s", "samples", "energy_j", "interpolated", "loss",
    "flags", "energy_uncertainty_j", "uncertainty_start_j", "uncertainty_end_j",
    "uncertainty_interior_j",
)  # fmt: skip
STEP_ENERGY_COLUMNS = ("run_id", "step", "device", "energy_j", "energy_uncertainty_j")
PENDING_COLUMNS = ("run_id", "step", "epoch", "start_s", "end_s", "samples", "loss")
SAMPLE_COLUMNS = (
    "run_id", "device", "time_s", "energy_j", "power_w", "utilization_pct", "memory_used_bytes",
    "temperature_c",
)  # fmt: skip
RUN_COLUMNS = (
    "name", "status", "started_at", "heartbeat_at", "host", "pid", "rank", "world_size",
    "framework", "tags", "interval_s", "expected_steps", "country", "region", "pue",
    "intensity_g_per_kwh", "intensity_source", "greenprof_version", "job_id", "local_rank", "uid",
)  # fmt: skip
"""The columns a new run is inserted with (:func:`run_row` gives the values)."""
DEVICE_COLUMNS = (
    "run_id", "device", "kind", "method", "name", "uuid", "power_limit_w", "idle_power_w",
    "node_wide", "note", "power_window_s",
)  # fmt: skip

MAX_ERROR_CHARS = 4000
"""A run's ``error`` keeps at most this much: the first problems, which explain the rest."""


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything known about a run when it starts."""

    name: str
    started_at: float
    interval_s: float
    devices: Sequence[DeviceInfo] = ()
    carbon: CarbonSettings | None = None
    framework: str = ""
    tags: dict[str, TagValue] = field(default_factory=dict)
    rank: int | None = None
    world_size: int | None = None
    expected_steps: int | None = None
    job_id: str | None = None
    local_rank: int | None = None
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    greenprof_version: str = ""


@dataclass(frozen=True, slots=True)
class RunTotals:
    """Running totals of a run, written with each flush."""

    steps: int
    samples: int | None
    energy_j: float
    step_energy_j: float
    duration_s: float
    device_energy_j: dict[str, float]
    setup_s: float = 0.0
    setup_energy_j: float = 0.0


@dataclass(frozen=True, slots=True)
class WriterHealth:
    """What the writer could not do so far (a snapshot, safe to read from any thread)."""

    lost_steps: int
    """Steps accepted but never stored (backlog overflow, unstorable values)."""
    thinned_samples: int
    """Samples dropped to bound the backlog during an outage."""
    pending_rows: int
    """Rows queued and not yet committed."""
    failing_since_s: float | None
    """Monotonic time of the first failed commit of the current outage (None: writing)."""
    last_error: str | None


UpdateKind = Literal[
    "idle_power_w", "device_note", "rejected_readings", "rename", "framework", "error"
]


@dataclass(frozen=True, slots=True)
class Update:
    """A change to the run or one of its devices, stored in order with the next flush.

    ``args``: idle_power_w/device_note/rejected_readings: (device, value); rename: (name,
    tags as JSON); framework: (framework,); error: (message,) appended to the run's error."""

    kind: UpdateKind
    args: tuple[Any, ...]


@dataclass
class Batch:
    """Rows queued since the last flush (owned by the writer, swapped under its lock)."""

    steps: list[StepRow] = field(default_factory=list)
    step_energy: list[StepEnergyRow] = field(default_factory=list)
    samples: list[SampleRow] = field(default_factory=list)
    closed: list[PendingStepRow] = field(default_factory=list)
    totals: RunTotals | None = None
    updates: list[Update] = field(default_factory=list)

    def rows(self) -> int:
        return len(self.steps) + len(self.step_energy) + len(self.samples) + len(self.closed)

    def put_back(self, older: Batch) -> None:
        """Requeue ``older`` (a batch that failed) ahead of what arrived meanwhile."""
        self.steps[:0] = older.steps
        self.step_energy[:0] = older.step_energy
        self.samples[:0] = older.samples
        self.closed[:0] = older.closed
        self.updates[:0] = older.updates
        if self.totals is None:
            self.totals = older.totals


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """One flush, ready to store in one transaction: every row starts with the run id and
    binds as is (columns: ``STEP_COLUMNS``, ``STEP_ENERGY_COLUMNS``, ``PENDING_COLUMNS``,
    ``SAMPLE_COLUMNS``)."""

    steps: list[tuple[Any, ...]]
    step_energy: list[tuple[Any, ...]]
    pending: list[tuple[Any, ...]]
    delete_pending_through: int | None
    """Pending rows up to this step are obsolete (their steps are stored)."""
    samples: list[tuple[Any, ...]]
    updates: Sequence[Update]
    totals: RunTotals | None
    """None, or finite totals to write."""
    heartbeat_at: float
    lost_steps: int


def prepare(
    run_id: int, batch: Batch, *, stored_through: int, heartbeat_at: float, lost_steps: int
) -> tuple[PreparedBatch, int, int]:
    """The batch as stored rows; also the count of step rows dropped as unstorable (not a
    finite energy) and the highest step stored after it."""
    steps = clean_steps(run_id, batch.steps)
    bad = len(batch.steps) - len(steps)
    through = max((row[1] for row in steps), default=stored_through)
    prepared = PreparedBatch(
        steps=steps,
        step_energy=clean_step_energy(run_id, batch.step_energy),
        pending=[(run_id, *row[:5], loss(row[5])) for row in batch.closed if row[0] > through],
        delete_pending_through=through if through > stored_through else None,
        samples=[(run_id, *row) for row in batch.samples],
        updates=list(batch.updates),
        totals=batch.totals if batch.totals is not None and finite_totals(batch.totals) else None,
        heartbeat_at=heartbeat_at,
        lost_steps=lost_steps + bad,
    )
    return prepared, bad, through


def clean_steps(run_id: int, rows: Sequence[StepRow]) -> list[tuple[Any, ...]]:
    """Step rows ready to bind: loss made a float (or NULL), flags defaulted; a row whose
    energy is not a finite number is dropped (the caller counts it as lost).

    One pass, on the writer thread, at every flush: it was the writer's largest cost
    (10 µs a row under load, more than SQLite's insert), so the common row (float energy,
    float or no loss, three float bound parts) takes a path of type checks only; anything
    else goes through the general conversions."""
    cleaned: list[tuple[Any, ...]] = []
    append = cleaned.append
    for row in rows:
        energy = row[5]
        if type(energy) is not float and not isinstance(energy, (int, float)):
            continue
        if energy - energy != 0:
            continue
        value = row[7]
        if value is not None and (type(value) is not float or value - value != 0):
            value = loss(value) if type(value) is not float else None
        size = len(row)
        if size < 12:
            append(
                (run_id, row[0], row[1], row[2], row[3], row[4], energy, row[6], value,
                 int(row[8]) if size > 8 else 0, None, None, None, None)
            )  # fmt: skip
            continue
        flags = row[8]
        if type(flags) is not int:
            flags = int(flags)
        start_j, end_j, interior_j = row[9], row[10], row[11]
        if type(start_j) is float and type(end_j) is float and type(interior_j) is float:
            total_j = start_j + end_j + interior_j
            if total_j - total_j == 0:  # all three finite
                append(
                    (run_id, row[0], row[1], row[2], row[3], row[4], energy, row[6], value,
                     flags, total_j, start_j, end_j, interior_j)
                )  # fmt: skip
                continue
        append(
            (run_id, row[0], row[1], row[2], row[3], row[4], energy, row[6], value, flags,
             *bound_values((start_j, end_j, interior_j)))
        )  # fmt: skip
    return cleaned


def clean_step_energy(run_id: int, rows: Sequence[StepEnergyRow]) -> list[tuple[Any, ...]]:
    """Step-device rows ready to bind: a row whose energy is not finite is dropped (its
    step's own row carries the loss); a bound that is not a finite number is NULL."""
    cleaned: list[tuple[Any, ...]] = []
    append = cleaned.append
    for row in rows:
        energy = row[2]
        if energy - energy != 0:
            continue
        bound = row[3] if len(row) > 3 else None
        if bound is not None and (type(bound) is not float or bound - bound != 0):
            bound = finite_or_none(bound)
        append((run_id, row[0], row[1], energy, bound))
    return cleaned


NO_BOUND_VALUES: tuple[None, None, None, None] = (None, None, None, None)


def bound_values(parts: Sequence[Any]) -> tuple[float | None, ...]:
    """``(energy_uncertainty_j, start_j, end_j, interior_j)`` from a row's bound parts: all
    NULL unless the three are finite numbers (a bound that is not known is not a zero)."""
    if len(parts) < 3 or any(finite_or_none(p) is None for p in parts):
        return NO_BOUND_VALUES
    start, end, interior = (float(p) for p in parts)
    return (start + end + interior, start, end, interior)


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None (stored NULL)."""
    if not isinstance(value, (int, float)) or value - value != 0:
        return None
    return float(value)


def loss(value: object) -> float | None:
    try:
        return as_number(value, "loss")
    except (TypeError, ValueError):
        return None


def finite_totals(totals: RunTotals) -> bool:
    values = (totals.energy_j, totals.step_energy_j, totals.duration_s, totals.setup_energy_j)
    return all(v - v == 0 for v in values) and all(
        e - e == 0 for e in totals.device_energy_j.values()
    )


def tags_json(tags: Mapping[str, object]) -> str:
    """Tags as the stored JSON object: strings, integers, finite numbers and booleans keep
    their type; anything else (NaN, infinities, other objects) is stored as its text, so
    the column stays JSON that SQLite's and PostgreSQL's JSON functions accept."""
    return json.dumps({str(k): _json_scalar(v) for k, v in tags.items()}, sort_keys=True)


def _json_scalar(value: object) -> object:
    if isinstance(value, (str, int)):  # bool is an int
        return value
    if isinstance(value, float) and value - value == 0:
        return value
    return str(value)


def run_row(spec: RunSpec, uid: str, tags_json: str) -> tuple[object, ...]:
    """The values of ``RUN_COLUMNS`` for a new run."""
    carbon = spec.carbon
    return (
        spec.name,
        "running",
        spec.started_at,
        spec.started_at,
        spec.host,
        spec.pid,
        spec.rank,
        spec.world_size,
        spec.framework,
        tags_json,
        spec.interval_s,
        spec.expected_steps,
        carbon.country if carbon else None,
        carbon.region if carbon else None,
        carbon.pue if carbon else 1.0,
        carbon.intensity_g_per_kwh if carbon else None,
        carbon.source if carbon else None,
        spec.greenprof_version,
        spec.job_id,
        spec.local_rank,
        uid,
    )


def device_row(run_id: int, info: DeviceInfo) -> tuple[object, ...]:
    return (
        run_id,
        info.device,
        info.kind,
        info.method,
        info.name,
        info.uuid,
        info.power_limit_w,
        info.idle_power_w,
        int(info.node_wide),
        info.note,
        info.power_window_s,
    )


DEVICE_UPDATES = frozenset({"idle_power_w", "device_note", "rejected_readings"})


def update_params(update: Update, run_id: int) -> tuple[object, ...]:
    """The parameters of an update's statement, in the order both sinks' SQL takes them:
    devices (value, run_id, device); error (message, MAX_ERROR_CHARS, run_id); the other
    run updates (*args, run_id)."""
    if update.kind in DEVICE_UPDATES:
        device, value = update.args
        return (value, run_id, device)
    if update.kind == "error":
        return (update.args[0], MAX_ERROR_CHARS, run_id)
    return (*update.args, run_id)
