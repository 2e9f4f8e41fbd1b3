"""Power and energy sensors, one module per source.

- ``base``: the contract: :class:`Sensor` (what every sensor offers), :func:`as_sensor`
  (completes a sensor written before it), :class:`GpuBackend` (one GPU vendor).
- ``guard``: :class:`ReadingGuard`, the validation every reading passes before use.
- ``nvml``: NVIDIA GPUs through NVML (energy counter, else power integration), written
  against ``nvml_api.NvmlApi``, the typed list of NVML calls it makes.
- ``rapl``: CPU package and DRAM energy through Linux powercap (RAPL).
- ``cpu_model``: CPU-load × TDP estimate where RAPL is closed (labelled ``model``).
- ``fake``: simulated and replayed sensors for demos and tests.
- ``share``: :func:`apportion`, a shared device's energy attributed to this run (node-wide
  CPU/DRAM by CPU-time share, ``cpu_share``; a shared GPU by its processes' SM
  utilization, ``nvml_share``).
- ``detect``: picks the best available source per device (GPUs from ``GPU_BACKENDS``).
- ``testing``: :class:`~greenprof.sensors.testing.ScriptedNvml`, a scripted NVML to test
  code that measures GPUs without one (imported only when asked for).
"""

from typing import TYPE_CHECKING, Any

from greenprof.records import Reading
from greenprof.sensors.base import (
    GpuBackend,
    GpuOpenResult,
    PowerSensor,
    Sensor,
    ShareableSensor,
    as_sensor,
    describe,
)

if TYPE_CHECKING:
    from greenprof.sensors.cpu_share import CpuTimeShare
    from greenprof.sensors.guard import GuardStats, ReadingGuard
    from greenprof.sensors.share import ApportionedSensor, ApportionSummary, apportion

_LAZY = {
    "GuardStats": "greenprof.sensors.guard",
    "ReadingGuard": "greenprof.sensors.guard",
    "ApportionSummary": "greenprof.sensors.share",
    "ApportionedSensor": "greenprof.sensors.share",
    "CpuTimeShare": "greenprof.sensors.cpu_share",
    "apportion": "greenprof.sensors.share",
}
"""Loaded on first use: ``import greenprof`` stays light (the profiler imports them when
it starts)."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'greenprof.sensors' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "ApportionSummary",
    "ApportionedSensor",
    "CpuTimeShare",
    "GpuBackend",
    "GpuOpenResult",
    "GuardStats",
    "PowerSensor",
    "Reading",
    "ReadingGuard",
    "Sensor",
    "ShareableSensor",
    "apportion",
    "as_sensor",
    "describe",
]
