"""Stored step rows back into :class:`~greenprof.records.StepRecord`: the one conversion both
backends' readers share, so a bound reads back the same from SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from greenprof.records import Bounds, StepRecord

STEP_SELECT = (
    "step, epoch, start_s, end_s, samples, energy_j, interpolated, loss, flags,"
    " uncertainty_start_j, uncertainty_end_j, uncertainty_interior_j"
)
"""The columns :func:`step_records` takes, in order (``FROM steps``)."""
STEP_BOUND_SELECT = (
    "step, epoch, start_s, end_s, uncertainty_start_j, uncertainty_end_j, uncertainty_interior_j"
)
"""The columns of :data:`greenprof.store.api.StepBoundRow`, in order (``FROM steps``)."""
STEP_ENERGY_SELECT = "step, device, energy_j, energy_uncertainty_j"
"""The columns :func:`step_records` takes per device, in order (``FROM step_energy``)."""


def stored_bounds(start_j: Any, end_j: Any, interior_j: Any) -> Bounds | None:
    """A step's bounds from its three columns; None when any is NULL (not known)."""
    if start_j is None or end_j is None or interior_j is None:
        return None
    return Bounds(float(start_j), float(end_j), float(interior_j))


def step_records(
    run_id: int, rows: Sequence[Sequence[Any]], energies: Iterable[Sequence[Any]]
) -> list[StepRecord]:
    """``rows`` (:data:`STEP_SELECT`) with their devices' rows (:data:`STEP_ENERGY_SELECT`)."""
    per_device: dict[int, dict[str, float]] = {}
    per_device_bound: dict[int, dict[str, float]] = {}
    for step, device, energy, bound in energies:
        per_device.setdefault(step, {})[device] = energy
        if bound is not None:
            per_device_bound.setdefault(step, {})[device] = bound
    return [
        StepRecord(
            run_id=run_id,
            step=step,
            epoch=epoch,
            start_s=start_s,
            end_s=end_s,
            samples=samples,
            energy_j=energy_j,
            device_energy_j=per_device.get(step, {}),
            interpolated=bool(interpolated),
            loss=loss,
            flags=flags,
            bounds=stored_bounds(start_j, end_j, interior_j),
            device_uncertainty_j=per_device_bound.get(step, {}),
        )
        for (
            step, epoch, start_s, end_s, samples, energy_j, interpolated, loss, flags,
            start_j, end_j, interior_j,
        ) in rows
    ]  # fmt: skip
