"""How wrong a step's energy may be: a bound on its error meant to hold >= 95 % of the time.

A step's energy is ``Ê(end) - Ê(start)`` on the reconstructed curve Ê (see
:mod:`~greenprof.energy.attributor`), so its error is ``e(end) - e(start) + interior``, where
``e(t) = Ê(t) - E(t)`` is the curve's error at a step boundary and the interior term is what
the knots themselves got wrong between the boundaries. Each part has a bound:

- **Boundary (split)**: inside a knot interval ``(u0, u1]`` with jump ``ΔE`` the true curve
  is unknown, but if power stayed within ``[p_lo, p_hi]`` it lies in a band:
  ``max(E0 + p_lo (t - u0), E1 - p_hi (u1 - t)) <= E(t) <= min(E0 + p_hi (t - u0),
  E1 - p_lo (u1 - t))``. The bound is the distance from Ê(t) to the band's far edge.
  Where the side of the boundary is one step reaching beyond the interval, its rate is the
  knots' slope there (as the split assumed) and its range is narrow; elsewhere
  ``[p_lo, p_hi]`` is the range of the evidence near the interval (the slopes of the
  neighbouring knot intervals, the interval's mean rate, power readings in and around it),
  widened by :data:`RATE_MARGIN`. A boundary on a knot costs nothing here; one in a long
  interval (a poll gap, a slow counter) costs up to ``(p_hi - p_lo) x`` its distance to the
  nearer knot: the share of a jump split over segments of unknown rate.
- **Boundary (knot timing)**: a counter's knot sits at its estimated update instant; an
  error ``δ`` there shifts the curve by up to ``p_hi x δ``. Once the lattice is known,
  ``δ`` is half its spread, at least :data:`MIN_TIMING_FRACTION` of a period (more while
  its fit window is young: :data:`YOUNG_TIMING_FRACTION`). Without a lattice: half the
  staleness once the counter was seen stale (the knot sits in the middle of where the
  update can be); for a counter that changes at every poll, the staleness its slopes'
  noise shows (``KnotCurve.timing_noise_s``); else one declared period, else the whole
  poll interval. Power knots sit at poll times (``δ = 0``).
- **Beyond the knots** (the run's edges, a dead sensor): past the last knot where power
  was read, the curve follows the readings: each change between two readings may fall
  anywhere between them (``|ΔP| x gap``), plus :data:`KNOWN_RATE_MARGIN`. Elsewhere
  extrapolated at the edge rate; the bound is ``max(p_hi - r, r - p_lo) x`` the distance,
  with :data:`EDGE_MARGIN`.
- **Blur** (power readings that are moving averages over W, e.g. NVML's 1 s): each
  average is the rise of the curve over its window, placed at the window's middle; a power
  change is spread over W, so a boundary may be off by up to ``W / 2 x`` the range of power
  within W of it.
- **Interior** (knot values that are themselves estimates): integrated power (trapezoid
  error ``|ΔP| dt / 2``, more when the sensor sees only part of each poll interval), a
  counter reset (the energy between the last update and the reset is estimated). Each knot
  interval carries a bound ``s_k``; a step covers ``sqrt(sum s_k^2)`` (interval errors have
  independent signs), pro rata for the intervals it covers in part.

The step bound is ``b(start) + b(end) + interior``: linear in the boundaries (the two ends
may err in the same direction), root-sum-square inside.

**Windows.** Contiguous steps share their boundary, and its error cancels in a sum (a
step that got too much at its end made the next get as much too little): the bound of a
window of steps is :func:`window_uncertainty_j`: the bounds of the boundaries that are not
shared (the window's first start, its last end, and both sides of every gap), summed, plus
the root-sum-square of the interior terms. Not the plain sum of the step bounds, which
would grow with the number of steps while the error does not.

Validated on held-out simulations in ``benchmarks/bench_accuracy.py`` (coverage table).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

from greenprof.energy.curve import RATE_FLOOR_W, RATE_INTERVALS, KnotCurve
from greenprof.records import Bounds

__all__ = [
    "EDGE_MARGIN",
    "GAP_RATE_MARGIN",
    "NO_BOUNDS",
    "RATE_MARGIN",
    "Bounds",
    "boundary_bound_j",
    "rate_range_w",
    "split_bounds_j",
    "split_point_bound_j",
    "window_uncertainty_j",
]

MIN_SLOPE_S = 1e-3
"""Knot intervals shorter than this give no slope: two knots squeezed together (an update
placed a hair after the previous knot) would claim an absurd rate."""
EVIDENCE_INTERVALS = 2
"""Neighbouring knot intervals on each side whose slopes bound the rate in an interval."""
RATE_MARGIN = 0.1
"""The evidence's rate range is widened by this fraction on both sides: slopes carry the
knots' timing errors, and power inside an interval may leave the range of its neighbours."""
YOUNG_TIMING_FRACTION = 0.12
"""A lattice fitted on a window not yet full may be an alias drifting off the updates: its
knots are trusted to this fraction of a period at first, down to
:data:`MIN_TIMING_FRACTION` once its window is full (``lattice.maturity``; 30 s at 10 Hz)."""
KNOWN_RATE_MARGIN = 0.05
"""A rate measured by the knots beyond an interval (a step reaching past it) is trusted to
this fraction, plus the disagreement of the single-interval slopes it averages."""
SMOOTHING_FACTOR = 0.5
"""Averaged power: the blur bound is this x the window x the local range of power."""
GAP_RATE_MARGIN = 0.25
"""In a knot interval that overlaps a poll gap (no reading for more than two polls: see
:meth:`KnotCurve.note_gap`), the evidence's rate range is widened by this fraction instead
of :data:`RATE_MARGIN`: power had up to seconds, unseen, to leave its neighbours' range."""
EDGE_MARGIN = 0.5
"""Beyond the last knot nothing is measured: the rate may be this fraction off."""
MIN_TIMING_FRACTION = 0.005
"""A known lattice still places a knot up to this fraction of a period off (0.5 ms at
100 ms: the lattice's own spread is usually narrower; measured in bench_accuracy)."""


RateRange = tuple[float, float]
IntervalEntry = tuple[RateRange, float, "RateRange | None", "RateRange | None"]
"""What a boundary's bound in one knot interval needs that does not depend on where the
boundary lies: the evidence's rate range, the knots' timing bound (J: the range's top x
the timing), and the known rates left and right of the interval (None: none)."""
IntervalCache = dict[int, IntervalEntry]
"""Per knot interval (position, or :data:`_AFTER` beyond the last knot): its entry, while
the knots do not change (one batch of steps)."""
_AFTER = -1

NO_BOUNDS = Bounds(0.0, 0.0, 0.0)
"""The bounds of a step built without them (a default)."""


def rate_range_w(curve: KnotCurve, i: int, *, margin: float = RATE_MARGIN) -> tuple[float, float]:
    """The range ``[p_lo, p_hi]`` of power the evidence allows in knot interval i (position)."""
    times, energies = curve.times, curve.energies
    n = len(times)
    lo_k, hi_k = max(1, i - EVIDENCE_INTERVALS), min(n - 1, i + EVIDENCE_INTERVALS)
    rates = []
    for k in range(lo_k, hi_k + 1):
        dt = times[k] - times[k - 1]
        if dt > MIN_SLOPE_S:
            rates.append((energies[k] - energies[k - 1]) / dt)
    u0, u1 = times[max(i - 1, 0)], times[min(i, n - 1)]
    width = max(u1 - u0, 0.0)
    p_lo = bisect_left(curve.power_times, u0 - width)
    p_hi = bisect_right(curve.power_times, u1 + width)
    rates += curve.powers[p_lo:p_hi]
    if not rates:
        return 0.0, 0.0
    lo, hi = min(rates), max(rates)
    return max(0.0, lo * (1 - margin)), hi * (1 + margin)


def knot_timing_s(curve: KnotCurve, i: int) -> float:
    """How far knot i (position) may lie from the instant its value belongs to."""
    if curve.mode != "counter" or i <= 0:
        return 0.0
    lattice = curve.lattice
    if lattice.period_s is not None:
        young = YOUNG_TIMING_FRACTION * (1.0 - lattice.maturity)
        return max(0.5 * lattice.spread_s, (MIN_TIMING_FRACTION + young) * lattice.period_s)
    a_s, b_s = curve.polls[i]
    poll_s = b_s - a_s if math.isfinite(a_s) else 0.0
    staleness_s = lattice.staleness_s
    if staleness_s > 0.0:  # placed in the middle of where the update can be
        return 0.5 * min(poll_s, staleness_s)
    declared_s = curve.declared_period_s
    limit_s = min(poll_s, declared_s) if declared_s else poll_s
    noise_s = curve.timing_noise_s()  # a counter that changes at every poll
    return limit_s if noise_s is None else min(limit_s, noise_s)


def boundary_bound_j(
    curve: KnotCurve,
    t_s: float,
    estimate_j: float,
    starts_s: Sequence[float],
    ends_s: Sequence[float],
    *,
    cache: IntervalCache | None = None,
) -> float:
    """Bound on ``|Ê(t) - E(t)|`` at a step boundary ``t_s`` whose estimate is ``estimate_j``
    (``starts_s``/``ends_s``: the steps, for the segments around it). ``cache`` keeps what
    depends on the knot interval only, by position, while the knots do not change (one
    batch of steps): many short steps share an interval."""
    times = curve.times
    n = len(times)
    if n < 2:
        return abs(estimate_j)
    if t_s >= times[-1] and not curve.averaged:
        read_j = _read_beyond_bound_j(curve, t_s)
        if read_j is not None:
            return read_j + curve.edge_rate_w(first=False) * knot_timing_s(curve, n - 1)
    if t_s <= times[0]:
        return _edge_bound_j(curve, t_s, first=True)
    if t_s >= times[-1]:
        if cache is None:
            return _edge_bound_j(curve, t_s, first=False)
        edge = cache.get(_AFTER)  # every step of a burst past the last knot: computed once
        if edge is None:
            edge = cache[_AFTER] = _edge_entry(curve, first=False)
        (lo_w, hi_w), timing_j, _, _ = edge
        rate_w = curve.edge_rate_w(first=False)
        return max(hi_w - rate_w, rate_w - lo_w) * (t_s - times[-1]) + timing_j
    i = bisect_left(times, t_s)
    alone_left = not _boundary_within(times[i - 1], t_s, starts_s, ends_s)
    alone_right = not _boundary_within(t_s, times[i], starts_s, ends_s)
    return split_point_bound_j(
        curve, i, t_s, estimate_j, alone_left=alone_left, alone_right=alone_right, cache=cache
    )


def _cached_entry(curve: KnotCurve, i: int, cache: IntervalCache | None) -> IntervalEntry:
    """What a boundary's bound needs from knot interval i, computed once per interval."""
    entry = cache.get(i) if cache is not None else None
    if entry is None:
        entry = _interval_entry(curve, i)
        if cache is not None:
            cache[i] = entry
    return entry


def split_point_bound_j(
    curve: KnotCurve,
    i: int,
    t_s: float,
    estimate_j: float,
    *,
    alone_left: bool,
    alone_right: bool,
    cache: IntervalCache | None = None,
) -> float:
    """:func:`boundary_bound_j` for a boundary ``t_s`` inside knot interval i (position),
    told whether no other step boundary lies between it and the interval's left knot
    (``alone_left``) or its right knot (``alone_right``): the attributor knows it from
    the split's points, so a step costs no bisect over the steps, and everything that
    depends on the interval only comes from ``cache``."""
    times, energies = curve.times, curve.energies
    general, timing_j, known_left, known_right = _cached_entry(curve, i, cache)
    left = known_left if alone_left and known_left is not None else general
    right = known_right if alone_right and known_right is not None else general
    # _band, inlined: this runs once per step
    before_s, after_s = t_s - times[i - 1], times[i] - t_s
    e0, e1 = energies[i - 1], energies[i]
    low_j = max(e0 + left[0] * before_s, e1 - right[1] * after_s)
    high_j = min(e0 + left[1] * before_s, e1 - right[0] * after_s)
    if low_j > high_j:  # the sides' rates do not explain the jump: the general range
        lo_w, hi_w = general
        low_j = max(e0 + lo_w * before_s, e1 - hi_w * after_s)
        high_j = min(e0 + hi_w * before_s, e1 - lo_w * after_s)
    split_j = max(estimate_j - low_j, high_j - estimate_j, 0.0)
    if curve.averaged:
        return split_j + timing_j + smoothing_j(curve, t_s)
    return split_j + timing_j


def split_bounds_j(
    curve: KnotCurve,
    i: int,
    points: Sequence[float],
    cumulative: Sequence[float],
    *,
    cache: IntervalCache | None = None,
) -> list[float]:
    """:func:`split_point_bound_j` for every cut of a split of knot interval i (position),
    at once: ``result[k]`` bounds ``points[k]`` (k >= 1; ``result[0]`` is unused). Many
    very short steps in one interval (a burst at the end of a run) then cost one loop,
    not one call each. Same arithmetic as :func:`split_point_bound_j`, point by point."""
    times, energies = curve.times, curve.energies
    general, timing_j, known_left, known_right = _cached_entry(curve, i, cache)
    lo_w, hi_w = general
    t0, t1 = times[i - 1], times[i]
    e0, e1 = energies[i - 1], energies[i]
    averaged = curve.averaged
    last = len(points) - 2  # from here on, no other cut lies between a point and the knot
    out = [0.0] * len(points)
    for k in range(1, len(points)):
        t_s, estimate_j = points[k], cumulative[k]
        left = known_left if k == 1 and known_left is not None else general
        right = known_right if k >= last and known_right is not None else general
        before_s, after_s = t_s - t0, t1 - t_s
        low_j = max(e0 + left[0] * before_s, e1 - right[1] * after_s)
        high_j = min(e0 + left[1] * before_s, e1 - right[0] * after_s)
        if low_j > high_j:
            low_j = max(e0 + lo_w * before_s, e1 - hi_w * after_s)
            high_j = min(e0 + hi_w * before_s, e1 - lo_w * after_s)
        bound_j = max(estimate_j - low_j, high_j - estimate_j, 0.0) + timing_j
        out[k] = bound_j + smoothing_j(curve, t_s) if averaged else bound_j
    return out


def _interval_entry(curve: KnotCurve, i: int) -> IntervalEntry:
    """What every boundary in knot interval i (position) shares (see :data:`IntervalEntry`).

    A side with no other step boundary between it and the knot (one segment of a step or
    gap reaching beyond the interval) has the rate the split gave it, the slope of the
    knots beyond: its range is that rate +- :data:`KNOWN_RATE_MARGIN` plus how much the
    two single-interval slopes there differ (timing noise, power varying within the
    step). Any other side: the general range."""
    times, energies = curve.times, curve.energies
    n = len(times)
    gap = bool(curve.gap_ends) and curve.in_gap(times[i - 1], times[i])
    general = rate_range_w(curve, i, margin=GAP_RATE_MARGIN if gap else RATE_MARGIN)
    timing_s = max(knot_timing_s(curve, i - 1), knot_timing_s(curve, i))
    left = _known(times, energies, i - 1 - RATE_INTERVALS, i - 1) if i > RATE_INTERVALS else None
    right = _known(times, energies, i, i + RATE_INTERVALS) if i + RATE_INTERVALS < n else None
    return general, general[1] * timing_s, left, right


def _edge_entry(curve: KnotCurve, *, first: bool) -> IntervalEntry:
    """Before the first knot or after the last: the rate range (with :data:`EDGE_MARGIN`)
    and the edge knot's timing bound."""
    n = len(curve.times)
    rate_w = curve.edge_rate_w(first=first)
    lo_w, hi_w = rate_range_w(curve, 1 if first else n - 1, margin=EDGE_MARGIN)
    lo_w, hi_w = min(lo_w, rate_w * (1 - EDGE_MARGIN)), max(hi_w, rate_w * (1 + EDGE_MARGIN))
    timing_j = hi_w * knot_timing_s(curve, 0 if first else n - 1)
    return (lo_w, hi_w), timing_j, None, None


def _edge_bound_j(curve: KnotCurve, t_s: float, *, first: bool) -> float:
    """Beyond the knots: extrapolated at the edge rate, off by up to the range's far end."""
    (lo_w, hi_w), timing_j, _, _ = _edge_entry(curve, first=first)
    rate_w = curve.edge_rate_w(first=first)
    distance_s = abs(t_s - curve.times[0 if first else -1])
    return max(hi_w - rate_w, rate_w - lo_w) * distance_s + timing_j


def _read_beyond_bound_j(curve: KnotCurve, t_s: float) -> float | None:
    """Bound past the last knot where power was read (the curve follows the readings, held
    from one to the next): each change between readings may fall anywhere in between
    (``|ΔP| x gap``), and the readings are trusted to :data:`KNOWN_RATE_MARGIN`. None when
    no power was read past the last knot."""
    last_s = curve.times[-1]
    power_times, powers = curve.power_times, curve.powers
    lo = bisect_right(power_times, last_s)
    hi = bisect_right(power_times, t_s)
    if hi <= lo:
        return None
    bound_j, previous_s = 0.0, last_s
    previous_w = powers[lo - 1] if lo > 0 else powers[lo]
    held_j = 0.0
    for k in range(lo, min(hi + 1, len(powers))):
        end_s = min(power_times[k], t_s)
        bound_j += abs(powers[k] - previous_w) * (end_s - previous_s)
        held_j += powers[k] * (end_s - previous_s)
        previous_s, previous_w = end_s, powers[k]
    return bound_j + KNOWN_RATE_MARGIN * held_j


def smoothing_j(curve: KnotCurve, t_s: float) -> float:
    """What averaged power readings blur at ``t_s``: a moving average over W spreads a
    power change over W, so the curve integrated from the averages (placed at their
    windows' middles) may be off by up to ``W / 2 x`` the range of power within W of t."""
    if not curve.averaged:
        return 0.0
    window_s = curve.power_window_s or 0.0
    times, energies = curve.times, curve.energies
    lo = max(bisect_left(times, t_s - window_s), 1)
    hi = min(bisect_right(times, t_s + window_s), len(times) - 1)
    slopes = [
        (energies[k] - energies[k - 1]) / (times[k] - times[k - 1])
        for k in range(lo, hi + 1)
        if times[k] - times[k - 1] > MIN_SLOPE_S
    ]
    return SMOOTHING_FACTOR * window_s * (max(slopes) - min(slopes)) if slopes else 0.0


def _boundary_within(
    t0_s: float, t1_s: float, starts_s: Sequence[float], ends_s: Sequence[float]
) -> bool:
    """Whether a step starts or ends strictly between ``t0_s`` and ``t1_s`` (two bisects
    each: a boundary's bound must not cost a walk over the many steps of one interval)."""
    for column in (starts_s, ends_s):
        k = bisect_right(column, t0_s)
        if k < len(column) and column[k] < t1_s:
            return True
    return False


def _known(
    times: Sequence[float], energies: Sequence[float], a: int, b: int
) -> tuple[float, float]:
    """The rate range of knots a..b (positions): their slope, widened by their disagreement."""
    rate_w = (energies[b] - energies[a]) / (times[b] - times[a])
    slopes = [
        (energies[k] - energies[k - 1]) / (times[k] - times[k - 1])
        for k in range(a + 1, b + 1)
        if times[k] - times[k - 1] > MIN_SLOPE_S
    ]
    spread = (max(slopes) - min(slopes)) / max(abs(rate_w), RATE_FLOOR_W) if slopes else 1.0
    margin = KNOWN_RATE_MARGIN + spread
    return max(0.0, rate_w * (1 - margin)), rate_w * (1 + margin)


def window_uncertainty_j(steps: Iterable[tuple[float, float, Bounds]]) -> float:
    """Bound on the error of a sum of step energies: ``(start_s, end_s, bounds)`` in order.

    A boundary shared by two contiguous steps (one starts where the previous ended) cancels;
    the others add up, and the interiors combine as a root-sum-square (see module doc).
    """
    total_j = 0.0
    interior_j2 = 0.0
    previous: tuple[float, Bounds] | None = None
    for start_s, end_s, bounds in steps:
        if previous is None or start_s != previous[0]:
            total_j += bounds.start_j + (previous[1].end_j if previous is not None else 0.0)
        interior_j2 += bounds.interior_j**2
        previous = (end_s, bounds)
    if previous is not None:
        total_j += previous[1].end_j
    return total_j + math.sqrt(interior_j2)
