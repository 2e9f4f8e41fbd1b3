"""Power and energy sensors, one module per source.

- ``base``: the :class:`PowerSensor` protocol.
- ``guard``: :class:`ReadingGuard`, the validation every reading passes before use.
- ``nvml``: NVIDIA GPUs through NVML (energy counter, else power integration).
- ``rapl``: CPU package and DRAM energy through Linux powercap (RAPL).
- ``cpu_model``: CPU-load × TDP estimate where RAPL is closed (labelled ``model``).
- ``fake``: simulated and replayed sensors for demos and tests.
- ``share``: :func:`apportion`, a shared device's energy attributed to this run (node-wide
  CPU/DRAM by CPU-time share, a shared GPU by its processes' SM utilization).
- ``detect``: picks the best available source per device.
"""

from greenprof.sensors.base import PowerSensor, describe
from greenprof.sensors.guard import GuardStats, ReadingGuard
from greenprof.sensors.share import ApportionedSensor, ApportionSummary, CpuTimeShare, apportion

__all__ = [
    "ApportionSummary",
    "ApportionedSensor",
    "CpuTimeShare",
    "GuardStats",
    "PowerSensor",
    "ReadingGuard",
    "apportion",
    "describe",
]
