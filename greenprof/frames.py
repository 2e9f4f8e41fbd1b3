"""A run's steps as a pandas DataFrame, for notebooks and ad-hoc analysis.

pandas is not a dependency of greenprof: it is imported here, on the first call, and a
missing pandas is a :class:`~greenprof.errors.GreenprofError` that says how to install
it. ``import greenprof`` never loads it.

Example::

    from greenprof.frames import steps_frame

    frame = steps_frame(greenprof.RunStore("runs.db"), "resnet18")
    frame.groupby("epoch")["energy_j"].sum()
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from greenprof.errors import GreenprofError
from greenprof.records import RunInfo, StepRecord, step_flag_names
from greenprof.store.reader import RunStore

STEP_FRAME_COLUMNS = (
    "epoch",
    "start_s",
    "end_s",
    "duration_s",
    "time",
    "samples",
    "energy_j",
    "energy_uncertainty_j",
    "co2_g",
    "step_j_per_sample",
    "power_w",
    "interpolated",
    "loss",
    "flags",
)
"""The columns of :func:`steps_frame` before the per-device ones; the index is ``step``.

- ``time``: the step's start as a UTC timestamp (``started_at + start_s``).
- ``energy_j``: all devices together; ``co2_g``: its emissions (NaN when the run has no
  carbon settings); ``step_j_per_sample`` and ``power_w``: that energy per sample and
  per second of the step (NaN without samples, or for a zero-length step). The run's
  J/sample is run energy over samples (:mod:`greenprof.metrics`), not the mean of these.
- ``energy_uncertainty_j``: bound on the error of ``energy_j`` (>= 95 % of the time), NaN
  where not known. Summing it overstates a window's bound (the boundaries contiguous steps
  share cancel): :func:`greenprof.step_windows.step_window_bounds` gives the window's.
- ``flags``: the names of the step's flags, comma-separated (``recovered``,
  ``device_missing``, ``reading_rejected``, ``counter_reset``, ``poll_gap``), empty when none.
- Then one column per device, ``energy_j:<device>`` (``energy_j:gpu:0``), NaN where a
  step has no energy for that device.
"""

DEVICE_COLUMN_PREFIX = "energy_j:"

PANDAS_MISSING = (
    "greenprof's DataFrame export needs pandas, which is not installed: pip install pandas"
)


def steps_frame(
    store: RunStore,
    run: int | str | RunInfo,
    *,
    import_module: Callable[[str], ModuleType] = importlib.import_module,
) -> Any:
    """The steps of ``run`` (an id, a name for its newest run, or a :class:`RunInfo`) as
    a ``pandas.DataFrame`` indexed by step, one row per stored step (see
    :data:`STEP_FRAME_COLUMNS`). Streams the steps in batches, so memory is the frame's.

    Raises :class:`~greenprof.errors.GreenprofError` when pandas is missing, and
    :class:`~greenprof.errors.RunNotFound` for an unknown run.

    Example::

        frame = steps_frame(store, "resnet18")
        frame["power_w"].plot()
    """
    pandas = _pandas(import_module)
    info = run if isinstance(run, RunInfo) else store.run(run)
    steps = list(store.iter_steps(info.run_id))
    return frame_of_steps(pandas, info, steps)


def frame_of_steps(pandas: ModuleType, run: RunInfo, steps: Sequence[StepRecord]) -> Any:
    """The frame for ``steps`` of ``run`` (pure apart from pandas itself)."""
    devices = _device_order(run, steps)
    nan = float("nan")
    co2_g_per_j = None if run.carbon is None else run.carbon.co2_g(1.0)
    columns: dict[str, list[Any]] = {name: [] for name in STEP_FRAME_COLUMNS}
    per_device: dict[str, list[float]] = {device: [] for device in devices}
    for step in steps:
        duration_s = step.end_s - step.start_s
        columns["epoch"].append(step.epoch)
        columns["start_s"].append(step.start_s)
        columns["end_s"].append(step.end_s)
        columns["duration_s"].append(duration_s)
        columns["time"].append(run.started_at + step.start_s)
        columns["samples"].append(step.samples)
        columns["energy_j"].append(step.energy_j)
        bound_j = step.energy_uncertainty_j
        columns["energy_uncertainty_j"].append(nan if bound_j is None else bound_j)
        columns["co2_g"].append(nan if co2_g_per_j is None else step.energy_j * co2_g_per_j)
        columns["step_j_per_sample"].append(step.energy_j / step.samples if step.samples else nan)
        columns["power_w"].append(step.energy_j / duration_s if duration_s > 0 else nan)
        columns["interpolated"].append(step.interpolated)
        columns["loss"].append(nan if step.loss is None else step.loss)
        columns["flags"].append(",".join(step_flag_names(step.flags)))
        for device, values in per_device.items():
            values.append(step.device_energy_j.get(device, nan))
    data: dict[str, Any] = dict(columns)
    data["time"] = pandas.to_datetime(columns["time"], unit="s", utc=True)
    data["samples"] = pandas.array(columns["samples"], dtype="Int64")
    data["epoch"] = pandas.array(columns["epoch"], dtype="int64")
    data["interpolated"] = pandas.array(columns["interpolated"], dtype="bool")
    data["flags"] = pandas.array(columns["flags"], dtype="string")
    for device, values in per_device.items():
        data[DEVICE_COLUMN_PREFIX + device] = pandas.array(values, dtype="float64")
    index = pandas.Index([step.step for step in steps], name="step", dtype="int64")
    frame = pandas.DataFrame(data, index=index)
    frame.attrs.update({"run_id": run.run_id, "run_name": run.name})
    return frame


def _device_order(run: RunInfo, steps: Sequence[StepRecord]) -> list[str]:
    """The run's devices in their stored order, then any only the steps name."""
    order = [device.device for device in run.devices]
    seen = set(order)
    for step in steps:
        for device in step.device_energy_j:
            if device not in seen:
                seen.add(device)
                order.append(device)
    return order


def _pandas(import_module: Callable[[str], ModuleType]) -> ModuleType:
    try:
        return import_module("pandas")
    except ImportError:
        raise GreenprofError(PANDAS_MISSING) from None
