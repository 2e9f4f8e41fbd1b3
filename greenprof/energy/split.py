"""The jump split: how a knot interval's energy is divided among the steps it spans (pure).

Between two knots the curve must rise by the jump ``ΔE``, but not necessarily linearly:
power changes at step boundaries, and a linear split misattributes up to ``ΔP x 25 ms``
per boundary. A knot interval that contains step boundaries is cut into segments at those
boundaries; each segment gets a rate from what is known about the step (or gap) it belongs
to: the slope of the knots just before or after the interval when that step extends beyond
it, else the mean of the instantaneous power readings taken during the step, else the
interval's mean rate (at most the highest rate the evidence shows nearby). ``ΔE`` is
shared out in proportion to ``rate x duration``, so the jump is conserved exactly and the
curve stays monotone; what capped rates leave unexplained is spread by duration. Where the
knots are noisier in time than the power readings are in value (a counter changing at
every poll), the readings come first.

Where a per-step uncertainty (issue 14) would come from, this is the place that knows how
much of a step's energy was *split* rather than measured: the segments with an unknown
rate, and the timing of the knots around them.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import pairwise

from greenprof.energy.curve import RATE_INTERVALS, KnotCurve

__all__ = ["Split", "segments", "split_interval"]

UNKNOWN_RATE_FLOOR = 0.25
"""Segments of unknown rate get at least this fraction of the interval's mean rate: when
the known rates over-explain the jump (their estimates are off), the rest would otherwise
get nothing, and a step that ran cannot have drawn no power."""

UNKNOWN_RATE_MARGIN = 0.25
"""Segments of unknown rate get at most the highest rate the evidence shows around their
interval (its neighbours' slopes, the power read near it), this much above: when the
known rates under-explain a jump because the knots are misplaced (a lattice not locked
yet), the rest must not pile onto a few milliseconds of unknown rate (measured: one 13 ms
segment was given 1.5 kW on a 250 W trace). What is left is spread by duration."""
NOISY_KNOTS = 0.1
"""Above this ratio of knot timing noise to knot spacing, power readings (when there are
instantaneous ones) set the segments' rates, not the knots' slopes."""
MIN_SLOPE_S = 1e-3
"""Knot intervals shorter than this give no slope (as in the uncertainty's evidence)."""

Split = tuple[list[float], list[float]]
"""A knot interval cut at step boundaries: the cut times (both knots included) and the
cumulative energy at each."""


def segments(
    u0_s: float, u1_s: float, starts_s: Sequence[float], ends_s: Sequence[float]
) -> tuple[list[float], list[tuple[float, float]]]:
    """The interval ``(u0_s, u1_s]`` cut at the boundaries of the steps inside it.

    ``starts_s``/``ends_s`` are the steps in order (non-overlapping). Returns the cut points
    (both ends included) and, for each segment, the step or gap it lies in as (start, end);
    ends unknown yet (the gap after the last step) are infinite.
    """
    n = len(ends_s)
    k = bisect_right(ends_s, u0_s)
    points = [u0_s]
    spans: list[tuple[float, float]] = []
    previous_end = ends_s[k - 1] if k else -math.inf
    while k < n:
        start_s, end_s = starts_s[k], ends_s[k]
        if start_s >= u1_s:
            break
        if start_s > points[-1]:  # a gap before step k
            spans.append((previous_end, start_s))
            points.append(start_s)
        if end_s >= u1_s:
            spans.append((start_s, end_s))
            points.append(u1_s)
            return points, spans
        if end_s > points[-1]:
            spans.append((start_s, end_s))
            points.append(end_s)
        previous_end = end_s
        k += 1
    spans.append((previous_end, starts_s[k] if k < n else math.inf))
    points.append(u1_s)
    return points, spans


def split_interval(
    curve: KnotCurve, i: int, starts_s: Sequence[float], ends_s: Sequence[float]
) -> Split:
    """Knot interval i (the position of its right knot) split at the steps' boundaries."""
    points, spans = segments(curve.times[i - 1], curve.times[i], starts_s, ends_s)
    e0, e1 = curve.energies[i - 1], curve.energies[i]
    cumulative = [e0]
    if len(points) > 2:
        if curve.duty_cycled:  # no rate worth trusting inside (see KnotCurve.duty_cycled)
            weights = [b - a for a, b in pairwise(points)]
        else:
            weights = _weights(curve, i, points, spans)
        total = sum(weights)
        if total <= 0:
            weights, total = [b - a for a, b in pairwise(points)], points[-1] - points[0]
        running, scale = 0.0, (e1 - e0) / total
        for w in weights[:-1]:
            running += w
            # rounding may carry a cut an ulp past the far knot: keep the curve monotone
            cumulative.append(min(e0 + scale * running, e1))
    cumulative.append(e1)
    return points, cumulative


def _weights(
    curve: KnotCurve, i: int, points: Sequence[float], spans: Sequence[tuple[float, float]]
) -> list[float]:
    """Energy weights of the segments of knot interval i (position).

    A segment's rate is the slope of the knots beyond the interval when its step (or gap)
    reaches past the interval's edge, else the mean of the power readings taken during its
    step near the segment (within one segment length of it), else unknown. Segments with a
    known rate get rate x duration; the others share what is left of the jump in proportion
    to their durations (exact when the known rates are), at no less than
    :data:`UNKNOWN_RATE_FLOOR` of the interval's mean rate and no more than the evidence's
    highest rate (:data:`UNKNOWN_RATE_MARGIN`); what that cap leaves of the jump is spread
    by duration. Otherwise the weights are scaled to the jump.
    """
    times, energies = curve.times, curve.energies
    u0, u1 = times[i - 1], times[i]
    jump_j = energies[i] - energies[i - 1]
    # power readings that any segment's window [2a - b, 2b - a] can reach
    p_lo = bisect_left(curve.power_times, 2 * u0 - u1)
    p_hi = bisect_right(curve.power_times, 2 * u1 - u0)
    p_time, p_power = curve.power_times[p_lo:p_hi], curve.powers[p_lo:p_hi]
    last = len(spans) - 1
    weights: list[float] = []
    unknown: list[int] = []
    known_j = unknown_s = 0.0
    # knots that are noisier in time than instantaneous power readings are in value
    readings_first = bool(p_time) and not curve.averaged and _noisy_knots(curve)
    for s, (span_start, span_end) in enumerate(spans):
        a, b = points[s], points[s + 1]
        rate_w: float | None = None
        if readings_first:
            pass
        elif s == 0 and span_start < a:  # the step reaches left of the interval
            lo = max(i - 1 - RATE_INTERVALS, bisect_left(times, span_start), 0)
            if lo < i - 1:
                rate_w = (energies[i - 1] - energies[lo]) / (u0 - times[lo])
        elif s == last and span_end > b:  # the step reaches right of the interval
            hi = min(i + RATE_INTERVALS, bisect_right(times, span_end) - 1, len(times) - 1)
            if hi > i:
                rate_w = (energies[hi] - energies[i]) / (times[hi] - u1)
        if rate_w is None and p_time:
            t0_s, t1_s = max(span_start, 2 * a - b), min(span_end, 2 * b - a)
            lo, hi = bisect_left(p_time, t0_s), bisect_right(p_time, t1_s)
            if hi > lo:
                rate_w = sum(p_power[lo:hi]) / (hi - lo)
        if rate_w is None:
            unknown.append(s)
            unknown_s += b - a
            weights.append(b - a)
        else:
            w = max(rate_w, 0.0) * (b - a)
            known_j += w
            weights.append(w)
    if unknown:
        mean_w = jump_j / (u1 - u0)
        floor_w = UNKNOWN_RATE_FLOOR * mean_w
        fill_w = max((jump_j - known_j) / unknown_s, floor_w) if unknown_s > 0 else 0.0
        if math.isinf(fill_w):  # segments too short for a rate (sub-ns): they share the rest
            for s in unknown:
                weights[s] = (jump_j - known_j) * (weights[s] / unknown_s)
            return weights
        cap_w = _evidence_max_w(curve, i, p_power)
        capped = fill_w > cap_w > 0.0
        if capped:
            fill_w = max(cap_w, floor_w)
        for s in unknown:
            weights[s] *= fill_w
        excess_j = jump_j - sum(weights)
        if capped and 0.0 < excess_j < jump_j:
            # what no rate explains comes from misplaced knots, not from the segments'
            # power: spread it by duration (as a linear split would), not by rate
            extra_w = excess_j / (u1 - u0)
            for s in range(len(weights)):
                weights[s] += extra_w * (points[s + 1] - points[s])
    return weights


def _noisy_knots(curve: KnotCurve) -> bool:
    """A counter that changes at every poll (no lattice, never seen stale) whose knots'
    timing noise is above :data:`NOISY_KNOTS` of their spacing: a slope over one or two
    knot intervals is then off by as much, where a power reading is not (issue 14: a
    20 ms counter polled at 10 Hz)."""
    noise_s = curve.timing_noise_s()
    if noise_s is None or curve.lattice.period_s is not None or curve.lattice.staleness_s > 0:
        return False
    return noise_s > NOISY_KNOTS * curve.resolution_s()


def _evidence_max_w(curve: KnotCurve, i: int, powers: Sequence[float]) -> float:
    """The highest rate the evidence near knot interval i shows (its neighbours' slopes,
    the power read around it), widened by :data:`UNKNOWN_RATE_MARGIN`."""
    times, energies = curve.times, curve.energies
    best_w = max(powers, default=0.0)
    for k in range(max(1, i - RATE_INTERVALS), min(len(times) - 1, i + RATE_INTERVALS) + 1):
        dt_s = times[k] - times[k - 1]
        if k != i and dt_s > MIN_SLOPE_S:
            best_w = max(best_w, (energies[k] - energies[k - 1]) / dt_s)
    return best_w * (1.0 + UNKNOWN_RATE_MARGIN)
