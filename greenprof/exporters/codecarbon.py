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
``experiment_id``           the run's ``experiment_id`` tag, else ``unknown``
``duration``                s
``emissions``               kg CO2e of ``energy_consumed`` (empty when the run has no
                            grid intensity)
``emissions_rate``          kg CO2e / s
``cpu/gpu/ram_power``       mean power over the run, W, × PUE (as CodeCarbon does);
                            ``ram`` is greenprof's ``dram`` kind
``cpu/gpu/ram_energy``      kWh × PUE; ``energy_consumed`` is their sum, kWh × PUE
``ram_*`` without DRAM      **model**: CodeCarbon's RAM power model (5 W per estimated
                            DIMM on x86, from the machine's memory size, at least
                            10 W) × duration, as CodeCarbon records RAM it cannot
                            measure; see :func:`ram_power_w`
``water_consumed``          0 (greenprof does not estimate water; ``wue`` is 0)
``country_*``, ``region``   from the run's carbon settings, else ``unknown``
``cpu_model``/``gpu_model`` device names (``2 x NVIDIA H100``); ``gpu_count`` counted
``*_utilization_percent``   mean of the stored samples where a sensor reported it
``tracking_mode``           ``machine`` (greenprof measures whole devices)
==========================  ============================================================

Text columns are never empty (``unknown`` where greenprof does not know): pandas reads an
all-empty column as float64 NaN, and CodeCarbon's dashboard calls ``.upper()`` on the
country code (``'float' object has no attribute 'upper'``). Numeric fields greenprof
does not record (``cpu_count``, ``longitude``, ``latitude``, ``ram_total_size`` when the
memory size is unknown) are empty, which pandas reads as float NaN like CodeCarbon's.

Writing to an existing file appends, as CodeCarbon does (:func:`export_emissions`): the
file's header must be this layout, else the export is refused with the fix in the
message; runs already in the file (same ``run_id``) are not written twice.
codecarbon is not imported by this module. Text cells that a spreadsheet would run as a
formula get a ``'`` in front, as in every greenprof CSV (:func:`greenprof.textsafe.csv_value`).
"""

from __future__ import annotations

import csv
import io
import math
import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from greenprof.errors import ConfigError
from greenprof.exporters._common import ExportError, open_output, output_target
from greenprof.records import RunInfo
from greenprof.textsafe import csv_value
from greenprof.units import G_PER_KG, J_PER_KWH

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

TEXT_COLUMNS = frozenset(
    {
        "timestamp", "project_name", "run_id", "experiment_id", "country_name",
        "country_iso_code", "region", "cloud_provider", "cloud_region", "os",
        "python_version", "codecarbon_version", "cpu_model", "gpu_model", "tracking_mode",
        "on_cloud",
    }
)  # fmt: skip
"""The ``str`` fields of CodeCarbon's ``EmissionsData``: never written empty."""

UNKNOWN = "unknown"
"""A text field greenprof does not know (a country code CodeCarbon's dashboard accepts)."""

RAM_METHOD = "model"
"""How ``ram_*`` is obtained when a run has no DRAM sensor (greenprof's method name)."""

_RUN_NAMESPACE = uuid.UUID("8f0c6a52-4f5e-4d1a-9a57-6c1f3e0b7a11")
_KIND_COLUMN = {"cpu": "cpu", "gpu": "gpu", "dram": "ram"}
_B_PER_GB = 1024**3  # CodeCarbon's B_TO_GB

MemoryOf = Callable[[RunInfo], float | None]
"""The memory size (GB) of the machine a run ran on, or None when unknown."""


def run_uuid(run: RunInfo) -> str:
    """A UUID for ``run``, the same on every export (CodeCarbon's run ids are UUIDs)."""
    return str(uuid.uuid5(_RUN_NAMESPACE, f"{run.host}|{run.pid}|{run.started_at!r}|{run.name}"))


def ram_power_w(memory_gb: float | None, *, arm: bool = False) -> float:
    """CodeCarbon 3's RAM power model (``codecarbon.external.ram.RAM._calculate_ram_power``,
    checked against it by a test): DIMMs estimated from the memory size, 5 W each on x86
    (1.5 W on ARM) with less per DIMM past 4, 8 and 16 DIMMs, at least 2 DIMMs' worth.
    An unknown size gets that minimum (10 W on x86): the least CodeCarbon ever counts."""
    per_dimm, least = (1.5, 3.0) if arm else (5.0, 10.0)
    if memory_gb is None:
        return least
    dimms = _dimm_count(memory_gb)
    full = min(dimms, 4)
    tiers = ((4, 8, 0.9), (8, 16, 0.8), (16, 10**9, 0.7))
    total = per_dimm * full
    for low, high, share in tiers:
        total += per_dimm * share * max(0, min(dimms, high) - low)
    return max(least, total)


def _dimm_count(memory_gb: float) -> int:
    """CodeCarbon's DIMM-count heuristic (``RAM._estimate_dimm_count``)."""
    if memory_gb <= 2:
        return 1
    if memory_gb <= 16:
        return 2
    if memory_gb <= 64:
        return 4
    if memory_gb <= 128:
        return 8
    for size_gb in (128, 64, 32, 16, 8, 4):
        if size_gb <= memory_gb / 8:
            return min(math.ceil(memory_gb / size_gb), 32)
    return 8


def this_machine_memory_gb(run: RunInfo) -> float | None:
    """The production :data:`MemoryOf`: this machine's memory for runs recorded on this
    host, None (unknown) for runs from other hosts."""
    if run.host != socket.gethostname():
        return None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / _B_PER_GB
    except (ValueError, OSError, AttributeError):
        return None


def _country_names() -> dict[str, str]:
    try:
        from greenprof.carbon import list_zones

        return {zone.code: zone.name for zone in list_zones()}
    except (ConfigError, OSError, ValueError, KeyError):
        return {}


def _models(names: list[str]) -> str:
    counts = Counter(name for name in names if name)
    return ", ".join(f"{count} x {name}" for name, count in counts.items()) or UNKNOWN


def _utilization(store: RunStore, run_id: int) -> dict[str, float]:
    """Mean utilization per CodeCarbon column prefix, from the run's samples."""
    return {
        _KIND_COLUMN[kind]: mean
        for kind, mean in store.utilization_by_kind(run_id).items()
        if kind in _KIND_COLUMN
    }


def emissions_row(
    store: RunStore,
    run: RunInfo,
    country_names: dict[str, str],
    *,
    memory_of: MemoryOf = this_machine_memory_gb,
) -> list[object]:
    """One ``emissions.csv`` row for ``run``, in :data:`EMISSIONS_COLUMNS` order."""
    pue = run.carbon.pue if run.carbon else 1.0
    duration = run.duration_s
    per_device = store.device_energy_j(run.run_id)
    energy_j = {"cpu": 0.0, "gpu": 0.0, "ram": 0.0}
    for dev in run.devices:
        column = _KIND_COLUMN.get(dev.kind)
        if column is not None:
            energy_j[column] += per_device.get(dev.device, 0.0)
    memory_gb = memory_of(run)
    modelled_ram_j = 0.0
    if not any(dev.kind == "dram" for dev in run.devices):
        modelled_ram_j = ram_power_w(memory_gb) * max(duration, 0.0)
        energy_j["ram"] = modelled_ram_j
    energy_kwh = {column: joules / J_PER_KWH * pue for column, joules in energy_j.items()}
    power_w = {
        column: (kwh * J_PER_KWH / duration if duration > 0 else 0.0)
        for column, kwh in energy_kwh.items()
    }
    total_j = run.energy_j + modelled_ram_j
    emissions_kg = None if run.carbon is None else run.carbon.co2_g(total_j) / G_PER_KG
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
        "experiment_id": run.tags.get("experiment_id") or UNKNOWN,
        "duration": duration,
        "emissions": emissions_kg,
        "emissions_rate": rate,
        "cpu_power": power_w["cpu"],
        "gpu_power": power_w["gpu"],
        "ram_power": power_w["ram"],
        "cpu_energy": energy_kwh["cpu"],
        "gpu_energy": energy_kwh["gpu"],
        "ram_energy": energy_kwh["ram"],
        "energy_consumed": total_j / J_PER_KWH * pue,
        "water_consumed": 0.0,
        "country_name": country_names.get(country or "") or country or UNKNOWN,
        "country_iso_code": country or UNKNOWN,
        "region": (run.carbon.region if run.carbon else None) or UNKNOWN,
        "cpu_model": _models(cpus),
        "gpu_count": len(gpus),
        "gpu_model": _models(gpus),
        "ram_total_size": memory_gb,
        "tracking_mode": "machine",
        "cpu_utilization_percent": util.get("cpu", 0.0),
        "gpu_utilization_percent": util.get("gpu", 0.0),
        "ram_utilization_percent": util.get("ram", 0.0),
        "ram_used_gb": 0.0,
        "on_cloud": "N",
        "pue": pue,
        "wue": 0.0,
    }
    return [
        values.get(column, UNKNOWN if column in TEXT_COLUMNS else None)
        for column in EMISSIONS_COLUMNS
    ]


def write_emissions_csv(
    store: RunStore,
    runs: Sequence[RunInfo],
    out: TextIO,
    *,
    header: bool = True,
    memory_of: MemoryOf = this_machine_memory_gb,
) -> int:
    """Write CodeCarbon's ``emissions.csv`` (header unless ``header`` is False, then one
    row per run); return the rows."""
    names = _country_names() if any(run.carbon and run.carbon.country for run in runs) else {}
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(EMISSIONS_COLUMNS)
    for run in runs:
        row = emissions_row(store, run, names, memory_of=memory_of)
        writer.writerow([csv_value(value) for value in row])
    return len(runs)


@dataclass(frozen=True, slots=True)
class EmissionsExport:
    """What :func:`export_emissions` did, for the one line the CLI prints."""

    written: int
    """Rows written."""
    already_there: int
    """Runs skipped because the existing file has their ``run_id``."""
    appended: bool
    """Whether the rows were appended to an existing file."""
    modelled_ram: int
    """Runs whose ``ram_*`` columns are CodeCarbon's RAM model (no DRAM sensor)."""

    def describe(self, output: str) -> str:
        """``appended 2 runs to emissions.csv (1 already there); ram_*: model ...``."""
        verb = "appended" if self.appended else "wrote"
        text = f"{verb} {self.written} run{'s' if self.written != 1 else ''} to {output}"
        if self.already_there:
            text += f" ({self.already_there} already there)"
        if self.modelled_ram:
            text += (
                f"; ram_* of {self.modelled_ram} run{'s' if self.modelled_ram != 1 else ''}: "
                f"{RAM_METHOD} (CodeCarbon's RAM power model, no DRAM sensor)"
            )
        return text


def existing_run_ids(path: Path) -> set[str] | None:
    """The ``run_id`` values of an existing ``emissions.csv`` at ``path``; None when
    there is no file (or an empty one). Raises :class:`ExportError`, naming the fix, when
    its header is not :data:`EMISSIONS_COLUMNS`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not text.strip():
        return None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    if tuple(header) != EMISSIONS_COLUMNS:
        raise ExportError(_mismatch(path, header))
    index = EMISSIONS_COLUMNS.index("run_id")
    return {row[index] for row in reader if len(row) > index}


def _mismatch(path: Path, header: list[str]) -> str:
    wanted = list(EMISSIONS_COLUMNS)
    at = next(
        (i for i, (a, b) in enumerate(zip(header, wanted, strict=False)) if a != b),
        min(len(header), len(wanted)),
    )
    found = repr(header[at]) if at < len(header) else "the end of the header"
    expected = repr(wanted[at]) if at < len(wanted) else "the end of the header"
    return (
        f"refusing to append to {path}: its header is not CodeCarbon 3's emissions.csv "
        f"layout ({len(header)} columns, column {at + 1} is {found} where {expected} is "
        "expected); write to a new file (-o another.csv) or move the old one away "
        "(CodeCarbon itself renames such a file to .bak)"
    )


def export_emissions(
    store: RunStore,
    runs: Sequence[RunInfo],
    output: str | os.PathLike[str] | None,
    *,
    follow_symlinks: bool = False,
    memory_of: MemoryOf = this_machine_memory_gb,
) -> EmissionsExport:
    """``export codecarbon -o output``: append to an existing CodeCarbon file as CodeCarbon
    does (its rows kept, runs already there skipped), else write a new one; standard
    output for None or ``-``. The file is replaced atomically with old and new rows, so a
    failed export leaves it as it was."""
    modelled = sum(1 for run in runs if not any(d.kind == "dram" for d in run.devices))
    if output is None or str(output) == "-":
        with open_output(output) as out:
            count = write_emissions_csv(store, runs, out, memory_of=memory_of)
        return EmissionsExport(count, 0, False, modelled)
    target = output_target(output, follow_symlinks=follow_symlinks)
    known = existing_run_ids(target)
    fresh = [run for run in runs if known is None or run_uuid(run) not in known]
    previous = "" if known is None else target.read_text(encoding="utf-8")
    if previous and not previous.endswith("\n"):
        previous += "\n"
    with open_output(target) as out:
        out.write(previous)
        count = write_emissions_csv(store, fresh, out, header=known is None, memory_of=memory_of)
    modelled = sum(1 for run in fresh if not any(d.kind == "dram" for d in run.devices))
    return EmissionsExport(count, len(runs) - len(fresh), known is not None, modelled)
