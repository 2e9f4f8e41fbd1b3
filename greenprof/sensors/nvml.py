"""NVIDIA GPUs through NVML: the total-energy counter, else polled power (integrated downstream).

Facts used here (sources in ``ref/measurement.md`` §1):

- ``nvmlDeviceGetTotalEnergyConsumption``: mJ since the driver was last loaded,
  Volta and newer; older GPUs raise ``NOT_SUPPORTED`` even where power works. It
  refreshes about every 100 ms. A decrease means the driver reloaded: the sensor
  returns the raw counter and ``greenprof.energy`` treats a decrease as a reset.
- ``NVML_FI_DEV_POWER_INSTANT`` (field 186, R535+): current power, all
  architectures. ``nvmlDeviceGetPowerUsage`` (mW) is a 1 s average on Ampere and
  newer except A100, instantaneous before.
- NVML ignores ``CUDA_VISIBLE_DEVICES`` and may order GPUs differently from CUDA,
  so GPUs are mapped by UUID. NVML cannot measure a MIG slice: the whole parent
  GPU is measured and labelled as such.

- A GPU shared by several compute processes (``nvmlDeviceGetComputeRunningProcesses``)
  is apportioned by :class:`GpuProcessShare`: this run's part of the SM utilization
  NVML samples per process (``nvmlDeviceGetProcessUtilization``), else an equal split by
  process count; :func:`greenprof.sensors.share.apportion` applies it.

``pynvml`` (the ``nvidia-ml-py`` distribution) is imported only when a sensor is
opened, never when this module is imported.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from greenprof.errors import SensorError
from greenprof.records import DeviceInfo, Method, Reading

NvmlModule = Any
"""The ``pynvml`` module, or a stand-in with the same functions, constants and ``NVMLError``."""

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# nvml.h: NVML_FI_DEV_POWER_INSTANT = 186 (older nvidia-ml-py releases lack the constant).
_FI_POWER_INSTANT = 186
# nvml.h nvmlValueType_t → the nvmlValue_t union member holding the value.
_VALUE_MEMBER = {
    0: "dVal",
    1: "uiVal",
    2: "ulVal",
    3: "ullVal",
    4: "sllVal",
    5: "siVal",
    6: "usVal",
}
# The energy counter and instant power refresh about every 100 ms (ML.ENERGY blog; Zeus docs).
NVML_UPDATE_PERIOD_S = 0.1
# nvmlDeviceGetUtilizationRates samples over 1/6 s to 1 s (nvml.h): reading it faster adds nothing.
DEFAULT_DETAILS_PERIOD_S = 1.0
# How often a GPU's compute processes and their utilization are listed for its share.
DEFAULT_SHARE_PERIOD_S = 1.0


def load_pynvml() -> NvmlModule:
    """Import ``pynvml`` (nvidia-ml-py), or raise :class:`SensorError` saying how to install it."""
    try:
        import pynvml
    except ImportError as exc:
        raise SensorError("nvidia-ml-py is not installed (pip install nvidia-ml-py)") from exc
    return pynvml


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_unsupported(pynvml: NvmlModule, exc: BaseException) -> bool:
    codes = (
        getattr(pynvml, "NVML_ERROR_NOT_SUPPORTED", 3),
        getattr(pynvml, "NVML_ERROR_FUNCTION_NOT_FOUND", 13),
    )
    return getattr(exc, "value", None) in codes


def _init_failure(pynvml: NvmlModule, exc: BaseException) -> str:
    code = getattr(exc, "value", None)
    if code == getattr(pynvml, "NVML_ERROR_LIBRARY_NOT_FOUND", 12):
        return "NVML not available (libnvidia-ml.so.1 not found: no NVIDIA driver)"
    if code == getattr(pynvml, "NVML_ERROR_DRIVER_NOT_LOADED", 9):
        return "NVML not available (the NVIDIA driver is not loaded)"
    return f"NVML not available (nvmlInit failed: {exc})"


class NvmlSession:
    """One ``nvmlInit``; ``nvmlShutdown`` when the last holder releases it."""

    def __init__(self, pynvml: NvmlModule) -> None:
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise SensorError(_init_failure(pynvml, exc)) from exc
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


@dataclass(frozen=True, slots=True)
class VisibleGpu:
    """A GPU the training process sees, and the physical GPU NVML measures for it."""

    index: int
    """The CUDA index in this process (position in CUDA_VISIBLE_DEVICES): device ``gpu:<index>``."""
    handle: Any
    """NVML handle of the physical GPU (the parent GPU for a MIG slice)."""
    uuid: str
    """UUID of the physical GPU (``GPU-…``)."""
    mig_id: str | None = None
    """The MIG slice the process uses, as written in CUDA_VISIBLE_DEVICES."""

    @property
    def device(self) -> str:
        """Device id, ``gpu:<index>``."""
        return f"gpu:{self.index}"

    @property
    def note(self) -> str:
        """Caveat to store with the device (the MIG label), or empty."""
        if self.mig_id is None:
            return ""
        return (
            f"MIG slice {self.mig_id}: NVML measures only the whole parent GPU {self.uuid};"
            " energy includes other slices"
        )


@dataclass(frozen=True, slots=True)
class GpuMapping:
    """The process's GPUs and what was decided while mapping them."""

    gpus: tuple[VisibleGpu, ...]
    notes: tuple[str, ...] = ()


def _resolve_gpu_uuid(entry: str, uuids: list[str]) -> int | None:
    """NVML index of the one GPU whose UUID starts with ``entry`` (CUDA accepts unique prefixes)."""
    hits = [i for i, uuid in enumerate(uuids) if uuid.lower().startswith(entry.lower())]
    return hits[0] if len(hits) == 1 else None


def _resolve_entry(
    pynvml: NvmlModule, entry: str, handles: list[Any], uuids: list[str]
) -> tuple[Any, str, str | None] | None:
    """``(physical handle, physical uuid, mig id)`` for one CUDA_VISIBLE_DEVICES entry, or None."""
    index: int | None
    mig_id: str | None = None
    if entry.isdigit():
        index = int(entry) if int(entry) < len(handles) else None
    elif entry.startswith("GPU-"):
        index = _resolve_gpu_uuid(entry, uuids)
    elif entry.startswith("MIG-GPU-"):  # legacy (before R470): MIG-GPU-<uuid>/<gi>/<ci>
        index = _resolve_gpu_uuid(entry[len("MIG-") :].split("/", 1)[0], uuids)
        mig_id = entry
    elif entry.startswith("MIG-"):
        try:
            mig = pynvml.nvmlDeviceGetHandleByUUID(entry)
            parent = pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig)
            return parent, _text(pynvml.nvmlDeviceGetUUID(parent)), entry
        except pynvml.NVMLError:
            return None
    else:
        return None
    return None if index is None else (handles[index], uuids[index], mig_id)


def _order_note(pynvml: NvmlModule, handles: list[Any], cuda_device_order: str | None) -> str:
    """A warning when integer CUDA ids may not be NVML indices (mixed models, FASTEST_FIRST)."""
    if cuda_device_order == "PCI_BUS_ID" or len(handles) < 2:
        return ""
    names = sorted({_text(pynvml.nvmlDeviceGetName(h)) for h in handles})
    if len(names) < 2:
        return ""
    return (
        f"this node mixes GPU models ({', '.join(names)}) and CUDA_DEVICE_ORDER is not"
        " PCI_BUS_ID: CUDA's default FASTEST_FIRST order can differ from NVML's, so integer"
        " GPU ids may name other GPUs than measured; set CUDA_DEVICE_ORDER=PCI_BUS_ID or use"
        " GPU-<uuid> ids"
    )


def visible_gpus(
    pynvml: NvmlModule, cuda_visible_devices: str | None, cuda_device_order: str | None = None
) -> GpuMapping:
    """Map the process's CUDA devices to the physical GPUs NVML measures.

    ``cuda_visible_devices`` is parsed as CUDA does: comma-separated entries, each
    an NVML index, ``GPU-<uuid>`` (or a unique prefix of it), ``MIG-<uuid>`` or the
    legacy ``MIG-GPU-<uuid>/<gi>/<ci>``; the first entry that names no GPU ends the
    list. None (unset) means all GPUs; an empty string means none. A physical GPU
    listed twice (e.g. two MIG slices of one GPU) is measured once, under its first
    index, so its energy is not counted twice. NVML must be initialized.
    """
    handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    uuids = [_text(pynvml.nvmlDeviceGetUUID(h)) for h in handles]
    notes: list[str] = []
    resolved: list[tuple[Any, str, str | None]]
    if cuda_visible_devices is None:
        resolved = [(h, u, None) for h, u in zip(handles, uuids, strict=True)]
        uses_integers = True
    else:
        resolved = []
        entries = [e.strip() for e in cuda_visible_devices.split(",")]
        if entries == [""]:
            notes.append("CUDA_VISIBLE_DEVICES is empty: no GPU is visible to this process")
            entries = []
        for entry in entries:
            target = _resolve_entry(pynvml, entry, handles, uuids)
            if target is None:
                notes.append(
                    f"CUDA_VISIBLE_DEVICES entry {entry!r} names no GPU on this node:"
                    " it and the entries after it are ignored, as CUDA does"
                )
                break
            resolved.append(target)
        uses_integers = any(e.isdigit() for e in entries[: len(resolved)])
    gpus: list[VisibleGpu] = []
    first_index: dict[str, int] = {}
    for index, (handle, uuid, mig_id) in enumerate(resolved):
        if uuid in first_index:
            notes.append(
                f"gpu:{index} is the same physical GPU {uuid} as gpu:{first_index[uuid]}:"
                f" measured once, as gpu:{first_index[uuid]}"
            )
            continue
        first_index[uuid] = index
        gpus.append(VisibleGpu(index=index, handle=handle, uuid=uuid, mig_id=mig_id))
    order_note = _order_note(pynvml, handles, cuda_device_order) if uses_integers else ""
    if order_note and gpus:
        notes.append(order_note)
    return GpuMapping(gpus=tuple(gpus), notes=tuple(notes))


def _field_value(field: Any, success: int) -> float | None:
    """The number in one ``nvmlFieldValue_t``, or None when NVML returned an error for it."""
    if field.nvmlReturn != success:
        return None
    return float(getattr(field.value, _VALUE_MEMBER.get(int(field.valueType), "uiVal")))


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
        pynvml: NvmlModule,
        handle: Any,
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
        self._nvml = pynvml
        self._handle = handle
        self._clock = clock
        self._details_period_s = details_period_s
        self._success = getattr(pynvml, "NVML_SUCCESS", 0)
        self._power_field = getattr(pynvml, "NVML_FI_DEV_POWER_INSTANT", _FI_POWER_INSTANT)
        try:
            name = _text(pynvml.nvmlDeviceGetName(handle))
            uuid = uuid or _text(pynvml.nvmlDeviceGetUUID(handle))
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
        )
        self._disabled: set[str] = set()
        self._details_at_s: float | None = None
        self._details: tuple[float | None, int | None, float | None] = (None, None, None)
        self._session = session
        if session is not None:
            session.acquire()
        self._closed = False

    def _probe(self, call: Callable[[Any], object]) -> bool:
        try:
            call(self._handle)
        except self._nvml.NVMLError as exc:
            if _is_unsupported(self._nvml, exc):
                return False
            raise
        return True

    def _probe_power(self) -> str | None:
        """Which power source works: the instant field, GetPowerUsage, or none."""
        try:
            if self._read_power_field() is not None:
                return "NVML_FI_DEV_POWER_INSTANT"
        except self._nvml.NVMLError as exc:
            if not _is_unsupported(self._nvml, exc):
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
        fields = self._nvml.nvmlDeviceGetFieldValues(self._handle, [self._power_field])
        milliwatts = _field_value(fields[0], self._success)
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
            if _is_unsupported(self._nvml, exc):
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
            lambda: float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
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


def _run_pids() -> Callable[[], Collection[int]]:
    from greenprof.sensors.share import RunProcesses, psutil_world

    return RunProcesses(psutil_world()).pids


SM_SHARE = "SM-utilization share"
EQUAL_SPLIT = "equal split by process count"


class GpuProcessShare:
    """This run's share of one GPU that several compute processes use.

    Every ``period_s`` the GPU's compute processes are listed. Alone on it (or it idle)
    the share is 1: a single process is unchanged. So it is too when this run is not in
    the list — it has no CUDA context yet, or a container's PID namespace hides its host
    PID (NVML reports host PIDs) — and the note says so. With others on it, the share is
    this run's sum of per-process SM utilization samples since the last listing over all
    processes' (``nvmlDeviceGetProcessUtilization``); where that is unsupported, has no
    samples or sums to 0, an equal split by process count. Both are labelled estimates;
    ``method`` names the ones used. Never raises from :meth:`share`.
    """

    def __init__(
        self,
        pynvml: NvmlModule,
        handle: Any,
        *,
        own_pids: Callable[[], Collection[int]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        period_s: float = DEFAULT_SHARE_PERIOD_S,
    ) -> None:
        self._nvml = pynvml
        self._handle = handle
        self._own_pids = own_pids
        self._clock = clock
        self.period_s = period_s
        self.value = 1.0
        self.methods: list[str] = []
        """The methods used while the GPU was shared, in order of first use."""
        self.most_others = 0
        """The most other compute processes seen on the GPU with this run."""
        self.most_unlisted = 0
        """The most compute processes seen while this run was not among them."""
        self._last_seen_us = 0
        self._utilization = True
        self._listing = True
        self._last_s: float | None = None
        self.share()  # a GPU already shared when the run starts is labelled from the start

    @property
    def method(self) -> str:
        return " and ".join(self.methods) if self.methods else SM_SHARE

    @property
    def note(self) -> str:
        if self.most_others:
            return (
                f"shared GPU (up to {self.most_others} other compute process(es)): apportioned"
                f" by {self.method}, an estimate"
            )
        if self.most_unlisted:
            return (
                f"{self.most_unlisted} other compute process(es) on this GPU while this run"
                " was not among them (no CUDA context yet, or a container PID namespace):"
                " not apportioned then"
            )
        return ""

    def share(self) -> float:
        """The latest share, refreshed every ``period_s``."""
        now_s = self._clock()
        if self._listing and (self._last_s is None or now_s - self._last_s >= self.period_s):
            self._last_s = now_s
            try:
                self.value = self._refresh()
            except Exception as exc:  # NVML errors and broken psutil alike: keep the share
                if _is_unsupported(self._nvml, exc):
                    self._listing = False
                    self.value = 1.0
                logger.debug("GPU process listing failed: %s", exc)
        return self.value

    def _refresh(self) -> float:
        nvml = self._nvml
        pids = {int(p.pid) for p in nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)}
        if len(pids) < 2:
            return 1.0
        if self._own_pids is None:
            self._own_pids = _run_pids()
        own = pids & set(self._own_pids())
        if not own:
            self.most_unlisted = max(self.most_unlisted, len(pids))
            return 1.0
        self.most_others = max(self.most_others, len(pids - own))
        share = self._sm_share(own)
        method = SM_SHARE
        if share is None:
            share, method = len(own) / len(pids), EQUAL_SPLIT
        if method not in self.methods:
            self.methods.append(method)
        return share

    def _sm_share(self, own: set[int]) -> float | None:
        """Own SM utilization over all processes' since the last call, or None."""
        if not self._utilization:
            return None
        try:
            samples = self._nvml.nvmlDeviceGetProcessUtilization(self._handle, self._last_seen_us)
        except self._nvml.NVMLError as exc:  # NOT_FOUND: no sample since the last call
            if _is_unsupported(self._nvml, exc):
                self._utilization = False
            return None
        total = mine = 0.0
        newest = self._last_seen_us
        for sample in samples:
            stamp_us = int(sample.timeStamp)
            if stamp_us <= self._last_seen_us:
                continue
            newest = max(newest, stamp_us)
            total += float(sample.smUtil)
            if int(sample.pid) in own:
                mine += float(sample.smUtil)
        self._last_seen_us = newest
        return mine / total if total > 0.0 else None


@dataclass(frozen=True, slots=True)
class NvmlOpenResult:
    """The opened GPU sensors and one note per decision (skipped GPUs, mapping caveats)."""

    sensors: tuple[NvmlSensor, ...]
    notes: tuple[str, ...] = ()


def open_nvml(
    pynvml_module: NvmlModule = None,
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
    pynvml_module: NvmlModule = None,
    env: Mapping[str, str] = os.environ,
    clock: Callable[[], float] = time.monotonic,
) -> list[NvmlSensor]:
    """The NVML sensors of the GPUs this process sees (see :func:`open_nvml`)."""
    return list(open_nvml(pynvml_module, env, clock).sensors)
