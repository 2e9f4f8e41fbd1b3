"""Frozen records that cross threads, modules and the database boundary.

Units are SI and named in the field: ``energy_j``, ``power_w``, ``time_s``,
``duration_s``, ``co2_g``. Times called ``time_s`` are ``time.monotonic()``
seconds (only meaningful within one process); ``start_s``/``end_s`` of a step
are seconds since the start of its run; ``started_at``/``ended_at`` are Unix
wall-clock seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from greenprof.units import J_PER_KWH

Method = Literal["counter", "power_integration", "model", "simulated"]
"""How a device's energy was obtained.

- ``counter``: a hardware cumulative energy counter (NVML total energy, RAPL).
- ``power_integration``: polled power integrated over time (trapezoid rule).
- ``model``: estimated from utilization and a nominal power (no sensor).
- ``simulated``: a fake or replayed sensor (demos and tests); not a measurement.
"""

RunStatus = Literal["running", "completed", "failed", "interrupted", "incomplete"]
"""``incomplete``: the training ended normally but not every step it reported could be
stored (the run's ``error`` says how many and why)."""

STEP_RECOVERED = 1
"""Step flag: attributed after the process died, from the stored readings (linear
interpolation of each device's cumulative energy), not by the live attribution."""
STEP_DEVICE_MISSING = 2
"""Step flag: a device gave no readings for this step; its energy is not included."""
STEP_READING_REJECTED = 4
"""Step flag: a sensor reading near this step was rejected as invalid (NaN, negative,
backwards, a glitch); the step's energy leans on the neighbouring readings."""
STEP_COUNTER_RESET = 8
"""Step flag: a device's energy counter was reset during the step (it went backwards: a
driver reload); the energy between its last update and the reset is estimated from the
rate before (see the step's uncertainty)."""
STEP_POLL_GAP = 16
"""Step flag: a device went unread for a long gap (more than two poll intervals: the
training process or the sampling helper could not poll) during or around the step; its
energy is interpolated over that gap (its uncertainty is wider)."""
STEP_FLAG_NAMES = {
    STEP_RECOVERED: "recovered",
    STEP_DEVICE_MISSING: "device_missing",
    STEP_READING_REJECTED: "reading_rejected",
    STEP_COUNTER_RESET: "counter_reset",
    STEP_POLL_GAP: "poll_gap",
}


def step_flag_names(flags: int) -> tuple[str, ...]:
    """The names of the bits set in a step's ``flags``."""
    return tuple(name for bit, name in STEP_FLAG_NAMES.items() if flags & bit)


DeviceKind = Literal["gpu", "cpu", "dram", "other"]

DEVICE_KINDS: dict[str, DeviceKind] = {"gpu": "gpu", "cpu": "cpu", "dram": "dram"}
"""Device-name prefixes greenprof knows; any other prefix is kind ``other``."""


def device_kind(device: str) -> DeviceKind:
    """The kind of a device from its name: ``gpu:0`` → ``gpu``, ``npu:1`` → ``other``.

    The one parser of device names (sensors, the terminal UI and exporters use it), next
    to the type it returns, so no caller needs a cast or a ``type: ignore``.

    Example::

        device_kind("dram:0")  # 'dram'
    """
    return DEVICE_KINDS.get(device.split(":", 1)[0], "other")


@dataclass(frozen=True, slots=True)
class Reading:
    """One poll of one device.

    ``energy_j`` is a cumulative counter from an arbitrary origin (None when the
    device has no counter); ``power_w`` the instantaneous power (None when not
    available). At least one of the two is set.
    """

    device: str
    time_s: float
    energy_j: float | None
    power_w: float | None
    utilization_pct: float | None = None
    memory_used_bytes: int | None = None
    temperature_c: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What is known about one measured device; stored once per run."""

    device: str
    """Stable id within a host: ``gpu:0``, ``cpu:0``, ``dram:0``."""
    kind: DeviceKind
    method: Method
    name: str = ""
    """Human name: the GPU model, the CPU model, ``RAPL package-0``."""
    uuid: str | None = None
    power_limit_w: float | None = None
    idle_power_w: float | None = None
    node_wide: bool = False
    """True for sensors that measure the whole node (CPU, DRAM): one rank per node reads them."""
    note: str = ""
    """Caveats a reader must see, e.g. "MIG slice: whole parent GPU measured"."""
    power_window_s: float | None = None
    """What each power reading averages over (None: instantaneous, or not known). NVML's
    ``nvmlDeviceGetPowerUsage`` is a 1 s moving average on recent GPUs: the attribution
    then reconstructs the energy curve from it instead of taking it as instantaneous."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """Bounds (J) on the error of one step's energy, each meant to hold >= 95 % of the time:
    at its start, at its end, and inside it (see :mod:`greenprof.energy.uncertainty`).

    Apart because a sum over contiguous steps cancels the boundaries they share
    (:func:`greenprof.energy.window_uncertainty_j`)."""

    start_j: float
    end_j: float
    interior_j: float

    @property
    def total_j(self) -> float:
        """The step's bound: boundaries linearly, the interior on top."""
        return self.start_j + self.end_j + self.interior_j


@dataclass(frozen=True, slots=True)
class StepRecord:
    """Energy of one training step, as stored and as read back."""

    run_id: int
    step: int
    epoch: int
    start_s: float
    end_s: float
    samples: int | None
    energy_j: float
    """All devices together."""
    device_energy_j: dict[str, float] = field(default_factory=dict)
    interpolated: bool = False
    """True when the step is shorter than a sensor's update period: its energy is
    interpolated from the neighbouring counter updates (sums over windows stay exact)."""
    loss: float | None = None
    flags: int = 0
    """``STEP_*`` bits (see :func:`step_flag_names`): recovered after a crash, a device
    missing, a rejected reading nearby, a counter reset."""
    bounds: Bounds | None = None
    """Bounds on the error of ``energy_j`` (devices summed); None when not known (a step
    recovered after a crash, a run recorded before greenprof stated them)."""
    device_uncertainty_j: dict[str, float] = field(default_factory=dict)
    """Each device's bound on its share of ``energy_j`` (keys of ``device_energy_j``)."""

    @property
    def energy_uncertainty_j(self) -> float | None:
        """Bound on ``|energy_j - true energy|``, meant to hold >= 95 % of the time."""
        return None if self.bounds is None else self.bounds.total_j

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class CarbonSettings:
    """Grid intensity, PUE and where the intensity came from; stored with the run."""

    intensity_g_per_kwh: float
    pue: float = 1.0
    source: str = ""
    """Dataset and year, e.g. "CodeCarbon global_energy_mix (Our World in Data), 2023"."""
    country: str | None = None
    region: str | None = None

    def co2_g(self, energy_j: float) -> float:
        """Emissions for IT energy ``energy_j``: facility energy (× PUE) × intensity."""
        return energy_j / J_PER_KWH * self.pue * self.intensity_g_per_kwh


TagValue: TypeAlias = "str | int | float | bool"
"""A run tag's value as stored (JSON) and read back: a number or a flag keeps its type, so
``batch_size=64`` compares and sorts as a number."""


def tag_text(value: TagValue) -> str:
    """A tag value as text, the way it was written in JSON (``true``, ``64``, ``0.001``):
    for labels, filters given on a command line, and tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One profiled run, with its running totals."""

    run_id: int
    name: str
    status: RunStatus
    started_at: float
    ended_at: float | None
    host: str
    pid: int
    rank: int | None
    framework: str
    tags: dict[str, TagValue]
    devices: tuple[DeviceInfo, ...]
    carbon: CarbonSettings | None
    steps: int
    samples: int | None
    energy_j: float
    """Total IT energy of all devices over the run (not only inside steps)."""
    step_energy_j: float
    """Sum of the step energies."""
    duration_s: float
    expected_steps: int | None = None
    error: str | None = None
    greenprof_version: str = ""
    lost_steps: int = 0
    """Steps the run accepted but could not store (see ``status`` ``incomplete``)."""
    job_id: str | None = None
    """The job this run is one rank of (see :mod:`greenprof.jobs`); None for a lone run."""
    local_rank: int | None = None
    world_size: int | None = None
    setup_s: float = 0.0
    """Time from the start of the run to its first step (imports, data, compilation)."""
    setup_energy_j: float = 0.0
    """Energy of all devices during that setup."""

    @property
    def co2_g(self) -> float | None:
        return None if self.carbon is None else self.carbon.co2_g(self.energy_j)

    @property
    def energy_kwh(self) -> float:
        return self.energy_j / J_PER_KWH

    def _repr_html_(self) -> str:
        """The run as a card in Jupyter (see :func:`greenprof.notebook.run_html`)."""
        from greenprof.notebook import run_html  # only in a notebook: keeps records light

        return run_html(self)


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """One stored sensor reading of a run, as read back."""

    run_id: int
    device: str
    time_s: float
    """Seconds since the run started."""
    energy_j: float | None
    """Cumulative energy of this device since the run started."""
    power_w: float | None
    utilization_pct: float | None = None
    memory_used_bytes: int | None = None
    temperature_c: float | None = None


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """Totals of one epoch of a run (derived from its steps)."""

    run_id: int
    epoch: int
    steps: int
    start_s: float
    end_s: float
    samples: int | None
    energy_j: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s
