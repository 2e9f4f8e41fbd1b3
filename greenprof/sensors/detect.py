"""Pick the best source per device and say why: each GPU backend (NVML), RAPL for CPU/DRAM,
else a model; with several local ranks, each rank its own GPU and local rank 0 the node."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenprof.errors import SensorError
from greenprof.sensors.base import GpuBackend, Sensor
from greenprof.sensors.cpu_model import CPUINFO_PATH, open_cpu_model_sensor
from greenprof.sensors.nvml import NVML_BACKEND, NvmlBackend, NvmlSensor, NvmlSession
from greenprof.sensors.nvml_api import NvmlApi, load_pynvml
from greenprof.sensors.rapl import (
    POWERCAP_ROOT,
    RaplPermissionError,
    RaplSensor,
    open_rapl_sensors,
)
from greenprof.sensors.recipe import SensorRecipe, recipe_of

logger = logging.getLogger(__name__)

# Launchers' per-node rank variables: torchrun/accelerate, SLURM srun, Open MPI mpirun.
LOCAL_RANK_VARS = ("LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK")
# ... and their per-node process counts (SLURM's may read "4(x2)": 4 tasks on each of 2 nodes).
LOCAL_WORLD_SIZE_VARS = (
    "LOCAL_WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "SLURM_NTASKS_PER_NODE",
    "SLURM_STEP_TASKS_PER_NODE",
)


@dataclass(frozen=True, slots=True)
class Detection:
    """The sensors chosen for this process and one note per decision."""

    sensors: tuple[Sensor, ...]
    notes: tuple[str, ...]

    def close(self) -> None:
        """Close every sensor."""
        for sensor in self.sensors:
            sensor.close()


def local_rank(env: Mapping[str, str]) -> tuple[int, str] | None:
    """``(rank on this node, variable it came from)``, or None outside a multi-process launch."""
    for name in LOCAL_RANK_VARS:
        value = env.get(name, "").strip()
        if value.isdigit():
            return int(value), name
    return None


GPU_BACKENDS: tuple[GpuBackend, ...] = (NVML_BACKEND,)
"""Every GPU vendor detection tries, in order. A new vendor (AMD SMI, ...) is one module
with a :class:`~greenprof.sensors.base.GpuBackend` and one entry here."""


def _open_backend(
    backend: GpuBackend, env: Mapping[str, str], clock: Callable[[], float]
) -> tuple[tuple[Sensor, ...], list[str]]:
    try:
        result = backend.open(env, clock)
    except SensorError as exc:
        return (), [f"gpu: {exc}"]
    except Exception as exc:  # a broken driver stack must not stop training
        logger.debug("%s detection failed", backend.name, exc_info=True)
        return (), [f"gpu: {backend.name} failed unexpectedly ({type(exc).__name__}: {exc})"]
    notes = [f"gpu: {note}" for note in result.notes]
    notes.extend(
        f"{s.device}: {backend.name} {s.info.method} ({s.info.name})" for s in result.sensors
    )
    return result.sensors, notes


def _detect_gpus(
    backends: Sequence[GpuBackend], env: Mapping[str, str], clock: Callable[[], float]
) -> tuple[list[Sensor], list[str]]:
    """Every backend's GPUs; a device id two backends both claim is kept from the first."""
    sensors: list[Sensor] = []
    notes: list[str] = []
    for backend in backends:
        opened, backend_notes = _open_backend(backend, env, clock)
        notes.extend(backend_notes)
        taken = {s.device for s in sensors}
        for sensor in opened:
            if sensor.device in taken:
                notes.append(
                    f"{sensor.device}: {backend.name} also offers this device id; measured by"
                    " the backend listed first"
                )
                sensor.close()
            else:
                sensors.append(sensor)
    owned, ownership_notes = _owned_gpus(sensors, env)
    notes.extend(ownership_notes)
    if not owned:
        notes.append("gpu: no GPU measured")
    return owned, notes


def _local_world_size(env: Mapping[str, str]) -> int | None:
    """Processes of this job on this node, where the launcher says (None: unknown)."""
    for name in LOCAL_WORLD_SIZE_VARS:
        value = env.get(name, "").strip()
        digits = value.split("(", 1)[0]  # SLURM: "4(x2)"; "4,2" (uneven nodes) is unknown
        if digits.isdigit() and int(digits) > 0:
            return int(digits)
    return None


def _gpu_index(sensor: Sensor) -> int | None:
    prefix, _, index = sensor.device.partition(":")
    return int(index) if prefix == "gpu" and index.isdigit() else None


def _owned_gpus(sensors: list[Sensor], env: Mapping[str, str]) -> tuple[list[Sensor], list[str]]:
    """The GPUs this rank uses when several local ranks see the same GPUs.

    torchrun, accelerate and Lightning leave every GPU visible to every rank, and each
    rank uses ``cuda:<local rank>``: measuring all of them would give every rank the whole
    node's GPU energy. So with more than one local rank (the local world size says so, or
    the local rank is above 0) and several GPUs visible, a rank keeps only
    ``gpu:<local rank mod visible GPUs>`` (more ranks than GPUs share them; the share is
    then apportioned). One GPU visible (``CUDA_VISIBLE_DEVICES`` per rank, SLURM's
    ``--gpus-per-task``), one local process, or no launcher: every visible GPU is kept.
    """
    rank = local_rank(env)
    gpus = {index: s for s in sensors if (index := _gpu_index(s)) is not None}
    if rank is None or len(gpus) < 2:
        return sensors, []
    size = _local_world_size(env)
    if size == 1 or (size is None and rank[0] == 0):
        return sensors, []
    target = rank[0] % (max(gpus) + 1)
    keep = gpus.get(target)
    others = [s for s in gpus.values() if s is not keep]
    for sensor in others:
        sensor.close()
    of = "" if size is None else f" of {size}"
    who = f"local rank {rank[0]}{of} ({rank[1]}={rank[0]})"
    if keep is None:
        note = (
            f"gpu: {who} uses cuda:{target} by the cuda:<local rank> convention; it is not measured"
        )
    else:
        note = (
            f"gpu: {who} measures {keep.device} only, the GPU it uses by the cuda:<local rank>"
            f" convention; {', '.join(s.device for s in others)} belong to the other local"
            " ranks (give each rank its own CUDA_VISIBLE_DEVICES to choose otherwise)"
        )
    return [s for s in sensors if s not in others], [note]


def _detect_rapl(
    powercap_root: Path, clock: Callable[[], float]
) -> tuple[list[RaplSensor], str | None, list[str]]:
    """RAPL sensors, or none with the reason the model is used instead."""
    try:
        sensors = open_rapl_sensors(powercap_root, clock=clock)
    except RaplPermissionError as exc:
        logger.warning("RAPL permission denied; CPU power will be estimated; %s", exc.hint)
        return [], "RAPL permission denied", [f"cpu: RAPL permission denied → model; {exc.hint}"]
    except SensorError as exc:
        return [], "no RAPL access", [f"cpu: RAPL not available: {exc} → model"]
    notes = [f"{s.device}: RAPL counter ({s.info.name})" for s in sensors]
    if not any(s.device.startswith("dram:") for s in sensors):
        notes.append("dram: no RAPL DRAM domain (usual on AMD and client CPUs): not measured")
    return sensors, None, notes


def _detect_node_wide(
    powercap_root: Path,
    cpuinfo_path: Path,
    psutil_module: Any,
    clock: Callable[[], float],
) -> tuple[list[Sensor], list[str]]:
    rapl, reason, notes = _detect_rapl(powercap_root, clock)
    if reason is None:
        return list(rapl), notes
    try:
        model = open_cpu_model_sensor(
            cpuinfo_path=cpuinfo_path, psutil_module=psutil_module, reason=reason, clock=clock
        )
    except Exception as exc:  # psutil missing or broken: degrade, never fail the run
        return [], [*notes, f"cpu: not measured (CPU model unavailable: {exc})"]
    notes.append(f"{model.device}: estimated from CPU load × TDP {model.tdp.tdp_w:g} W (model)")
    return [model], notes


def detect_sensors(
    *,
    env: Mapping[str, str] = os.environ,
    powercap_root: Path = POWERCAP_ROOT,
    pynvml_module: NvmlApi | None = None,
    include_node_wide: bool | None = None,
    include_gpus: bool = True,
    cpuinfo_path: Path = CPUINFO_PATH,
    psutil_module: Any = None,
    clock: Callable[[], float] = time.monotonic,
    gpu_backends: Sequence[GpuBackend] = GPU_BACKENDS,
) -> Detection:
    """The best source per device for this process. Never raises for a missing source.

    GPUs: every backend of ``gpu_backends`` (NVML, mapped through CUDA_VISIBLE_DEVICES);
    ``pynvml_module`` replaces the NVML backend's module (a stand-in such as
    :class:`greenprof.sensors.testing.ScriptedNvml`). With several local ranks sharing
    the visible GPUs, each rank measures its own (see :func:`_owned_gpus`). CPU and DRAM:
    RAPL, else the CPU load × TDP model. Node-wide sensors (CPU, DRAM) are opened only on
    local rank 0 (``LOCAL_RANK``, ``SLURM_LOCALID``, ``OMPI_COMM_WORLD_LOCAL_RANK``) so a
    node is counted once; ``include_node_wide`` overrides that choice.
    """
    if pynvml_module is not None:
        gpu_backends = [
            NvmlBackend(pynvml_module) if isinstance(backend, NvmlBackend) else backend
            for backend in gpu_backends
        ]
    sensors: list[Sensor] = []
    notes: list[str] = []
    if include_gpus:
        gpu_sensors, gpu_notes = _detect_gpus(gpu_backends, env, clock)
        sensors.extend(gpu_sensors)
        notes.extend(gpu_notes)
    rank = local_rank(env)
    node_wide = include_node_wide if include_node_wide is not None else rank is None or rank[0] == 0
    if node_wide:
        cpu_sensors, cpu_notes = _detect_node_wide(
            powercap_root, cpuinfo_path, psutil_module, clock
        )
        sensors.extend(cpu_sensors)
        notes.extend(cpu_notes)
    elif include_node_wide is False:
        notes.append("cpu, dram: not measured (include_node_wide=False)")
    elif rank is not None:
        notes.append(
            f"cpu, dram: measured by local rank 0 only ({rank[1]}={rank[0]} here),"
            " so the node is counted once"
        )
    return Detection(sensors=tuple(sensors), notes=tuple(notes))


def doctor_lines(detection: Detection) -> list[str]:
    """What ``greenprof doctor`` prints: one block per device, then the decisions."""
    lines = ["devices:"] if detection.sensors else ["devices: none measured"]
    for sensor in detection.sensors:
        info = sensor.info
        extras = [f"uuid {info.uuid}"] if info.uuid else []
        if info.power_limit_w is not None:
            extras.append(f"power limit {info.power_limit_w:g} W")
        if info.node_wide:
            extras.append("node-wide")
        suffix = f" [{', '.join(extras)}]" if extras else ""
        lines.append(f"  {info.device:<7} {info.method:<17} {info.name}{suffix}")
        if info.note:
            lines.append(f"          note: {info.note}")
    if detection.notes:
        lines.append("decisions:")
        lines.extend(f"  - {note}" for note in detection.notes)
    return lines


# Recipes: how the sampler's helper process opens the same sensors (greenprof.sampler) ------


def sensor_recipe(sensor: object) -> SensorRecipe | None:
    """How to open ``sensor`` again in the sampler's helper process, or None when it cannot
    be: a sensor opened with a stand-in (a scripted NVML, an injected clock or file reader)
    is read where it is, on a thread of this process, and so is any sensor greenprof does
    not know (users' own, unless made with :func:`~greenprof.sensors.recipe.spawnable`).
    The detected sensors say it themselves (``NvmlSensor.recipe()``, ``RaplSensor.recipe()``).
    """
    recipe = recipe_of(sensor)
    if recipe is not None:
        return recipe
    if isinstance(sensor, NvmlSensor | RaplSensor):
        return sensor.recipe()
    return None


def reopen_nvml(
    device: str,
    uuid: str,
    *,
    note: str = "",
    details_period_s: float | None = None,
    mig_id: str | None = None,
) -> NvmlSensor:
    """The GPU with ``uuid`` as ``device``, in a process of its own (the sampler's helper):
    its own ``nvmlInit``, released when the sensor closes."""
    api = load_pynvml()
    session = NvmlSession(api)
    try:
        handle = api.nvmlDeviceGetHandleByUUID(uuid)
        return NvmlSensor(
            api,
            handle,
            device=device,
            uuid=uuid,
            note=note,
            details_period_s=details_period_s,
            session=session,
            mig_id=mig_id,
        )
    finally:
        session.release()  # the sensor holds it now (or nothing does: shut down)


def reopen_rapl(zone_dir: str, device: str, name: str) -> RaplSensor:
    """The RAPL zone in ``zone_dir`` as ``device`` (the sampler's helper process)."""
    return RaplSensor(Path(zone_dir), device, name)
