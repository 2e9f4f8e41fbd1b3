"""The compare screen's step digest, built from what the store condenses.

The store does the reading (:meth:`~greenprof.store.RunStore.step_columns` for short
runs, :meth:`~greenprof.store.RunStore.step_buckets` for long ones); this module only
turns those rows into a :class:`~greenprof.tui.comparison.StepDigest`, whatever the
backend.
"""

from __future__ import annotations

import math

from greenprof.store.reader import RunStore
from greenprof.tui.comparison import CURVE_POINTS, StepColumns, StepDigest, digest_columns

EXACT_UP_TO_STEPS = 20_000
"""Runs up to this many steps are digested exactly from every step."""
SAMPLED_STEPS = 5_000
"""Longer runs: percentiles from about this many evenly spaced steps."""


def step_columns(store: RunStore, run_id: int) -> StepColumns:
    """A run's per-step energy, samples and loss, in step order."""
    columns = store.step_columns(run_id)
    return StepColumns(columns.energy_j, columns.samples, columns.loss)


def step_digest(
    store: RunStore, run_id: int, *, exact_up_to: int = EXACT_UP_TO_STEPS
) -> StepDigest:
    """What the compare screen needs from a run's steps, reading few rows for long runs.

    Up to ``exact_up_to`` steps: every step (exact). Beyond: CURVE_POINTS buckets of step
    numbers, each with its energy sum (the energy curve and the step-energy total), its
    minimum loss (the loss frontier) and its first steps (about SAMPLED_STEPS in all: the
    J/step and J/sample percentiles). Python then handles a few thousand rows, not
    100,000.
    """
    span = store.step_range(run_id)
    if span is None or span[1] - span[0] + 1 <= exact_up_to:
        return digest_columns(step_columns(store, run_id))
    first, last = span
    width = math.ceil((last - first + 1) / CURVE_POINTS)
    head = max(1, min(width, math.ceil(SAMPLED_STEPS / CURVE_POINTS)))
    curve: list[tuple[float, float]] = []
    frontier: list[tuple[float, float]] = []
    step_j: list[float] = []
    sample_j: list[float] = []
    cumulative, best = 0.0, math.inf
    for bucket in store.step_buckets(run_id, width=width, head=head):
        cumulative += bucket.energy_j
        curve.append((float(bucket.end_step - 1 - first), cumulative))
        if bucket.min_loss is not None and bucket.min_loss < best:
            best = bucket.min_loss
            frontier.append((bucket.min_loss, cumulative))
        for energy_j, samples in zip(bucket.head_energy_j, bucket.head_samples, strict=True):
            step_j.append(energy_j)
            if samples:
                sample_j.append(energy_j / samples)
    return StepDigest(
        step_j=step_j,
        sample_j=sample_j,
        curve=tuple(curve),
        loss_frontier=tuple(frontier),
        step_energy_j=cumulative,
        samples=None,  # the run's total from the runs table
        sampled_every=max(1, width // head),
    )
