"""The ``--json`` documents of the read commands: stable, documented, one per invocation.

Each command that takes ``--json`` prints exactly one JSON object on stdout, built here
from store records (pure functions; the commands do the reading). ``docs/json.md``
documents every field, and the tests check each document against that page, so a field
cannot be added, renamed or retyped without the page saying so.

The rules every document follows (so a script can rely on them without the page):

- An envelope: ``{"kind": "runs", "version": 1, ...}``. ``version`` changes only when a
  field is renamed, removed or changes meaning; new fields may appear within a version.
- SI units with the unit in the name (``energy_j``, ``duration_s``, ``co2_g``,
  ``intensity_g_per_kwh``), never a formatted string: formatting is for people
  (:mod:`greenprof.formatting`), numbers are for scripts.
- Times are ISO 8601 with seconds and an explicit zone (UTC: ``2023-11-14T22:13:20+00:00``),
  with the same instant as Unix seconds next to it (``started_at_unix_s``).
- A figure that does not exist is ``null``, never ``0``, ``NaN`` or ``"–"`` (JSON has
  no NaN: a non-finite number is ``null`` too).
- Tags are a JSON object; each value keeps the type the store kept (today's stores keep
  strings).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from greenprof import formatting as fmt
from greenprof import metrics
from greenprof.carbon import Zone
from greenprof.jobs import JobTotals
from greenprof.records import CarbonSettings, DeviceInfo, EpochRecord, RunInfo
from greenprof.step_windows import StepWindowBounds

VERSION = 1
"""The document version (see the module's note on what changes it)."""

Document = dict[str, Any]


def dumps(document: Document) -> str:
    """The document as JSON text: keys in the order built, two-space indent, ASCII only
    (so a terminal never receives a control character from a run name), strict (no NaN)."""
    return json.dumps(document, indent=2, ensure_ascii=True, allow_nan=False)


def envelope(kind: str, **fields: Any) -> Document:
    """``{"kind": kind, "version": VERSION, **fields}``."""
    return {"kind": kind, "version": VERSION, **fields}


def number(value: float | None) -> float | None:
    """A finite float, or None (JSON has no NaN or infinity)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def iso_time(unix_s: float | None) -> str | None:
    """A Unix time as ISO 8601 in UTC with seconds: ``2023-11-14T22:13:20+00:00``."""
    if unix_s is None or not math.isfinite(unix_s):
        return None
    return fmt.timestamp(unix_s, zone=dt.timezone.utc, seconds=True)


def tag_values(tags: Mapping[str, object]) -> dict[str, Any]:
    """Tags as a JSON object in key order; JSON scalars keep their type, anything else
    becomes its text."""
    return {str(key): _scalar(tags[key]) for key in sorted(tags)}


def _scalar(value: object) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return number(value)
    return str(value)


def carbon_json(carbon: CarbonSettings | None) -> Document | None:
    """How a run's carbon is computed: intensity, PUE and their source."""
    if carbon is None:
        return None
    return {
        "intensity_g_per_kwh": number(carbon.intensity_g_per_kwh),
        "pue": number(carbon.pue),
        "source": carbon.source,
        "country": carbon.country,
        "region": carbon.region,
    }


def device_json(device: DeviceInfo, energy_j: float | None = None) -> Document:
    """One measured device; ``energy_j`` is added when given (``show``)."""
    out: Document = {
        "device": device.device,
        "kind": device.kind,
        "method": device.method,
        "name": device.name,
        "uuid": device.uuid,
        "power_limit_w": number(device.power_limit_w),
        "idle_power_w": number(device.idle_power_w),
        "node_wide": device.node_wide,
        "note": device.note,
        "power_window_s": number(device.power_window_s),
    }
    if energy_j is not None:
        out["energy_j"] = number(energy_j)
    return out


def run_json(run: RunInfo, device_energy_j: Mapping[str, float] | None = None) -> Document:
    """A run's record and totals (what ``runs`` lists and ``show`` starts with)."""
    return {
        "run_id": run.run_id,
        "name": run.name,
        "status": run.status,
        "started_at": iso_time(run.started_at),
        "started_at_unix_s": number(run.started_at),
        "ended_at": iso_time(run.ended_at),
        "ended_at_unix_s": number(run.ended_at),
        "duration_s": number(run.duration_s),
        "steps": run.steps,
        "expected_steps": run.expected_steps,
        "samples": run.samples,
        "energy_j": number(run.energy_j),
        "step_energy_j": number(run.step_energy_j),
        "setup_s": number(run.setup_s),
        "setup_energy_j": number(run.setup_energy_j),
        "energy_per_sample_j": number(metrics.run_j_per_sample(run)),
        "samples_per_kwh": number(metrics.run_samples_per_kwh(run)),
        "co2_g": number(run.co2_g),
        "carbon": carbon_json(run.carbon),
        "host": run.host,
        "pid": run.pid,
        "framework": run.framework,
        "tags": tag_values(run.tags),
        "job_id": run.job_id,
        "rank": run.rank,
        "local_rank": run.local_rank,
        "world_size": run.world_size,
        "lost_steps": run.lost_steps,
        "error": run.error,
        "greenprof_version": run.greenprof_version,
        "devices": [
            device_json(
                device, None if device_energy_j is None else device_energy_j.get(device.device, 0.0)
            )
            for device in run.devices
        ],
    }


def runs_document(runs: Iterable[RunInfo], *, database: str) -> Document:
    """``greenprof runs --json`` (and ``history --json``): the runs, newest first."""
    return envelope("runs", database=database, runs=[run_json(run) for run in runs])


def epoch_json(epoch: EpochRecord, bound_j: float | None = None) -> Document:
    """One epoch's totals; ``bound_j``: its energy's error bound (None: not known)."""
    return {
        "epoch": epoch.epoch,
        "steps": epoch.steps,
        "samples": epoch.samples,
        "start_s": number(epoch.start_s),
        "end_s": number(epoch.end_s),
        "duration_s": number(epoch.duration_s),
        "energy_j": number(epoch.energy_j),
        "energy_uncertainty_j": number(bound_j),
    }


def run_document(
    run: RunInfo,
    device_energy_j: Mapping[str, float],
    *,
    flag_counts: Mapping[str, int] | None = None,
    pending_steps: int = 0,
    epochs: Sequence[EpochRecord] = (),
    database: str,
    bounds: StepWindowBounds | None = None,
) -> Document:
    """``greenprof show RUN --json``: the run, per-device energy, data quality, epochs, and
    the error bounds of the step energies (``bounds``; null where not known)."""
    epoch_j = {} if bounds is None else bounds.epoch_j
    return envelope(
        "run",
        database=database,
        run={
            **run_json(run, device_energy_j),
            "step_energy_uncertainty_j": number(None if bounds is None else bounds.run_j),
            "step_flags": {str(k): int(v) for k, v in sorted((flag_counts or {}).items())},
            "pending_steps": pending_steps,
            "epochs": [epoch_json(epoch, epoch_j.get(epoch.epoch)) for epoch in epochs],
        },
    )


def job_document(totals: JobTotals, *, database: str) -> Document:
    """``greenprof show JOB --json``: the job's totals, each device counted once."""
    return envelope(
        "job",
        database=database,
        job={
            "job_id": totals.job_id,
            "steps": totals.steps,
            "samples": totals.samples,
            "duration_s": number(totals.duration_s),
            "energy_j": number(totals.energy_j),
            "counted_twice_j": number(totals.counted_twice_j),
            "energy_per_sample_j": number(metrics.j_per_sample(totals.energy_j, totals.samples)),
            "samples_per_kwh": number(metrics.samples_per_kwh(totals.samples, totals.energy_j)),
            "co2_g": number(totals.co2_g),
            "nodes": [
                {"host": host, "energy_j": number(energy_j)}
                for host, energy_j in totals.node_energy_j.items()
            ],
            "ranks": [
                {
                    "rank": rank.rank,
                    "run_id": rank.run_id,
                    "host": rank.host,
                    "status": rank.status,
                    "steps": rank.steps,
                    "samples": rank.samples,
                    "energy_j": number(rank.energy_j),
                    "duration_s": number(rank.duration_s),
                }
                for rank in totals.ranks
            ],
        },
    )


def doctor_document(
    devices: Iterable[DeviceInfo], decisions: Iterable[str], *, database: str
) -> Document:
    """``greenprof doctor --json``: the devices this machine would measure, and how."""
    return envelope(
        "doctor",
        database=database,
        devices=[device_json(device) for device in devices],
        decisions=list(decisions),
    )


def regions_document(zones: Iterable[Zone], *, search: str) -> Document:
    """``greenprof regions --json``: the grid zones that match ``search``."""
    return envelope(
        "regions",
        search=search,
        zones=[
            {
                "code": zone.code,
                "name": zone.name,
                "kind": zone.kind,
                "intensity_g_per_kwh": number(zone.intensity_g_per_kwh),
                "source": zone.source,
            }
            for zone in zones
        ],
    )
