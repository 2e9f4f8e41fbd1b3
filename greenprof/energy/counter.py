"""From raw sensor values to cumulative energy: counter deltas and power integration (pure)."""

from __future__ import annotations

from collections.abc import Sequence


def counter_delta(previous_j: float, current_j: float, wrap_j: float | None = None) -> float:
    """Energy between two raw counter values.

    A decrease is a wrap-around when the counter wraps at ``wrap_j`` (RAPL's
    ``max_energy_range_uj``), else a reset (driver reload): the energy since the reset,
    ``current_j``, is all that is known.

    >>> counter_delta(10.0, 12.5)
    2.5
    >>> counter_delta(99.0, 1.0, wrap_j=100.0)
    2.0
    >>> counter_delta(99.0, 1.0)
    1.0
    """
    if current_j >= previous_j:
        return current_j - previous_j
    if wrap_j is not None and wrap_j > 0:
        return (wrap_j - previous_j) + current_j
    return current_j


def integrate_power(times_s: Sequence[float], powers_w: Sequence[float]) -> list[float]:
    """Trapezoid rule: cumulative energy (J) at each time, starting at 0.

    >>> integrate_power([0.0, 1.0, 3.0], [100.0, 200.0, 200.0])
    [0.0, 150.0, 550.0]
    """
    if len(times_s) != len(powers_w):
        raise ValueError("times_s and powers_w must have the same length")
    cumulative_j: list[float] = []
    total_j = 0.0
    for i, (t_s, p_w) in enumerate(zip(times_s, powers_w, strict=True)):
        if i:
            total_j += 0.5 * (p_w + powers_w[i - 1]) * (t_s - times_s[i - 1])
        cumulative_j.append(total_j)
    return cumulative_j
