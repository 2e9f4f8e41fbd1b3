"""greenprof: per-step energy and carbon footprint of deep-learning training.

Public API::

    with greenprof.Profiler("resnet18-bs64", country="DEU") as prof:
        for x, y in loader:
            with prof.step(samples=len(x)):
                train_step(x, y)

    store = greenprof.RunStore()          # read back runs and steps

Subpackages: ``sensors`` (NVML, RAPL, CPU model, simulated), ``store`` (SQLite),
``hooks`` (PyTorch, Lightning, Transformers, Keras, TensorFlow), ``tui`` (Textual),
``exporters`` (CSV, CodeCarbon CSV, Prometheus, reports). Importing ``greenprof`` loads
no framework, UI or vendor library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from greenprof._version import __version__
from greenprof.active import current_profiler, profile
from greenprof.errors import (
    ConfigError,
    GreenprofError,
    NotAGreenprofDatabase,
    RunNotFound,
    SchemaTooNew,
    SensorError,
    StoreError,
)
from greenprof.records import (
    CarbonSettings,
    DeviceInfo,
    EpochRecord,
    Reading,
    RunInfo,
    SampleRecord,
    StepRecord,
)

if TYPE_CHECKING:  # imported on first use (see __getattr__); mypy sees them here
    from greenprof.config import ProfilerConfig
    from greenprof.profiler import Profiler
    from greenprof.stats import ProfilerStats
    from greenprof.store.reader import RunStore

_LAZY = {
    "Profiler": "greenprof.profiler",
    "ProfilerConfig": "greenprof.config",
    "ProfilerStats": "greenprof.stats",
    "RunStore": "greenprof.store.reader",
}
"""Public names whose modules pull the profiler, its settings (carbon data, job
detection), the sampler or the store: imported when first used, so that ``import
greenprof`` stays quick (DESIGN: ≤ 100 ms) for a script that only wants a record type
or whose Profiler is started later, and for every ``greenprof`` command."""


if not TYPE_CHECKING:  # hidden from mypy, which would otherwise take any name as Any

    def __getattr__(name: str) -> Any:
        """``greenprof.Profiler`` and ``from greenprof import Profiler``: the lazy names."""
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'greenprof' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # once imported, an ordinary attribute
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CarbonSettings",
    "ConfigError",
    "DeviceInfo",
    "EpochRecord",
    "GreenprofError",
    "NotAGreenprofDatabase",
    "Profiler",
    "ProfilerConfig",
    "ProfilerStats",
    "Reading",
    "RunInfo",
    "RunNotFound",
    "RunStore",
    "SampleRecord",
    "SchemaTooNew",
    "SensorError",
    "StepRecord",
    "StoreError",
    "__version__",
    "current_profiler",
    "profile",
]
