"""A scripted stand-in for the ``pynvml`` module: GPUs with deterministic counters, no driver.

It implements exactly the functions greenprof's NVML sensor calls, with the real
module's constants, ``NVMLError`` classes and ctypes result structures, so a
mismatch with nvidia-ml-py shows up here. Importing the real ``pynvml`` needs no
GPU; only ``nvmlInit`` does, and that is never called on it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pynvml as real

COUNTER_PERIOD_S = 0.1


class FakeClock:
    """A monotonic clock the test advances by hand."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@dataclass
class ScriptedGpu:
    """One physical GPU: power in whole watts, the counter in mJ updated every 100 ms."""

    uuid: str
    name: str = "NVIDIA A100-SXM4-40GB"
    power_w: int = 250
    power_limit_mw: int = 400_000
    has_counter: bool = True
    has_instant_field: bool = True
    has_power_usage: bool = True
    has_details: bool = True
    mig_uuids: tuple[str, ...] = ()
    utilization_pct: int = 87
    memory_used_bytes: int = 12 * 2**30
    temperature_c: int = 61
    energy_mj: int = 5_000_000
    """Counter value at the last 100 ms tick (the driver has been up a while)."""
    next_tick_s: float | None = None
    sm_util_by_pid: dict[int, int] = field(default_factory=dict)
    """Compute processes on this GPU (host PIDs) and each one's SM utilization in %."""
    has_process_utilization: bool = True

    def sync(self, now_s: float) -> None:
        """Advance the counter over the ticks up to ``now_s`` at the current power."""
        if self.next_tick_s is None:
            self.next_tick_s = now_s + COUNTER_PERIOD_S
        while self.next_tick_s <= now_s + 1e-12:
            self.energy_mj += self.power_w * 100  # W × 0.1 s = power_w × 100 mJ
            self.next_tick_s += COUNTER_PERIOD_S


@dataclass(frozen=True)
class Handle:
    """An opaque device handle; ``mig_uuid`` is set for a MIG device handle."""

    gpu: ScriptedGpu = field(compare=False)
    index: int
    mig_uuid: str | None = None


class ScriptedNvml:
    """The module-like object passed as ``pynvml_module``.

    ``calls`` counts calls per function name, ``init_count``/``shutdown_count``
    the library lifetime; ``init_error`` makes ``nvmlInit`` fail with that code.
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
    NVML_FI_DEV_POWER_INSTANT = real.NVML_FI_DEV_POWER_INSTANT
    NVML_ERROR_INSUFFICIENT_SIZE = real.NVML_ERROR_INSUFFICIENT_SIZE
    NVML_TEMPERATURE_GPU = real.NVML_TEMPERATURE_GPU

    def __init__(self, gpus: list[ScriptedGpu], clock: FakeClock, init_error: int | None = None):
        self.gpus = gpus
        self.clock = clock
        self.init_error = init_error
        self.calls: Counter[str] = Counter()
        self.init_count = 0
        self.shutdown_count = 0
        self.fail_next: dict[str, int] = {}
        """``{function name: error code}``: the next call to that function raises it once."""

    @property
    def initialized(self) -> bool:
        return self.init_count > self.shutdown_count

    def _enter(self, name: str) -> None:
        self.calls[name] += 1
        if not self.initialized:
            raise real.NVMLError(real.NVML_ERROR_UNINITIALIZED)
        if name in self.fail_next:
            raise real.NVMLError(self.fail_next.pop(name))

    def _physical(self, handle: Handle, name: str) -> ScriptedGpu:
        self._enter(name)
        if handle.mig_uuid is not None:  # NVML: no power or energy on MIG device handles
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
        handle.gpu.sync(self.clock())
        return handle.gpu

    # Library lifetime

    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] += 1
        if self.init_error is not None:
            raise real.NVMLError(self.init_error)
        self.init_count += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self.shutdown_count += 1

    # Enumeration

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Handle:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return Handle(self.gpus[index], index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> Handle:
        self._enter("nvmlDeviceGetHandleByUUID")
        for index, gpu in enumerate(self.gpus):
            if gpu.uuid == uuid:
                return Handle(gpu, index)
            if uuid in gpu.mig_uuids:
                return Handle(gpu, index, mig_uuid=uuid)
        raise real.NVMLError(real.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: Handle) -> Handle:
        self._enter("nvmlDeviceGetDeviceHandleFromMigDeviceHandle")
        if handle.mig_uuid is None:
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return Handle(handle.gpu, handle.index)

    def nvmlDeviceGetUUID(self, handle: Handle) -> str:
        self._enter("nvmlDeviceGetUUID")
        return handle.mig_uuid or handle.gpu.uuid

    def nvmlDeviceGetName(self, handle: Handle) -> str:
        self._enter("nvmlDeviceGetName")
        return handle.gpu.name

    # Power and energy

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Handle) -> int:
        return self._physical(handle, "nvmlDeviceGetEnforcedPowerLimit").power_limit_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Handle) -> int:
        gpu = self._physical(handle, "nvmlDeviceGetTotalEnergyConsumption")
        if not gpu.has_counter:
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
        return gpu.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle: Handle) -> int:
        gpu = self._physical(handle, "nvmlDeviceGetPowerUsage")
        if not gpu.has_power_usage:
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
        return gpu.power_w * 1000

    def nvmlDeviceGetFieldValues(self, handle: Handle, field_ids: list[int]) -> Any:
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
        return values

    # Details

    def _details(self, handle: Handle, name: str) -> ScriptedGpu:
        self._enter(name)
        if not handle.gpu.has_details:
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
        return handle.gpu

    def nvmlDeviceGetUtilizationRates(self, handle: Handle) -> Any:
        gpu = self._details(handle, "nvmlDeviceGetUtilizationRates")
        if gpu.mig_uuids:  # nvml.h: not supported on MIG-enabled GPUs
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
        return real.c_nvmlUtilization_t(gpu=gpu.utilization_pct, memory=30)

    def nvmlDeviceGetMemoryInfo(self, handle: Handle) -> Any:
        gpu = self._details(handle, "nvmlDeviceGetMemoryInfo")
        return real.c_nvmlMemory_t(total=40 * 2**30, free=0, used=gpu.memory_used_bytes)

    def nvmlDeviceGetTemperature(self, handle: Handle, sensor: int) -> int:
        gpu = self._details(handle, "nvmlDeviceGetTemperature")
        if sensor != real.NVML_TEMPERATURE_GPU:
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return gpu.temperature_c

    # Processes

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Handle) -> list[Any]:
        self._enter("nvmlDeviceGetComputeRunningProcesses")
        return [
            real.nvmlStructToFriendlyObject(real.c_nvmlProcessInfo_v3_t(pid=pid, usedGpuMemory=0))
            for pid in handle.gpu.sm_util_by_pid
        ]

    def nvmlDeviceGetProcessUtilization(self, handle: Handle, time_stamp: int) -> list[Any]:
        """One sample per process, stamped now (µs); NOT_FOUND when none is newer than
        ``time_stamp``, as NVML answers a repeated call within one sampling period."""
        self._enter("nvmlDeviceGetProcessUtilization")
        gpu = handle.gpu
        if gpu.mig_uuids or not gpu.has_process_utilization:
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
        now_us = round(self.clock() * 1e6)
        if now_us <= time_stamp or not gpu.sm_util_by_pid:
            raise real.NVMLError(real.NVML_ERROR_NOT_FOUND)
        return [
            real.c_nvmlProcessUtilizationSample_t(pid=pid, timeStamp=now_us, smUtil=sm, memUtil=0)
            for pid, sm in gpu.sm_util_by_pid.items()
        ]

    def power_calls(self) -> int:
        """Calls a read makes for energy and power (not the details)."""
        names = (
            "nvmlDeviceGetTotalEnergyConsumption",
            "nvmlDeviceGetFieldValues",
            "nvmlDeviceGetPowerUsage",
        )
        return sum(self.calls[n] for n in names)
