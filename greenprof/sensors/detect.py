"""Pick the best source per device and say why: NVML for GPUs, RAPL for CPU/DRAM, else a model."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenprof.errors import SensorError
from greenprof.sensors.base import PowerSensor, describe
from greenprof.sensors.cpu_model import CPUINFO_PATH, open_cpu_model_sensor
from greenprof.sensors.nvml import open_nvml
from greenprof.sensors.rapl import (
    POWERCAP_ROOT,
    RaplPermissionError,
    RaplSensor,
    open_rapl_sensors,
)

logger = logging.getLogger(__name__)

# Launchers' per-node rank variables: torchrun/accelerate, SLURM srun, Open MPI mpirun.
LOCAL_RANK_VARS = ("LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK")


@dataclass(frozen=True, slots=True)
class Detection:
    """The sensors chosen for this process and one note per decision."""

    sensors: tuple[PowerSensor, ...]
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


def _detect_gpus(
    pynvml_module: Any, env: Mapping[str, str], clock: Callable[[], float]
) -> tuple[list[PowerSensor], list[str]]:
    try:
        result = open_nvml(pynvml_module, env, clock)
    except SensorError as exc:
        return [], [f"gpu: {exc}"]
    except Exception as exc:  # a broken driver stack must not stop training
        logger.debug("NVML detection failed", exc_info=True)
        return [], [f"gpu: NVML failed unexpectedly ({type(exc).__name__}: {exc})"]
    notes = [f"gpu: {note}" for note in result.notes]
    if not result.sensors:
        notes.append("gpu: no GPU measured")
    for sensor in result.sensors:
        notes.append(f"{sensor.device}: NVML {sensor.info.method} ({sensor.info.name})")
    return list(result.sensors), notes


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
) -> tuple[list[PowerSensor], list[str]]:
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
    pynvml_module: Any = None,
    include_node_wide: bool | None = None,
    include_gpus: bool = True,
    cpuinfo_path: Path = CPUINFO_PATH,
    psutil_module: Any = None,
    clock: Callable[[], float] = time.monotonic,
) -> Detection:
    """The best source per device for this process. Never raises for a missing source.

    GPUs: NVML, mapped through CUDA_VISIBLE_DEVICES. CPU and DRAM: RAPL, else the
    CPU load × TDP model. Node-wide sensors (CPU, DRAM) are opened only on local
    rank 0 (``LOCAL_RANK``, ``SLURM_LOCALID``, ``OMPI_COMM_WORLD_LOCAL_RANK``) so a
    node is counted once; ``include_node_wide`` overrides that choice.
    """
    sensors: list[PowerSensor] = []
    notes: list[str] = []
    if include_gpus:
        gpu_sensors, gpu_notes = _detect_gpus(pynvml_module, env, clock)
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
        info = describe(sensor)
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
