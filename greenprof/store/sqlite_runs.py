"""Runs and devices rows as records: :func:`run_info` (and its tags) for both backends, the
SQLite device listing in ``IN`` lists (PostgreSQL takes ``= ANY``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from greenprof.records import CarbonSettings, DeviceInfo, RunInfo, RunStatus, TagValue
from greenprof.store import queries

CHUNK = 500
"""Run ids per ``IN (...)`` list (far below SQLite's limit on bound parameters)."""

RUN_COLUMNS = queries.RUN_COLUMNS
"""The columns :func:`run_info` takes (``FROM runs``)."""


def devices(conn: sqlite3.Connection, run_ids: Sequence[int]) -> dict[int, tuple[DeviceInfo, ...]]:
    """Each run's devices, ordered by device (runs without devices left out)."""
    found: dict[int, list[DeviceInfo]] = {}
    for start in range(0, len(run_ids), CHUNK):
        chunk = list(run_ids[start : start + CHUNK])
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT {queries.DEVICE_COLUMNS} FROM devices"
            f" WHERE run_id IN ({marks}) ORDER BY run_id, device",
            chunk,
        ):
            found.setdefault(row[0], []).append(queries.device_info(row))
    return {run_id: tuple(devices) for run_id, devices in found.items()}


def run_info(row: tuple[Any, ...], status: RunStatus, devices: tuple[DeviceInfo, ...]) -> RunInfo:
    """A :class:`RunInfo` from a row of :data:`RUN_COLUMNS`, with its displayed status."""
    (
        run_id,
        name,
        _,
        started_at,
        ended_at,
        _,
        host,
        pid,
        rank,
        framework,
        tags,
        expected_steps,
        country,
        region,
        pue,
        intensity,
        source,
        steps,
        samples,
        energy_j,
        step_energy_j,
        duration_s,
        error,
        version,
        lost_steps,
        job_id,
        local_rank,
        world_size,
        setup_s,
        setup_energy_j,
    ) = row
    carbon = None
    if intensity is not None:
        carbon = CarbonSettings(
            intensity_g_per_kwh=float(intensity),
            pue=float(pue),
            source=str(source or ""),
            country=country,
            region=region,
        )
    return RunInfo(
        run_id=int(run_id),
        name=str(name),
        status=status,
        started_at=float(started_at),
        ended_at=None if ended_at is None else float(ended_at),
        host=str(host),
        pid=int(pid),
        rank=rank,
        framework=str(framework),
        tags=_tags(tags),
        devices=devices,
        carbon=carbon,
        steps=int(steps),
        samples=samples,
        energy_j=float(energy_j),
        step_energy_j=float(step_energy_j),
        duration_s=float(duration_s),
        expected_steps=expected_steps,
        error=error,
        greenprof_version=str(version),
        lost_steps=int(lost_steps),
        job_id=job_id,
        local_rank=local_rank,
        world_size=world_size,
        setup_s=float(setup_s),
        setup_energy_j=float(setup_energy_j),
    )


def is_run_id(ref: int | str) -> bool:
    """An int, or a string of at most 18 ASCII digits (within SQLite's 64-bit integers)."""
    if isinstance(ref, int):
        return 0 <= ref < 2**63
    return ref.isascii() and ref.isdigit() and len(ref) <= 18


def _tags(raw: object) -> dict[str, TagValue]:
    """The run's tags with their JSON types (str, int, float, bool); an edited value that is
    none of these (null, a list, an object) reads as its JSON text, and an unparseable column
    as no tags, rather than a crash. Both backends read runs through this."""
    try:
        tags = json.loads(str(raw))
    except ValueError:
        return {}
    if not isinstance(tags, dict):
        return {}
    return {str(k): _tag_value(v) for k, v in tags.items()}


def _tag_value(value: object) -> TagValue:
    if isinstance(value, (str, int, float)):  # bool is an int
        return value
    return json.dumps(value, sort_keys=True)
