"""A scripted NVML: test code that measures GPUs on a machine without one.

:class:`ScriptedNvml` implements :class:`~greenprof.sensors.nvml_api.NvmlApi` (exactly the
``pynvml`` functions greenprof calls) over :class:`ScriptedGpu` objects whose counters,
power, update period, details, MIG slices, compute processes and per-process utilization
a test sets, and whose failures it schedules. Its errors are the real
``pynvml.NVMLError`` classes and its results the real ctypes structures, so a mismatch
with nvidia-ml-py shows up here rather than on a GPU machine. Time comes from a clock the
test advances (:class:`FakeClock`: nothing sleeps), or from ``time.monotonic``.

Pass it wherever greenprof takes an NVML module::

    from greenprof.sensors.detect import detect_sensors
    from greenprof.sensors.testing import FakeClock, ScriptedGpu, ScriptedNvml

    clock = FakeClock()
    nvml = ScriptedNvml([ScriptedGpu("GPU-0000", power_w=300)], clock)
    detection = detect_sensors(env={}, pynvml_module=nvml, include_node_wide=False, clock=clock)
    (gpu,) = detection.sensors
    first = gpu.read()
    clock.advance(1.0)
    assert gpu.read().energy_j - first.energy_j == 300.0  # 300 W for 1 s
    nvml.fail_next["nvmlDeviceGetTotalEnergyConsumption"] = nvml.NVML_ERROR_GPU_IS_LOST

A profiled loop takes the stand-in's sensors in real time::

    from greenprof.sensors.nvml import open_nvml_sensors

    nvml = ScriptedNvml([ScriptedGpu("GPU-0000", power_w=300)])  # counters on time.monotonic
    with greenprof.Profiler("test", db=tmp_path / "runs.db", sensors=open_nvml_sensors(nvml)):
        ...

Importing this module imports ``pynvml`` (nvidia-ml-py, a greenprof dependency; no GPU
or driver is needed for the import). ``greenprof.sensors`` never imports it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pynvml as real

from greenprof.sensors.nvml_api import (
    FieldValue,
    MemoryInfo,
    NvmlApi,
    NvmlHandle,
    ProcessInfo,
    ProcessUtilizationSample,
    Utilization,
)

COUNTER_PERIOD_S = 0.1
"""How often NVIDIA's energy counter refreshes (default :attr:`ScriptedGpu.counter_period_s`)."""


class FakeClock:
    """A monotonic clock the test advances by hand."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.now_s += seconds


@dataclass
class ScriptedGpu:
    """One physical GPU: power in whole watts, the counter in mJ updated every
    ``counter_period_s``. Change any field between reads: the next read sees it."""

    uuid: str
    name: str = "NVIDIA A100-SXM4-40GB"
    power_w: int = 250
    power_limit_mw: int = 400_000
    has_counter: bool = True
    """False: a pre-Volta GPU (the counter raises NOT_SUPPORTED)."""
    has_instant_field: bool = True
    """False: a driver before R535 (no ``NVML_FI_DEV_POWER_INSTANT``)."""
    has_power_usage: bool = True
    has_details: bool = True
    """False: utilization, memory and temperature raise NOT_SUPPORTED."""
    mig_uuids: tuple[str, ...] = ()
    """MIG slices of this GPU (``MIG-…`` UUIDs)."""
    utilization_pct: int = 87
    memory_used_bytes: int = 12 * 2**30
    temperature_c: int = 61
    energy_mj: int = 5_000_000
    """Counter value at the last tick (the driver has been up a while)."""
    counter_period_s: float = COUNTER_PERIOD_S
    next_tick_s: float | None = None
    sm_util_by_pid: dict[int, int] = field(default_factory=dict)
    """Compute processes on this GPU (host PIDs) and each one's SM utilization in %."""
    has_process_utilization: bool = True

    def sync(self, now_s: float) -> None:
        """Advance the counter over the ticks up to ``now_s`` at the current power."""
        if self.next_tick_s is None:
            self.next_tick_s = now_s + self.counter_period_s
        tick_mj = round(self.power_w * self.counter_period_s * 1000)  # W × s → mJ
        while self.next_tick_s <= now_s + 1e-12:
            self.energy_mj += tick_mj
            self.next_tick_s += self.counter_period_s


@dataclass(frozen=True)
class Handle:
    """An opaque device handle; ``mig_uuid`` is set for a MIG device handle."""

    gpu: ScriptedGpu = field(compare=False)
    index: int
    mig_uuid: str | None = None


def _handle(handle: NvmlHandle) -> Handle:
    if not isinstance(handle, Handle):
        raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
    return handle


class ScriptedNvml:
    """The module-like object passed as ``pynvml_module``.

    ``clock`` drives the counters: a :class:`FakeClock` the test advances, or
    ``time.monotonic`` (the default) for a run in real time, as under a ``Profiler``.
    ``calls`` counts calls per function name, ``init_count``/``shutdown_count`` the
    library lifetime; ``init_error`` makes ``nvmlInit`` fail with that code (e.g.
    ``NVML_ERROR_LIBRARY_NOT_FOUND``: no driver). ``fail_next[name] = code`` makes the
    next call to that function raise once; ``failing[name] = code`` makes every call
    raise until removed.
    """

    NVMLError = real.NVMLError
    NVML_SUCCESS = real.NVML_SUCCESS
    NVML_ERROR_NOT_SUPPORTED = real.NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_NOT_FOUND = real.NVML_ERROR_NOT_FOUND
    NVML_ERROR_INVALID_ARGUMENT = real.NVML_ERROR_INVALID_ARGUMENT
    NVML_ERROR_UNINITIALIZED = real.NVML_ERROR_UNINITIALIZED
    NVML_ERROR_LIBRARY_NOT_FOUND = real.NVML_ERROR_LIBRARY_NOT_FOUND
    NVML_ERROR_DRIVER_NOT_LOADED = real.NVML_ERROR_DRIVER_NOT_LOADED
    NVML_ERROR_FUNCTION_NOT_FOUND = real.NVML_ERROR_FUNCTION_NOT_FOUND
    NVML_ERROR_GPU_IS_LOST = real.NVML_ERROR_GPU_IS_LOST
    NVML_ERROR_UNKNOWN = real.NVML_ERROR_UNKNOWN
    NVML_ERROR_INSUFFICIENT_SIZE = real.NVML_ERROR_INSUFFICIENT_SIZE
    NVML_FI_DEV_POWER_INSTANT = real.NVML_FI_DEV_POWER_INSTANT
    NVML_TEMPERATURE_GPU = real.NVML_TEMPERATURE_GPU

    def __init__(
        self,
        gpus: Sequence[ScriptedGpu],
        clock: Callable[[], float] = time.monotonic,
        init_error: int | None = None,
    ) -> None:
        self.gpus = list(gpus)
        self.clock = clock
        self.init_error = init_error
        self.calls: Counter[str] = Counter()
        self.init_count = 0
        self.shutdown_count = 0
        self.fail_next: dict[str, int] = {}
        """``{function name: error code}``: the next call to that function raises it once."""
        self.failing: dict[str, int] = {}
        """``{function name: error code}``: every call to that function raises it."""

    @property
    def initialized(self) -> bool:
        """``nvmlInit`` was called more often than ``nvmlShutdown``."""
        return self.init_count > self.shutdown_count

    def _enter(self, name: str) -> None:
        self.calls[name] += 1
        if not self.initialized:
            raise real.NVMLError(real.NVML_ERROR_UNINITIALIZED)
        if name in self.fail_next:
            raise real.NVMLError(self.fail_next.pop(name))
        if name in self.failing:
            raise real.NVMLError(self.failing[name])

    def _physical(self, handle: NvmlHandle, name: str) -> ScriptedGpu:
        self._enter(name)
        scripted = _handle(handle)
        if scripted.mig_uuid is not None:  # NVML: no power or energy on MIG device handles
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
        scripted.gpu.sync(self.clock())
        return scripted.gpu

    # Library lifetime

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names throughout
        self.calls["nvmlInit"] += 1
        if self.init_error is not None:
            raise real.NVMLError(self.init_error)
        self.init_count += 1

    def nvmlShutdown(self) -> None:  # noqa: N802
        self._enter("nvmlShutdown")
        self.shutdown_count += 1

    # Enumeration

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int, /) -> NvmlHandle:  # noqa: N802
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return Handle(self.gpus[index], index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str, /) -> NvmlHandle:  # noqa: N802
        self._enter("nvmlDeviceGetHandleByUUID")
        for index, gpu in enumerate(self.gpus):
            if gpu.uuid == uuid:
                return Handle(gpu, index)
            if uuid in gpu.mig_uuids:
                return Handle(gpu, index, mig_uuid=uuid)
        raise real.NVMLError(real.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(  # noqa: N802
        self, handle: NvmlHandle, /
    ) -> NvmlHandle:
        self._enter("nvmlDeviceGetDeviceHandleFromMigDeviceHandle")
        scripted = _handle(handle)
        if scripted.mig_uuid is None:
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return Handle(scripted.gpu, scripted.index)

    def nvmlDeviceGetUUID(self, handle: NvmlHandle, /) -> str:  # noqa: N802
        self._enter("nvmlDeviceGetUUID")
        scripted = _handle(handle)
        return scripted.mig_uuid or scripted.gpu.uuid

    def nvmlDeviceGetName(self, handle: NvmlHandle, /) -> str:  # noqa: N802
        self._enter("nvmlDeviceGetName")
        return _handle(handle).gpu.name

    # Power and energy

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: NvmlHandle, /) -> int:  # noqa: N802
        return self._physical(handle, "nvmlDeviceGetEnforcedPowerLimit").power_limit_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: NvmlHandle, /) -> int:  # noqa: N802
        gpu = self._physical(handle, "nvmlDeviceGetTotalEnergyConsumption")
        if not gpu.has_counter:
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
        return gpu.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle: NvmlHandle, /) -> int:  # noqa: N802
        gpu = self._physical(handle, "nvmlDeviceGetPowerUsage")
        if not gpu.has_power_usage:
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
        return gpu.power_w * 1000

    def nvmlDeviceGetFieldValues(  # noqa: N802
        self, handle: NvmlHandle, field_ids: list[int], /
    ) -> Sequence[FieldValue]:
        gpu = self._physical(handle, "nvmlDeviceGetFieldValues")
        values = (real.c_nvmlFieldValue_t * len(field_ids))()
        for value, field_id in zip(values, field_ids, strict=True):
            value.fieldId = field_id
            if field_id == real.NVML_FI_DEV_POWER_INSTANT and gpu.has_instant_field:
                value.nvmlReturn = real.NVML_SUCCESS
                value.valueType = real.NVML_VALUE_TYPE_UNSIGNED_INT
                value.value.uiVal = gpu.power_w * 1000
            else:  # per-field error; the call itself succeeds, as in NVML
                value.nvmlReturn = real.NVML_ERROR_NOT_SUPPORTED
        return list(values)

    # Details

    def _details(self, handle: NvmlHandle, name: str) -> ScriptedGpu:
        self._enter(name)
        gpu = _handle(handle).gpu
        if not gpu.has_details:
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
        return gpu

    def nvmlDeviceGetUtilizationRates(self, handle: NvmlHandle, /) -> Utilization:  # noqa: N802
        gpu = self._details(handle, "nvmlDeviceGetUtilizationRates")
        if gpu.mig_uuids:  # nvml.h: not supported on MIG-enabled GPUs
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
        utilization: Utilization = real.c_nvmlUtilization_t(gpu=gpu.utilization_pct, memory=30)
        return utilization

    def nvmlDeviceGetMemoryInfo(self, handle: NvmlHandle, /) -> MemoryInfo:  # noqa: N802
        gpu = self._details(handle, "nvmlDeviceGetMemoryInfo")
        memory: MemoryInfo = real.c_nvmlMemory_t(
            total=40 * 2**30, free=0, used=gpu.memory_used_bytes
        )
        return memory

    def nvmlDeviceGetTemperature(self, handle: NvmlHandle, sensor: int, /) -> int:  # noqa: N802
        gpu = self._details(handle, "nvmlDeviceGetTemperature")
        if sensor != real.NVML_TEMPERATURE_GPU:
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temperature_c

    # Processes

    def nvmlDeviceGetComputeRunningProcesses(  # noqa: N802
        self, handle: NvmlHandle, /
    ) -> Sequence[ProcessInfo]:
        self._enter("nvmlDeviceGetComputeRunningProcesses")
        return [
            real.nvmlStructToFriendlyObject(real.c_nvmlProcessInfo_v3_t(pid=pid, usedGpuMemory=0))
            for pid in _handle(handle).gpu.sm_util_by_pid
        ]

    def nvmlDeviceGetProcessUtilization(  # noqa: N802
        self, handle: NvmlHandle, time_stamp_us: int, /
    ) -> Sequence[ProcessUtilizationSample]:
        """One sample per process, stamped now (µs); NOT_FOUND when none is newer than
        ``time_stamp_us``, as NVML answers a repeated call within one sampling period."""
        self._enter("nvmlDeviceGetProcessUtilization")
        gpu = _handle(handle).gpu
        if gpu.mig_uuids or not gpu.has_process_utilization:
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
        now_us = round(self.clock() * 1e6)
        if now_us <= time_stamp_us or not gpu.sm_util_by_pid:
            raise real.NVMLError(real.NVML_ERROR_NOT_FOUND)
        return [
            real.c_nvmlProcessUtilizationSample_t(pid=pid, timeStamp=now_us, smUtil=sm, memUtil=0)
            for pid, sm in gpu.sm_util_by_pid.items()
        ]

    # For assertions

    def power_calls(self) -> int:
        """Calls made for energy and power (not the details)."""
        names = (
            "nvmlDeviceGetTotalEnergyConsumption",
            "nvmlDeviceGetFieldValues",
            "nvmlDeviceGetPowerUsage",
        )
        return sum(self.calls[n] for n in names)


if TYPE_CHECKING:

    def _conforms(nvml: ScriptedNvml) -> NvmlApi:
        return nvml  # mypy checks the stand-in against the protocol the sensor uses
