"""NVIDIA GPUs through NVML: the total-energy counter, else polled power (integrated downstream).

Facts used here (sources in ``ref/measurement.md`` §1):

- ``nvmlDeviceGetTotalEnergyConsumption``: mJ since the driver was last loaded,
  Volta and newer; older GPUs raise ``NOT_SUPPORTED`` even where power works. It
  refreshes about every 100 ms. A decrease means the driver reloaded: the sensor
  returns the raw counter and ``greenprof.energy`` treats a decrease as a reset.
- ``NVML_FI_DEV_POWER_INSTANT`` (field 186, R535+): current power, all
  architectures. ``nvmlDeviceGetPowerUsage`` (mW) is a 1 s average on Ampere and
  newer except A100, instantaneous before.

The parts: :mod:`~greenprof.sensors.nvml_api` (the typed NVML calls),
:mod:`~greenprof.sensors.nvml_devices` (CUDA devices → physical GPUs by UUID),
:mod:`~greenprof.sensors.nvml_share` (a GPU shared with other processes), and here the
sensor, opening the process's GPUs, and :data:`NVML_BACKEND` for detection.

``pynvml`` (the ``nvidia-ml-py`` distribution) is imported only when a sensor is
opened, never when this module is imported.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from greenprof.errors import SensorError
from greenprof.records import DeviceInfo, Method, Reading
from greenprof.sensors.base import GpuOpenResult, ShareableSensor
from greenprof.sensors.nvml_api import (
    NVML_FI_DEV_POWER_INSTANT,
    NVML_TEMPERATURE_GPU,
    NvmlApi,
    NvmlHandle,
    field_value,
    init_failure,
    is_unsupported,
    load_pynvml,
    text,
)
from greenprof.sensors.nvml_devices import GpuMapping, VisibleGpu, visible_gpus
from greenprof.sensors.nvml_share import DEFAULT_SHARE_PERIOD_S, GpuProcessShare
from greenprof.sensors.recipe import SensorRecipe

NvmlModule = NvmlApi
"""The name before the NVML API was typed (kept for callers)."""

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# The energy counter and instant power refresh about every 100 ms (ML.ENERGY blog; Zeus docs).
NVML_UPDATE_PERIOD_S = 0.1
NVML_POWER_USAGE_WINDOW_S = 1.0
"""``nvmlDeviceGetPowerUsage`` averages over about 1 s on recent GPUs: declared (as
``DeviceInfo.power_window_s``) when that power is all there is, so the attribution
reconstructs the energy curve from the averages (with the counter, power only splits
jumps and is not declared)."""
# nvmlDeviceGetUtilizationRates samples over 1/6 s to 1 s (nvml.h): reading it faster adds nothing.
DEFAULT_DETAILS_PERIOD_S = 1.0

__all__ = [
    "DEFAULT_DETAILS_PERIOD_S",
    "DEFAULT_SHARE_PERIOD_S",
    "NVML_BACKEND",
    "NVML_UPDATE_PERIOD_S",
    "GpuMapping",
    "GpuProcessShare",
    "NvmlBackend",
    "NvmlModule",
    "NvmlOpenResult",
    "NvmlSensor",
    "NvmlSession",
    "VisibleGpu",
    "load_pynvml",
    "open_nvml",
    "open_nvml_sensors",
    "visible_gpus",
]


class NvmlSession:
    """One ``nvmlInit``; ``nvmlShutdown`` when the last holder releases it."""

    def __init__(self, pynvml: NvmlApi) -> None:
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise SensorError(init_failure(exc)) from exc
        self.pynvml = pynvml
        self._refs = 1
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Add a holder (each open sensor holds the session)."""
        with self._lock:
            if self._refs <= 0:
                raise SensorError("NVML session already shut down")
            self._refs += 1

    def release(self) -> None:
        """Drop a holder; the last one shuts NVML down."""
        with self._lock:
            self._refs -= 1
            if self._refs != 0:
                return
        try:
            self.pynvml.nvmlShutdown()
        except self.pynvml.NVMLError as exc:
            logger.debug("nvmlShutdown failed: %s", exc)


class NvmlSensor:
    """One physical NVIDIA GPU: its energy counter in J, else its power in W.

    With the counter (Volta+), ``method`` is ``counter`` and a read makes 2 NVML
    calls: the counter and power (field 186 or ``nvmlDeviceGetPowerUsage``,
    whichever the probe found working; power is omitted if neither works).
    Without it, ``method`` is ``power_integration``, ``energy_j`` is None and a
    read makes 1 call. Utilization, memory used and temperature add 3 calls at
    most once per ``details_period_s`` (None: never); between refreshes the last
    values are repeated. A detail that raises ``NOT_SUPPORTED`` (e.g. utilization
    under MIG) is never called again.

    The counter is returned raw (J since the driver loaded); a decrease means the
    driver reloaded, which the consumer (``greenprof.energy``) treats as a reset.
    """

    def __init__(
        self,
        pynvml: NvmlApi,
        handle: NvmlHandle,
        *,
        device: str = "gpu:0",
        uuid: str | None = None,
        note: str = "",
        clock: Callable[[], float] = time.monotonic,
        details_period_s: float | None = DEFAULT_DETAILS_PERIOD_S,
        session: NvmlSession | None = None,
        mig_id: str | None = None,
    ) -> None:
        self.device = device
        self.mig_id = mig_id
        self.update_period_s: float | None = NVML_UPDATE_PERIOD_S
        self.energy_wrap_j: float | None = None
        """None: the 64-bit mJ counter does not wrap; a decrease is a driver reload."""
        self._nvml = pynvml
        self._handle = handle
        self._clock = clock
        self._details_period_s = details_period_s
        self._note = note
        try:
            name = text(pynvml.nvmlDeviceGetName(handle))
            uuid = uuid or text(pynvml.nvmlDeviceGetUUID(handle))
            self._has_counter = self._probe(pynvml.nvmlDeviceGetTotalEnergyConsumption)
            self._power_source = self._probe_power()
        except pynvml.NVMLError as exc:
            raise SensorError(f"{device}: NVML probe failed: {exc}") from exc
        if not self._has_counter and self._power_source is None:
            raise SensorError(
                f"{device} ({name}): NVML reports neither an energy counter nor power"
                " (NOT_SUPPORTED, e.g. Jetson); it cannot be measured"
            )
        method: Method = "counter" if self._has_counter else "power_integration"
        notes = [note] if note else []
        if not self._has_counter:
            notes.append(
                f"no NVML energy counter (needs Volta or newer): power from {self._power_source}"
                " polled and integrated"
            )
        self.info = DeviceInfo(
            device=device,
            kind="gpu",
            method=method,
            name=name,
            uuid=uuid,
            power_limit_w=self._power_limit_w(),
            node_wide=False,
            note="; ".join(notes),
            power_window_s=(
                NVML_POWER_USAGE_WINDOW_S
                if not self._has_counter and self._power_source == "nvmlDeviceGetPowerUsage"
                else None
            ),
        )
        self._disabled: set[str] = set()
        self._details_at_s: float | None = None
        self._details: tuple[float | None, int | None, float | None] = (None, None, None)
        self._session = session
        if session is not None:
            session.acquire()
        self._closed = False

    def recipe(self) -> SensorRecipe | None:
        """How the sampler's helper process opens this GPU again
        (:func:`greenprof.sensors.detect.reopen_nvml`: by UUID, with its own NVML session);
        None when it cannot: opened with a stand-in NVML or clock, or no UUID."""
        if sys.modules.get("pynvml") is not self._nvml or self._clock is not time.monotonic:
            return None
        uuid = self.info.uuid
        if not uuid:
            return None
        return SensorRecipe.of(
            self.device,
            "greenprof.sensors.detect:reopen_nvml",
            self.device,
            uuid,
            note=self._note,
            details_period_s=self._details_period_s,
            mig_id=self.mig_id,
        )

    def _probe(self, call: Callable[[NvmlHandle], object]) -> bool:
        try:
            call(self._handle)
        except self._nvml.NVMLError as exc:
            if is_unsupported(exc):
                return False
            raise
        return True

    def _probe_power(self) -> str | None:
        """Which power source works: the instant field, GetPowerUsage, or none."""
        try:
            if self._read_power_field() is not None:
                return "NVML_FI_DEV_POWER_INSTANT"
        except self._nvml.NVMLError as exc:
            if not is_unsupported(exc):
                raise
        if self._probe(self._nvml.nvmlDeviceGetPowerUsage):
            return "nvmlDeviceGetPowerUsage"
        return None

    def _power_limit_w(self) -> float | None:
        try:
            return float(self._nvml.nvmlDeviceGetEnforcedPowerLimit(self._handle)) / 1000.0
        except self._nvml.NVMLError:
            return None

    def _read_power_field(self) -> float | None:
        fields = self._nvml.nvmlDeviceGetFieldValues(self._handle, [NVML_FI_DEV_POWER_INSTANT])
        milliwatts = field_value(fields[0])
        return None if milliwatts is None else milliwatts / 1000.0

    def _read_power_w(self) -> float | None:
        if self._power_source == "NVML_FI_DEV_POWER_INSTANT":
            return self._read_power_field()
        if self._power_source == "nvmlDeviceGetPowerUsage":
            return float(self._nvml.nvmlDeviceGetPowerUsage(self._handle)) / 1000.0
        return None

    def _optional(self, key: str, call: Callable[[], _T]) -> _T | None:
        if key in self._disabled:
            return None
        try:
            return call()
        except self._nvml.NVMLError as exc:
            if is_unsupported(exc):
                self._disabled.add(key)
            return None

    def _read_details(self, now_s: float) -> tuple[float | None, int | None, float | None]:
        period = self._details_period_s
        if period is None:
            return self._details
        if self._details_at_s is not None and now_s - self._details_at_s < period:
            return self._details
        nvml, handle = self._nvml, self._handle
        util = self._optional("util", lambda: float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
        memory = self._optional("memory", lambda: int(nvml.nvmlDeviceGetMemoryInfo(handle).used))
        temp = self._optional(
            "temperature",
            lambda: float(nvml.nvmlDeviceGetTemperature(handle, NVML_TEMPERATURE_GPU)),
        )
        self._details_at_s = now_s
        self._details = (util, memory, temp)
        return self._details

    def read(self) -> Reading:
        """Poll the GPU: raw counter in J (or None) and power in W; SensorError on failure."""
        if self._closed:
            raise SensorError(f"sensor {self.device} is closed")
        now = self._clock()
        nvml = self._nvml
        energy_j: float | None = None
        power_w: float | None
        try:
            if self._has_counter:
                energy_j = nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1000.0
                power_w = self._optional("power", self._read_power_w)
            else:
                power_w = self._read_power_w()
        except nvml.NVMLError as exc:
            raise SensorError(f"{self.device}: NVML read failed: {exc}") from exc
        if energy_j is None and power_w is None:
            raise SensorError(f"{self.device}: NVML returned no power value")
        util, memory, temp = self._read_details(now)
        return Reading(
            device=self.device,
            time_s=now,
            energy_j=energy_j,
            power_w=power_w,
            utilization_pct=util,
            memory_used_bytes=memory,
            temperature_c=temp,
        )

    def share_source(
        self,
        own_pids: Callable[[], Collection[int]] | None = None,
        *,
        period_s: float = DEFAULT_SHARE_PERIOD_S,
    ) -> GpuProcessShare | None:
        """This GPU's share for :class:`~greenprof.sensors.share.ApportionedSensor`, or None
        for a MIG slice (NVML lists no per-slice utilization, and slices differ in size:
        the whole-GPU caveat stays instead).

        ``own_pids``: this run's process ids (default: this process, its descendants and
        its job's other local ranks, see :class:`~greenprof.sensors.share.RunProcesses`).
        """
        if self.mig_id is not None:
            return None
        return GpuProcessShare(
            self._nvml, self._handle, own_pids=own_pids, clock=self._clock, period_s=period_s
        )

    def close(self) -> None:
        """Stop reading; the last open sensor of a session shuts NVML down. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._session is not None:
            self._session.release()


@dataclass(frozen=True, slots=True)
class NvmlOpenResult:
    """The opened GPU sensors and one note per decision (skipped GPUs, mapping caveats)."""

    sensors: tuple[NvmlSensor, ...]
    notes: tuple[str, ...] = ()


def open_nvml(
    pynvml_module: NvmlApi | None = None,
    env: Mapping[str, str] = os.environ,
    clock: Callable[[], float] = time.monotonic,
    *,
    details_period_s: float | None = DEFAULT_DETAILS_PERIOD_S,
) -> NvmlOpenResult:
    """Initialize NVML, map the process's GPUs by UUID and probe each once.

    Raises :class:`SensorError` when NVML is missing or fails; a GPU that cannot
    be measured is skipped with a note. NVML is shut down when the last returned
    sensor is closed (at once when none is returned).
    """
    pynvml = load_pynvml() if pynvml_module is None else pynvml_module
    session = NvmlSession(pynvml)
    sensors: list[NvmlSensor] = []
    notes: list[str] = []
    try:
        mapping = visible_gpus(
            pynvml, env.get("CUDA_VISIBLE_DEVICES"), env.get("CUDA_DEVICE_ORDER")
        )
        notes.extend(mapping.notes)
        for gpu in mapping.gpus:
            try:
                sensor = NvmlSensor(
                    pynvml,
                    gpu.handle,
                    device=gpu.device,
                    uuid=gpu.uuid,
                    note=gpu.note,
                    clock=clock,
                    details_period_s=details_period_s,
                    session=session,
                    mig_id=gpu.mig_id,
                )
            except SensorError as exc:
                notes.append(f"{exc}; skipped")
                continue
            sensors.append(sensor)
    except pynvml.NVMLError as exc:
        for sensor in sensors:
            sensor.close()
        raise SensorError(f"NVML failed while listing GPUs: {exc}") from exc
    finally:
        session.release()
    return NvmlOpenResult(sensors=tuple(sensors), notes=tuple(notes))


def open_nvml_sensors(
    pynvml_module: NvmlApi | None = None,
    env: Mapping[str, str] = os.environ,
    clock: Callable[[], float] = time.monotonic,
) -> list[NvmlSensor]:
    """The NVML sensors of the GPUs this process sees (see :func:`open_nvml`)."""
    return list(open_nvml(pynvml_module, env, clock).sensors)


@dataclass(frozen=True, slots=True)
class NvmlBackend:
    """NVIDIA GPUs, for detection (:data:`greenprof.sensors.detect.GPU_BACKENDS`).

    ``module``: the NVML module (default: ``pynvml``, imported when opened), or a stand-in
    such as :class:`greenprof.sensors.testing.ScriptedNvml`.
    """

    module: NvmlApi | None = None
    details_period_s: float | None = DEFAULT_DETAILS_PERIOD_S
    name: str = "NVML"

    def open(self, env: Mapping[str, str], clock: Callable[[], float]) -> GpuOpenResult:
        """The NVIDIA GPUs this process sees (see :func:`open_nvml`)."""
        result = open_nvml(self.module, env, clock, details_period_s=self.details_period_s)
        return GpuOpenResult(sensors=result.sensors, notes=result.notes)


NVML_BACKEND = NvmlBackend()
"""The production NVML backend (``pynvml`` imported when it is opened)."""


if TYPE_CHECKING:

    def _offers_its_share(sensor: NvmlSensor) -> ShareableSensor:
        return sensor  # mypy checks the GPU sensor against the capability apportion() uses
