"""The sensor contract: what every sensor offers, and the one adapter for those that offer less.

A :class:`Sensor` reads one device. Everything the sampler, the reading guard, the
apportioning wrappers and the profiler need from it is a required member, so none of
them probes a sensor with ``getattr``:

- ``device``: the device id, ``gpu:0``, ``cpu:0``, ``dram:0``.
- ``info``: a :class:`~greenprof.records.DeviceInfo` (kind, method, name, power limit,
  UUID, caveats), stored once per run and used as the guard's power ceiling.
- ``update_period_s``: how often the underlying counter or power value changes, when
  known (None: unknown or every read); the profiler keeps reading about one period after
  the last step so the last step's energy is seen.
- ``energy_wrap_j``: the value at which a raw energy counter wraps to 0, for a counter
  the sensor does not unwrap itself (None: it never wraps, or the sensor unwraps it).
- ``read()`` and ``close()``.

Sensors written before this contract (``device``, ``read()`` and ``close()`` only) still
work: :func:`as_sensor` wraps them once, at the boundary, with an ``info`` derived from
the device id. An optional capability is a protocol of its own (:class:`ShareableSensor`),
checked with ``isinstance``, never guessed from attribute names.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol, get_args, runtime_checkable

from greenprof.records import DeviceInfo, DeviceKind, Method, Reading

DEVICE_KINDS: dict[str, DeviceKind] = {"gpu": "gpu", "cpu": "cpu", "dram": "dram"}
"""Device id prefix → kind; any other prefix is ``other``."""

NODE_WIDE_KINDS = frozenset({"cpu", "dram"})
"""Kinds that measure the whole node (one local rank reads them)."""


def device_kind(device: str) -> DeviceKind:
    """The kind named by a device id's prefix: ``gpu:1`` → ``gpu``, ``fan:0`` → ``other``."""
    return DEVICE_KINDS.get(device.split(":", 1)[0], "other")


@runtime_checkable
class Sensor(Protocol):
    """Reads one device; see the module docstring for what each member means.

    Members are read-only properties here so that a plain attribute, a property and a
    frozen dataclass field all conform.
    """

    @property
    def device(self) -> str:
        """The device id, e.g. ``gpu:0``."""
        ...

    @property
    def info(self) -> DeviceInfo:
        """What is known about the device."""
        ...

    @property
    def update_period_s(self) -> float | None:
        """How often the sensor's value changes, when known."""
        ...

    @property
    def energy_wrap_j(self) -> float | None:
        """Where a raw energy counter wraps to 0, when the sensor does not unwrap it."""
        ...

    def read(self) -> Reading:
        """Poll the device now. May raise; the sampler counts the failure and goes on."""
        ...

    def close(self) -> None:
        """Release handles; further reads are not allowed. Idempotent."""
        ...


PowerSensor = Sensor
"""The name before the contract was explicit (kept: the profiler and users import it)."""


class ShareSource(Protocol):
    """Says which fraction of a shared device's energy belongs to this run, now."""

    @property
    def method(self) -> str:
        """How the share is estimated, e.g. ``CPU-time share``."""
        ...

    @property
    def note(self) -> str:
        """The caveat a reader must see while the share applies (empty: nothing to say)."""
        ...

    def share(self) -> float:
        """The current share, a fraction in [0, 1]. Never raises."""
        ...


@runtime_checkable
class ShareableSensor(Sensor, Protocol):
    """A sensor of a device other processes may use too (a GPU), that can say how much of
    it is this run's. :func:`greenprof.sensors.share.apportion` wraps it with its source."""

    def share_source(
        self, own_pids: Callable[[], Collection[int]] | None = None
    ) -> ShareSource | None:
        """This run's share of the device, or None when it cannot be told (a MIG slice)."""
        ...


@runtime_checkable
class _MinimalSensor(Protocol):
    """What a sensor written before the contract offers."""

    @property
    def device(self) -> str: ...

    def read(self) -> Reading: ...

    def close(self) -> None: ...


class DerivedSensor:
    """A sensor written before the contract (``device``, ``read()``, ``close()`` and
    perhaps some of the rest), made to conform by :func:`as_sensor`.

    What it declares is kept; what it lacks is derived: ``info`` from the device id (the
    kind from its prefix, node-wide for CPU and DRAM) and its ``name`` and ``method``
    attributes where it has them; the update period and the wrap are then unknown.
    """

    def __init__(
        self,
        inner: _MinimalSensor,
        *,
        info: DeviceInfo,
        update_period_s: float | None = None,
        energy_wrap_j: float | None = None,
    ) -> None:
        self.inner = inner
        self.device = inner.device
        self.info = info
        self.update_period_s = update_period_s
        self.energy_wrap_j = energy_wrap_j

    def read(self) -> Reading:
        """The inner sensor's reading."""
        return self.inner.read()

    def close(self) -> None:
        """Close the inner sensor."""
        self.inner.close()


def as_sensor(candidate: object) -> Sensor:
    """``candidate`` itself when it conforms to :class:`Sensor`, else wrapped in a
    :class:`DerivedSensor` when it has ``device``, ``read()`` and ``close()``.

    This is the one place an incomplete sensor is completed (and the one place its
    optional extras are probed): call it where sensors enter greenprof
    (``Profiler(sensors=...)``, the sampler). Raises TypeError for anything else.
    """
    if isinstance(candidate, Sensor) and isinstance(candidate.info, DeviceInfo):
        return candidate
    if not (isinstance(candidate, _MinimalSensor) and isinstance(candidate.device, str)):
        raise TypeError(
            f"{candidate!r} is not a sensor: a sensor has a `device` string, `read()` and"
            " `close()` (see greenprof.sensors.Sensor)"
        )
    info = getattr(candidate, "info", None)
    if not isinstance(info, DeviceInfo):
        info = _derived_info(candidate)
    return DerivedSensor(
        candidate,
        info=info,
        update_period_s=_positive(getattr(candidate, "update_period_s", None)),
        energy_wrap_j=_positive(getattr(candidate, "energy_wrap_j", None)),
    )


def _derived_info(sensor: _MinimalSensor) -> DeviceInfo:
    name = getattr(sensor, "name", None)
    method = getattr(sensor, "method", None)
    kind = device_kind(sensor.device)
    return DeviceInfo(
        device=sensor.device,
        kind=kind,
        method=_METHODS.get(method, "counter") if isinstance(method, str) else "counter",
        name=name if isinstance(name, str) else type(sensor).__name__,
        node_wide=kind in NODE_WIDE_KINDS,
    )


def _positive(value: object) -> float | None:
    """A declared period or wrap: a positive real number, else unknown."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


_METHODS: dict[str, Method] = {method: method for method in get_args(Method)}


def describe(sensor: object) -> DeviceInfo:
    """The sensor's :class:`DeviceInfo` (``as_sensor(sensor).info``; kept for callers that
    accept sensors from before the contract)."""
    return as_sensor(sensor).info


@dataclass(frozen=True, slots=True)
class GpuOpenResult:
    """What a GPU backend opened: one sensor per GPU this process uses (devices
    ``gpu:<CUDA index>``) and one note per decision (skipped GPUs, mapping caveats);
    detection prefixes the notes with ``gpu:`` and adds one line per opened GPU."""

    sensors: tuple[Sensor, ...]
    notes: tuple[str, ...] = ()


class GpuBackend(Protocol):
    """One vendor's GPUs (NVML for NVIDIA; AMD SMI would be another).

    Detection tries every backend in :data:`greenprof.sensors.detect.GPU_BACKENDS`, so a
    new vendor is one module with a backend and one entry there.
    """

    @property
    def name(self) -> str:
        """How notes name the backend, e.g. ``NVML``."""
        ...

    def open(self, env: Mapping[str, str], clock: Callable[[], float]) -> GpuOpenResult:
        """The GPUs this process sees (``env``: its environment, for
        ``CUDA_VISIBLE_DEVICES`` and the like). Raises :class:`~greenprof.errors.SensorError`
        when the backend cannot be used here (library or driver missing), saying why."""
        ...
