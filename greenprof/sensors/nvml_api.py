"""The part of NVML greenprof uses, as a typed protocol: ``pynvml`` and any stand-in conform.

:class:`NvmlApi` lists exactly the ``pynvml`` (nvidia-ml-py) functions greenprof calls,
with the types it relies on, so a stand-in (:mod:`greenprof.sensors.testing`, or one a
user writes) is checked by mypy against the same list the real module is used through.
The constants are ``nvml.h``'s, defined here rather than read from the module: they are
part of NVML's ABI, older nvidia-ml-py releases lack some of them, and a stand-in then
needs no constants at all.

Return values are ctypes structures in ``pynvml``; only the fields read here are listed
(:class:`FieldValue`, :class:`Utilization`, ...). Device handles are opaque.

Nothing here imports ``pynvml``; :func:`load_pynvml` does, when a sensor is opened.
"""

# ruff: noqa: N802, N815 - the names are pynvml's and NVML's, kept so the protocol reads as its docs

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

from greenprof.errors import SensorError

NvmlHandle = object
"""An NVML device handle (``c_nvmlDevice_t`` in ``pynvml``): opaque, only passed back."""

# nvml.h nvmlReturn_t
NVML_SUCCESS: Final = 0
NVML_ERROR_NOT_SUPPORTED: Final = 3
NVML_ERROR_NOT_FOUND: Final = 6
NVML_ERROR_DRIVER_NOT_LOADED: Final = 9
NVML_ERROR_LIBRARY_NOT_FOUND: Final = 12
NVML_ERROR_FUNCTION_NOT_FOUND: Final = 13
# nvml.h: NVML_FI_DEV_POWER_INSTANT (R535+; older nvidia-ml-py releases lack the constant).
NVML_FI_DEV_POWER_INSTANT: Final = 186
# nvml.h nvmlTemperatureSensors_t
NVML_TEMPERATURE_GPU: Final = 0
# nvml.h nvmlValueType_t, in order: DOUBLE, UNSIGNED_INT, UNSIGNED_LONG, UNSIGNED_LONG_LONG,
# SIGNED_LONG_LONG, SIGNED_INT, UNSIGNED_SHORT.
VALUE_TYPES: Final = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")
"""The ``nvmlValue_t`` union member that holds a field of each ``valueType``."""


class ValueUnion(Protocol):
    """``nvmlValue_t``: one member holds the value, which one ``valueType`` says."""

    dVal: float
    uiVal: int
    ulVal: int
    ullVal: int
    sllVal: int
    siVal: int
    usVal: int


class FieldValue(Protocol):
    """``nvmlFieldValue_t``: one field's value, or the error NVML returned for it."""

    nvmlReturn: int
    valueType: int
    value: ValueUnion


class Utilization(Protocol):
    """``nvmlUtilization_t``: percent of time a kernel ran over the last sample period."""

    gpu: int


class MemoryInfo(Protocol):
    """``nvmlMemory_t``: device memory in bytes."""

    used: int


class ProcessInfo(Protocol):
    """One compute process on a GPU (host PID)."""

    pid: int


class ProcessUtilizationSample(Protocol):
    """``nvmlProcessUtilizationSample_t``: one process's SM utilization at ``timeStamp`` (µs)."""

    pid: int
    timeStamp: int
    smUtil: int


class NvmlApi(Protocol):
    """The ``pynvml`` functions greenprof calls (names as in nvidia-ml-py).

    Every call may raise ``NVMLError`` (its ``value`` is an ``nvmlReturn_t`` code).
    Strings may come back as ``bytes`` from old releases.
    """

    @property
    def NVMLError(self) -> type[Exception]:
        """The exception class every call raises, with the NVML code in ``value``."""
        ...

    def nvmlInit(self) -> None: ...

    def nvmlShutdown(self) -> None: ...

    def nvmlDeviceGetCount(self) -> int: ...

    def nvmlDeviceGetHandleByIndex(self, index: int, /) -> NvmlHandle: ...

    def nvmlDeviceGetHandleByUUID(self, uuid: str, /) -> NvmlHandle: ...

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: NvmlHandle, /) -> NvmlHandle: ...

    def nvmlDeviceGetUUID(self, handle: NvmlHandle, /) -> str | bytes: ...

    def nvmlDeviceGetName(self, handle: NvmlHandle, /) -> str | bytes: ...

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: NvmlHandle, /) -> int:
        """mJ since the driver was loaded."""
        ...

    def nvmlDeviceGetPowerUsage(self, handle: NvmlHandle, /) -> int:
        """mW."""
        ...

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: NvmlHandle, /) -> int:
        """mW."""
        ...

    def nvmlDeviceGetFieldValues(
        self, handle: NvmlHandle, field_ids: list[int], /
    ) -> Sequence[FieldValue]: ...

    def nvmlDeviceGetUtilizationRates(self, handle: NvmlHandle, /) -> Utilization: ...

    def nvmlDeviceGetMemoryInfo(self, handle: NvmlHandle, /) -> MemoryInfo: ...

    def nvmlDeviceGetTemperature(self, handle: NvmlHandle, sensor: int, /) -> int: ...

    def nvmlDeviceGetComputeRunningProcesses(
        self, handle: NvmlHandle, /
    ) -> Sequence[ProcessInfo]: ...

    def nvmlDeviceGetProcessUtilization(
        self, handle: NvmlHandle, time_stamp_us: int, /
    ) -> Sequence[ProcessUtilizationSample]: ...


API_FUNCTIONS: Final = tuple(
    name for name in NvmlApi.__dict__ if name.startswith("nvml") or name == "NVMLError"
)
"""The names of :class:`NvmlApi`'s members, for checks against a module."""


def load_pynvml() -> NvmlApi:
    """Import ``pynvml`` (nvidia-ml-py), or raise :class:`SensorError` saying how to install it."""
    try:
        import pynvml
    except ImportError as exc:
        raise SensorError("nvidia-ml-py is not installed (pip install nvidia-ml-py)") from exc
    module: NvmlApi = pynvml
    return module


def error_code(exc: BaseException) -> int | None:
    """The ``nvmlReturn_t`` code of an ``NVMLError`` (None for any other exception)."""
    value = getattr(exc, "value", None)  # pynvml sets it on every NVMLError
    return value if isinstance(value, int) else None


def is_unsupported(exc: BaseException) -> bool:
    """NVML says the call does not exist on this GPU or driver: never worth retrying."""
    return error_code(exc) in (NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_FUNCTION_NOT_FOUND)


def init_failure(exc: BaseException) -> str:
    """Why ``nvmlInit`` failed, in the words a user can act on."""
    code = error_code(exc)
    if code == NVML_ERROR_LIBRARY_NOT_FOUND:
        return "NVML not available (libnvidia-ml.so.1 not found: no NVIDIA driver)"
    if code == NVML_ERROR_DRIVER_NOT_LOADED:
        return "NVML not available (the NVIDIA driver is not loaded)"
    return f"NVML not available (nvmlInit failed: {exc})"


def text(value: str | bytes) -> str:
    """An NVML string (``bytes`` from old nvidia-ml-py releases)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def field_value(field: FieldValue) -> float | None:
    """The number in one ``nvmlFieldValue_t``, or None when NVML returned an error for it."""
    if field.nvmlReturn != NVML_SUCCESS:
        return None
    member = VALUE_TYPES[field.valueType] if 0 <= field.valueType < len(VALUE_TYPES) else "uiVal"
    return float(getattr(field.value, member))  # a ctypes union: the member the type names
