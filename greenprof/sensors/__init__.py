"""Power and energy sensors, one module per source.

- ``base``: the :class:`PowerSensor` protocol.
- ``nvml``: NVIDIA GPUs through NVML (energy counter, else power integration).
- ``rapl``: CPU package and DRAM energy through Linux powercap (RAPL).
- ``cpu_model``: CPU-load × TDP estimate where RAPL is closed (labelled ``model``).
- ``fake``: simulated and replayed sensors for demos and tests.
- ``detect``: picks the best available source per device.
"""

from greenprof.sensors.base import PowerSensor, describe

__all__ = ["PowerSensor", "describe"]
