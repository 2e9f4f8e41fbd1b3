"""CodeCarbon-compatible ``emissions.csv``: one row per run, CodeCarbon's columns and units.

``greenprof export codecarbon [RUN...] [--tag K=V] [--since ISO] [--until ISO] [-o emissions.csv]``

The columns, their order and their units follow ``codecarbon.output_methods.
emissions_data.EmissionsData`` (checked against the installed codecarbon by a test), so
CodeCarbon's dashboards and scripts read greenprof runs unchanged. Mapping:

==========================  ============================================================
``timestamp``               end of the run, ``%Y-%m-%dT%H:%M:%S`` in UTC (CodeCarbon
                            writes local time in the same format)
``project_name``            the run's name
``run_id``                  a UUID derived from the run (stable across exports)
``experiment_id``           the run's ``experiment_id`` tag, else empty
``duration``                s
``emissions``               kg CO2e (empty when the run has no grid intensity)
``emissions_rate``          kg CO2e / s
``cpu/gpu/ram_power``       mean power over the run, W, × PUE (as CodeCarbon does);
                            ``ram`` is greenprof's ``dram`` kind
``cpu/gpu/ram_energy``      kWh × PUE; ``energy_consumed`` is all devices, kWh × PUE
``water_consumed``          0 (greenprof does not estimate water; ``wue`` is 0)
``country_*``, ``region``   from the run's carbon settings
``cpu_model``/``gpu_model`` device names (``2 x NVIDIA H100``); ``gpu_count`` counted
``*_utilization_percent``   mean of the stored samples where a sensor reported it
``tracking_mode``           ``machine`` (greenprof measures whole devices)
==========================  ============================================================

Fields greenprof does not record (``os``, ``python_version``, ``codecarbon_version``,
``cpu_count``, ``longitude``, ``latitude``, ``ram_total_size``, cloud fields) are empty.
codecarbon is not imported by this module. Text cells that a spreadsheet would run as a
formula get a ``'`` in front, as in every greenprof CSV (:func:`greenprof.textsafe.csv_value`).
"""

from __future__ import annotations

import csv
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TextIO

from greenprof.errors import ConfigError
from greenprof.records import RunInfo
from greenprof.textsafe import csv_value

if TYPE_CHECKING:
    from greenprof.store.reader import RunStore

EMISSIONS_COLUMNS = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions",
    "emissions_rate", "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy",
    "ram_energy", "energy_consumed", "water_consumed", "country_name", "country_iso_code",
    "region", "cloud_provider", "cloud_region", "os", "python_version", "codecarbon_version",
    "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude",
    "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
)  # fmt: skip
"""CodeCarbon 3.x ``EmissionsData`` fields, in order (guarded by a test)."""

_RUN_NAMESPACE = uuid.UUID("8f0c6a52-4f5e-4d1a-9a57-6c1f3e0b7a11")
_KIND_COLUMN = {"cpu": "cpu", "gpu": "gpu", "dram": "ram"}


def run_uuid(run: RunInfo) -> str:
    """A UUID for ``run``, the same on every export (CodeCarbon's run ids are UUIDs)."""
    return str(uuid.uuid5(_RUN_NAMESPACE, f"{run.host}|{run.pid}|{run.started_at!r}|{run.name}"))


def _country_names() -> dict[str, str]:
    try:
        from greenprof.carbon import list_zones

        return {zone.code: zone.name for zone in list_zones()}
    except (ConfigError, OSError, ValueError, KeyError):
        return {}


def _models(names: list[str]) -> str:
    counts = Counter(name for name in names if name)
    return ", ".join(f"{count} x {name}" for name, count in counts.items())


def _utilization(store: RunStore, run_id: int) -> dict[str, float]:
    """Mean utilization per CodeCarbon column prefix, from the run's samples."""
    return {
        _KIND_COLUMN[kind]: mean
        for kind, mean in store.utilization_by_kind(run_id).items()
        if kind in _KIND_COLUMN
    }


def emissions_row(store: RunStore, run: RunInfo, country_names: dict[str, str]) -> list[object]:
    """One ``emissions.csv`` row for ``run``, in :data:`EMISSIONS_COLUMNS` order."""
    pue = run.carbon.pue if run.carbon else 1.0
    duration = run.duration_s
    per_device = store.device_energy_j(run.run_id)
    energy_kwh = {"cpu": 0.0, "gpu": 0.0, "ram": 0.0}
    for dev in run.devices:
        column = _KIND_COLUMN.get(dev.kind)
        if column is not None:
            energy_kwh[column] += per_device.get(dev.device, 0.0) / 3.6e6 * pue
    power_w = {
        column: (kwh * 3.6e6 / duration if duration > 0 else 0.0)
        for column, kwh in energy_kwh.items()
    }
    co2_g = run.co2_g
    emissions_kg = None if co2_g is None else co2_g / 1000
    rate = None if emissions_kg is None or duration <= 0 else emissions_kg / duration
    ended = run.ended_at if run.ended_at is not None else run.started_at + duration
    country = run.carbon.country if run.carbon else None
    gpus = [dev.name for dev in run.devices if dev.kind == "gpu"]
    cpus = [dev.name for dev in run.devices if dev.kind == "cpu"]
    util = _utilization(store, run.run_id)
    values: dict[str, object] = {
        "timestamp": datetime.fromtimestamp(ended, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        "project_name": run.name,
        "run_id": run_uuid(run),
        "experiment_id": run.tags.get("experiment_id", ""),
        "duration": duration,
        "emissions": emissions_kg,
        "emissions_rate": rate,
        "cpu_power": power_w["cpu"],
        "gpu_power": power_w["gpu"],
        "ram_power": power_w["ram"],
        "cpu_energy": energy_kwh["cpu"],
        "gpu_energy": energy_kwh["gpu"],
        "ram_energy": energy_kwh["ram"],
        "energy_consumed": run.energy_j / 3.6e6 * pue,
        "water_consumed": 0.0,
        "country_name": country_names.get(country or "", ""),
        "country_iso_code": country or "",
        "region": (run.carbon.region if run.carbon else None) or "",
        "cpu_model": _models(cpus),
        "gpu_count": len(gpus),
        "gpu_model": _models(gpus),
        "tracking_mode": "machine",
        "cpu_utilization_percent": util.get("cpu", 0.0),
        "gpu_utilization_percent": util.get("gpu", 0.0),
        "ram_utilization_percent": util.get("ram", 0.0),
        "ram_used_gb": 0.0,
        "on_cloud": "N",
        "pue": pue,
        "wue": 0.0,
    }
    return [values.get(column, "") for column in EMISSIONS_COLUMNS]


def write_emissions_csv(store: RunStore, runs: Sequence[RunInfo], out: TextIO) -> int:
    """Write CodeCarbon's ``emissions.csv`` (header and one row per run); return the rows."""
    names = _country_names() if any(run.carbon and run.carbon.country for run in runs) else {}
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EMISSIONS_COLUMNS)
    for run in runs:
        writer.writerow([csv_value(value) for value in emissions_row(store, run, names)])
    return len(runs)
