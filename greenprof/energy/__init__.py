"""Energy of training steps from polled energy counters and power readings (pure).

Read the parts in this order; each can be read alone:

- :mod:`~greenprof.energy.counter`: raw values to energy (counter deltas with wraps and
  resets, power integration).
- :mod:`~greenprof.energy.lattice`: when a stale counter updates (period and phase fitted
  to when its value changes between polls).
- :mod:`~greenprof.energy.buffer`: the one history type (parallel columns, run-wide index,
  trimmed in chunks).
- :mod:`~greenprof.energy.curve`: readings as knots of the cumulative energy curve, placed
  on the lattice.
- :mod:`~greenprof.energy.split`: how a jump between two knots is divided among the steps
  it spans.
- :mod:`~greenprof.energy.uncertainty`: the bound on each step's error, and how bounds
  combine over windows.
- :mod:`~greenprof.energy.attributor`: :class:`StepAttributor`, which composes them, and
  decides when a step's energy is final.
"""

from __future__ import annotations

from greenprof.energy.attributor import StepAttributor, StepEnergy
from greenprof.energy.counter import counter_delta, integrate_power
from greenprof.energy.uncertainty import NO_BOUNDS, Bounds, window_uncertainty_j

__all__ = [
    "NO_BOUNDS",
    "Bounds",
    "StepAttributor",
    "StepEnergy",
    "counter_delta",
    "integrate_power",
    "window_uncertainty_j",
]
