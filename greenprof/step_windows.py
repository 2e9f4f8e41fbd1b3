"""Bounds on a run's summed step energy and on each epoch's, from its stored steps.

What ``greenprof show`` (and ``--json``) states next to the step energies: the bound of a
window of steps is not the sum of the steps' bounds (the boundaries contiguous steps share
cancel: :func:`greenprof.energy.window_uncertainty_j`), so it is computed from each step's
parts, in one streamed pass over the steps, whatever the run's length. A window with a step
whose bound is not known (recovered after a crash, recorded before greenprof stated them)
has no bound (None, shown "n/a"): a partial one would understate the error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from greenprof.records import StepRecord
from greenprof.store.api import StepBoundRow

__all__ = ["StepWindowBounds", "WindowBound", "bound_rows", "step_window_bounds"]


class WindowBound:
    """:func:`greenprof.energy.window_uncertainty_j`, fed one step at a time (constant
    memory; the same result, checked by a test)."""

    __slots__ = ("_edges_j", "_interior_j2", "_last", "missing", "steps")

    def __init__(self) -> None:
        self._edges_j = 0.0
        self._interior_j2 = 0.0
        self._last: tuple[float, float] | None = None  # (end_s, end_j) of the previous step
        self.missing = False
        self.steps = 0

    def add(
        self,
        start_s: float,
        end_s: float,
        start_j: float | None,
        end_j: float | None,
        interior_j: float | None,
    ) -> None:
        """The next step in order, with its bound's parts (None: not known, and then the
        window has no bound)."""
        self.steps += 1
        if start_j is None or end_j is None or interior_j is None:
            self.missing = True
            return
        last = self._last
        if last is None or start_s != last[0]:  # a boundary not shared: both sides count
            self._edges_j += start_j + (last[1] if last is not None else 0.0)
        self._interior_j2 += interior_j * interior_j
        self._last = (end_s, end_j)

    @property
    def total_j(self) -> float | None:
        """The window's bound (J, >= 95 %); None when a step's is not known or no step."""
        if self.missing or self._last is None:
            return None
        return self._edges_j + self._last[1] + math.sqrt(self._interior_j2)


@dataclass(frozen=True, slots=True)
class StepWindowBounds:
    """Bounds (J) on the error of a run's summed step energy and of each epoch's; None
    where a step's bound is not known."""

    run_j: float | None
    epoch_j: dict[int, float | None] = field(default_factory=dict)


def step_window_bounds(rows: Iterable[StepBoundRow]) -> StepWindowBounds:
    """The run's and each epoch's window bound, from its steps' bound parts in step order
    (``RunStore.iter_step_bounds``, or :func:`bound_rows` of step records).

    An epoch whose steps come in several stretches (not one after the other) adds the
    stretches' bounds: never less than its true window bound."""
    run = WindowBound()
    done: dict[int, float | None] = {}
    epoch: int | None = None
    current = WindowBound()
    for _step, step_epoch, start_s, end_s, start_j, end_j, interior_j in rows:
        run.add(start_s, end_s, start_j, end_j, interior_j)
        if step_epoch != epoch:
            if epoch is not None:
                done[epoch] = _add(done, epoch, current.total_j)
            epoch, current = step_epoch, WindowBound()
        current.add(start_s, end_s, start_j, end_j, interior_j)
    if epoch is not None:
        done[epoch] = _add(done, epoch, current.total_j)
    return StepWindowBounds(run.total_j, done)


def _add(done: dict[int, float | None], epoch: int, bound_j: float | None) -> float | None:
    if epoch not in done:
        return bound_j
    earlier = done[epoch]
    return None if earlier is None or bound_j is None else earlier + bound_j


def bound_rows(steps: Iterable[StepRecord]) -> Iterator[StepBoundRow]:
    """Step records as the rows :func:`step_window_bounds` takes."""
    for s in steps:
        b = s.bounds
        if b is None:
            yield (s.step, s.epoch, s.start_s, s.end_s, None, None, None)
        else:
            yield (s.step, s.epoch, s.start_s, s.end_s, b.start_j, b.end_j, b.interior_j)
