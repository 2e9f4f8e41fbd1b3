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

from greenprof._version import __version__
from greenprof.config import ProfilerConfig
from greenprof.errors import (
    ConfigError,
    GreenprofError,
    NotAGreenprofDatabase,
    RunNotFound,
    SchemaTooNew,
    SensorError,
    StoreError,
)
from greenprof.profiler import Profiler, current_profiler, profile
from greenprof.records import (
    CarbonSettings,
    DeviceInfo,
    EpochRecord,
    Reading,
    RunInfo,
    SampleRecord,
    StepRecord,
)
from greenprof.stats import ProfilerStats
from greenprof.store.reader import RunStore

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
