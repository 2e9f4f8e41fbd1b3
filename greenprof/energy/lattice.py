"""The update lattice of a stale energy counter: when it updates, from when its value changes.

NVIDIA's energy counter is refreshed only about every 100 ms (10-50 ms on some drivers);
between updates a read returns the stale value. A reading ``(t, E)`` therefore means "E
was the energy at the last update instant u <= t", not at t. :class:`UpdateLattice`
recovers the lattice ``u_k = phase + k * period`` from the poll intervals: one in which the
value changed contains an update, one in which it did not contains none. The sampler
dithers its poll times, so folding these intervals modulo a candidate period narrows the
phase with every poll; the period is the candidate for which every interval is consistent
(a coarse grid first, then finer grids over a longer window). Until the lattice is known,
and for counters that change at every poll, there is none (``period_s is None``): knots
stay at poll times, which is conservative.

Pure: it sees only ``(a, b, changed)`` poll intervals; nothing here knows energies or steps.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from itertools import pairwise

__all__ = ["UpdateLattice"]

FIT_WINDOW_INTERVALS = 300
"""Poll intervals kept for the fit: 30 s at 10 Hz. Over 30 s a period error of
period**2 / (8 x 30 s), about 40 us at 100 ms, already drifts the phase by an eighth of a
period, so the fit pins the period that finely; a longer window would cost more per refit
(each candidate period folds every interval) for a lattice that drifts with temperature."""
MIN_FIT_INTERVALS = 30
"""No fit before this many intervals (about 3 s at 10 Hz): fewer leave aliases of the
period (e.g. 2/3 or 3/2 of it) as consistent as the true one."""
REFIT_EVERY = 10
"""Refit after this many new intervals while the window grows (the period sharpens)..."""
REFIT_EVERY_FULL = 50
"""...and after this many (about 5 s at 10 Hz) once the window is full and a lattice is
known: it only has to track a slow drift, and refits are the attribution's main cost."""
MAX_VIOLATION_SHARE = 0.02
"""A fit may contradict this share of the intervals: a poll timestamped a little off the
moment it read the counter (thread wake-up, GIL) can land on the wrong side of an update."""
DECLARED_WINDOW_INTERVALS = 30
"""The declared period is tried on the latest this many poll intervals (about 3 s at 10 Hz),
then on twice as many while the phase is not pinned: a short window keeps the drift of a
declared period that is a little off small (0.5 % off: 15 % of a period across 30 polls;
a larger drift shows as polls that contradict it, and the declared period is refused).
Measured with 0.5 % off: still better than knots at poll times (bench_accuracy, warm-up)."""
DECLARED_MAX_SPREAD = 0.1
"""The declared period is used once the polls pin its phase within this fraction of a
period (10 ms at 100 ms); measured in ``benchmarks/bench_accuracy.py`` (warm-up)."""
AMBIGUITY = 0.03
"""Polls this close to an estimated update (fraction of the period) are ambiguous."""
COARSE_WINDOW_INTERVALS = 30
"""The first grid runs on the latest this many intervals only; each later stage doubles
the window and halves the grid step."""
MAX_GRID_POINTS = 1000
"""The coarse grid has at most about this many periods per side of the search range."""
DRIFT_FRACTION = 8
"""Grid step: a period error of one step drifts the phase by period / this across the
window (period**2 / (DRIFT_FRACTION x window)), fine enough to keep the true period's
neighbourhood on the grid."""
BEAM_WIDTH = 3
"""Distinct candidate periods carried from one search stage to the next: on a short
window an alias can look as good as the true period; a longer one tells them apart."""
REFINE_ROUNDS = 3
"""Zoom-ins after the search, each with a grid four times finer."""

Constraint = tuple[float, float, bool]
"""A poll interval ``(a, b]`` and whether the counter changed in it."""

Candidate = tuple[int, float, float, float]
"""A fit on a grid: (violations, -slack, period, phase); sorted, the best comes first."""


def _fold(
    period_s: float, constraints: Sequence[Constraint], t_ref: float
) -> tuple[int, float, float]:
    """Fold poll intervals modulo ``period_s``: (violations, slack, best phase offset).

    A changed interval must contain an update instant, an unchanged one must not. The
    best phase is the middle of the widest region satisfying the most constraints.
    """
    events: list[tuple[float, int]] = []
    violations = 0
    n_changed = 0
    for a, b, changed in constraints:
        length = b - a
        if length >= period_s:
            violations += 0 if changed else 1  # an update must have happened in there
            continue
        weight = 1 if changed else -1
        n_changed += changed
        x0 = (a - t_ref) % period_s
        x1 = x0 + length
        events.append((x0, weight))
        if x1 <= period_s:
            events.append((x1, -weight))
        else:  # the arc wraps around the circle
            events += [(period_s, -weight), (0.0, weight), (x1 - period_s, -weight)]
    events.sort()
    level, best, best_width, best_mid = 0, -(10**9), -1.0, 0.0
    for i, (x, delta) in enumerate(events):
        level += delta
        nxt = events[i + 1][0] if i + 1 < len(events) else period_s
        if nxt > x and (level > best or (level == best and nxt - x > best_width)):
            best, best_width, best_mid = level, nxt - x, 0.5 * (x + nxt)
    if not events:
        return violations, period_s, 0.0
    return violations + n_changed - best, best_width, best_mid


def _grid_search(
    constraints: Sequence[Constraint],
    centres_s: Sequence[float],
    half_width_s: float,
    step_s: float,
) -> list[Candidate]:
    """Candidate periods on grids around ``centres_s``, best first.

    Each result is (violations, -slack, period, phase); the true period violates no
    constraint, and the most slack marks the middle of the consistent range.
    """
    t_ref = constraints[len(constraints) // 2][0]
    n = max(1, math.ceil(half_width_s / step_s))
    periods = {round(c + i * step_s, 12) for c in centres_s for i in range(-n, n + 1)}
    results = []
    for period_s in periods:
        if period_s > 0:
            violations, slack, offset = _fold(period_s, constraints, t_ref)
            results.append((violations, -slack, period_s, t_ref + offset))
    results.sort()
    return results


def _distinct(results: Sequence[Candidate], gap_s: float, k: int) -> list[float]:
    """The periods of the k best results that are more than gap_s apart."""
    kept: list[float] = []
    for _, _, period_s, _ in results:
        if all(abs(period_s - p) > gap_s for p in kept):
            kept.append(period_s)
            if len(kept) == k:
                break
    return kept


def _middle(results: Sequence[Candidate], t_end: float) -> tuple[float, float, float]:
    """The lattice in the middle of those that fit best, where it matters: at the latest poll.

    Each period that fits best allows a range of update instants near the latest poll
    (its phase +- half its slack); the estimate is the middle of their union, with the
    middle of the periods that allow it. Not the period with the widest slack: the
    consistent (period, phase) region is a skewed polygon whose widest slice can lie at
    one end of its period range, and such a lattice drifts off by several milliseconds
    at the latest polls, where new knots are placed.
    """
    fewest = results[0][0]
    best = [(p, u + round((t_end - u) / p) * p, -s) for v, s, p, u in results if v == fewest]
    ref_s = best[0][1]
    centred = [(p, ref_s + (u - ref_s + 0.5 * p) % p - 0.5 * p, w) for p, u, w in best]
    lo_s = min(u - 0.5 * w for _, u, w in centred)
    hi_s = max(u + 0.5 * w for _, u, w in centred)
    mid_s = 0.5 * (lo_s + hi_s)
    periods = [p for p, u, w in centred if abs(u - mid_s) <= 0.5 * w]
    if not periods:
        periods = [min(centred, key=lambda c: abs(c[1] - mid_s))[0]]
    return 0.5 * (min(periods) + max(periods)), mid_s, hi_s - lo_s


class UpdateLattice:
    """Estimates a stale counter's update period and phase from when its value changes.

    Needs polls shorter than the period now and then (unchanged intervals): a counter
    that changes at every poll is treated as continuous (knots at poll times).
    ``declared_period_s`` (the sensor's ``update_period_s``) is the prior: it stands in
    for the period until the polls pin one down themselves (see :meth:`_from_declared`).

    Example::

        lattice = UpdateLattice(declared_period_s=0.1)
        lattice.observe(0.0, 0.09, changed=False)  # ... one call per poll interval
        lattice.period_s, lattice.phase_s  # None until known; then u_k = phase + k * period
    """

    def __init__(self, declared_period_s: float | None = None) -> None:
        self._declared_s = declared_period_s
        self._constraints: deque[Constraint] = deque(maxlen=FIT_WINDOW_INTERVALS)
        self._since_fit = 0
        self._longest_unchanged_s = 0.0
        self.period_s: float | None = None
        """The update period, when the lattice is known."""
        self.phase_s = 0.0
        """One update instant (monotonic seconds); the others are a whole period apart."""
        self.spread_s = 0.0
        """Width of the range of update instants near the latest poll that fit the polls."""

    def observe(self, a_s: float, b_s: float, changed: bool) -> bool:
        """Record one poll interval; True when the estimate was (re)computed."""
        last = self._constraints[-1] if self._constraints else None
        if not changed and last is not None and not last[2] and last[1] == a_s:
            self._constraints[-1] = (last[0], b_s, False)  # merge a run of unchanged polls
        else:
            self._constraints.append((a_s, b_s, changed))
        if not changed and math.isfinite(a_s):
            self._longest_unchanged_s = max(
                self._longest_unchanged_s, b_s - self._constraints[-1][0]
            )
        self._since_fit += 1
        n = len(self._constraints)
        # refit often while the window grows (the period sharpens), then every 5 s or so
        due = (
            REFIT_EVERY_FULL
            if self.period_s is not None and n == self._constraints.maxlen
            else REFIT_EVERY
        )
        if self._since_fit < due or n < MIN_FIT_INTERVALS:
            return False
        self._since_fit = 0
        return self._fit()

    @property
    def maturity(self) -> float:
        """How full the fit window is (0 to 1): a young lattice fits a few seconds of polls,
        over which a period a few % off (an alias) can look as consistent as the true one
        and drift by tens of ms before the longer window refutes it (measured:
        bench_accuracy, warm-up)."""
        maxlen = self._constraints.maxlen or FIT_WINDOW_INTERVALS
        return len(self._constraints) / maxlen

    @property
    def staleness_s(self) -> float:
        """How old a value read may be while the lattice is unknown: the longest interval
        the counter was seen not to change (its period is at least that), at most the
        declared period; 0 when it changed at every poll (a continuous counter, as far as
        the polls can tell)."""
        if self._declared_s:
            return min(self._longest_unchanged_s, self._declared_s)
        return self._longest_unchanged_s

    def update_instant(self, a_s: float, b_s: float) -> float:
        """The last update instant in the poll interval ``(a_s, b_s]``.

        Without a lattice, the middle of where it can be: ``(max(a, b - staleness), b]``
        (the best guess for an update instant spread evenly there; b itself, the poll,
        is the latest it can be, and the naive choice).
        """
        if self.period_s is None:
            if self._longest_unchanged_s <= 0.0 or not math.isfinite(a_s):
                return b_s
            return b_s - 0.5 * min(b_s - a_s, self.staleness_s)
        period_s = self.period_s
        u_s = self.phase_s + math.floor((b_s - self.phase_s) / period_s) * period_s
        if u_s > a_s:
            return u_s
        # the estimate is slightly off: the update is at the end nearest the lattice
        return b_s if u_s + period_s - b_s < a_s - u_s else math.nextafter(a_s, b_s)

    def alternative_instant(self, a_s: float, b_s: float) -> float | None:
        """The other candidate update instant when the poll ``b_s`` lies so close to an
        update that the phase's uncertainty cannot tell whether it saw it; else None.

        When the lattice has no instant inside ``(a_s, b_s]`` although the value changed,
        the phase is a little off and the update is at one end: the other end is the
        candidate (the nearer end to the lattice was wrong a few times per 10,000 polls,
        a whole period off; measured in bench_accuracy, clean counter, max error)."""
        if self.period_s is None:
            return None
        period_s = self.period_s
        margin_s = max(AMBIGUITY * period_s, 0.5 * self.spread_s)
        u_s = self.update_instant(a_s, b_s)
        on_lattice = self.phase_s + math.floor((b_s - self.phase_s) / period_s) * period_s
        if on_lattice <= a_s:  # no lattice instant inside: both ends are candidates
            return math.nextafter(a_s, b_s) if u_s == b_s else b_s
        if u_s + period_s - b_s < margin_s:
            return u_s + period_s  # b may already have seen the next update
        if b_s - u_s < margin_s and u_s - period_s > a_s - margin_s:
            # b may have come just before the update at u (then the one before, perhaps a
            # hair after a, is the one it saw)
            return max(u_s - period_s, math.nextafter(a_s, b_s))
        return None

    def _bounds(self, constraints: Sequence[Constraint]) -> tuple[float, float] | None:
        """Period bounds: above the longest unchanged run, below two distinct updates' span."""
        unchanged = [b - a for a, b, changed in constraints if not changed]
        if not unchanged:
            return None
        lo_s = max(unchanged)
        changes = [(a, b) for a, b, changed in constraints if changed]
        spans = [b1 - a0 for (a0, _), (_, b1) in pairwise(changes)]
        hi_s = min(spans) if spans else 4 * lo_s
        return (lo_s, hi_s) if hi_s > lo_s else None

    def _fit(self) -> bool:
        """Fit the lattice; True when the estimate changed."""
        constraints = list(self._constraints)
        bounds = self._bounds(constraints)
        best = None
        if self.period_s is not None:  # track the known lattice: a narrow search
            step_s = self.period_s**2 / (DRIFT_FRACTION * (constraints[-1][1] - constraints[0][0]))
            best = self._refine(constraints, [self.period_s], step_s)
        if (best is None or not self._acceptable(best[0], constraints)) and bounds is not None:
            best = self._search(constraints, *bounds)
        if best is None or not self._acceptable(best[0], constraints):
            best = self._from_declared(constraints)
        if best is None:
            known = self.period_s is not None
            self.period_s = None  # not a regular lattice (yet): knots at poll times
            return known
        self.period_s, self.phase_s = best[2], best[3]
        self.spread_s = -best[1]
        return True

    def _from_declared(self, constraints: Sequence[Constraint]) -> Candidate | None:
        """The declared period as the lattice's, while the polls cannot yet pin one down.

        At 10 Hz polls of a 100 ms counter few poll intervals are shorter than the period,
        so for 3-10 s several periods explain the polls equally well; taking the sensor's
        word for the period, only the phase is left to fit, and that needs far fewer polls.
        On the latest :data:`DECLARED_WINDOW_INTERVALS` only, so that a declared period a
        little off drifts the phase by little over the window; accepted only when no poll
        contradicts it and the phase is pinned within :data:`DECLARED_MAX_SPREAD` of a
        period. The polls' own fit replaces it as soon as it succeeds.
        """
        declared_s = self._declared_s
        if not declared_s:
            return None
        n = DECLARED_WINDOW_INTERVALS
        while True:
            window = constraints[-n:]
            if all(changed for _, _, changed in window):
                return None  # no sign of a lattice: the counter may update at every poll
            t_end = window[-1][1]
            violations, slack_s, offset_s = _fold(declared_s, window, t_end)
            if violations:
                return None  # the polls contradict the declared period (or it drifts)
            if slack_s < DECLARED_MAX_SPREAD * declared_s:
                return violations, -slack_s, declared_s, t_end + offset_s
            if n >= len(constraints):
                return None
            n *= 2  # more polls pin the phase better (if the period is right)

    @staticmethod
    def _acceptable(violations: int, constraints: Sequence[Constraint]) -> bool:
        return violations <= MAX_VIOLATION_SHARE * len(constraints)

    @staticmethod
    def _search(constraints: Sequence[Constraint], lo_s: float, hi_s: float) -> Candidate | None:
        """Coarse grid on the latest polls, then finer grids over windows twice as long.

        A beam of the few best candidates survives each stage: on a short window an
        alias can look as good as the true period; a longer one tells them apart.
        """
        n = COARSE_WINDOW_INTERVALS
        window = constraints[-n:]
        # a period error of step_s drifts the phase by period/8 across the window
        step_s = max(
            lo_s * lo_s / (DRIFT_FRACTION * (window[-1][1] - window[0][0])),
            (hi_s - lo_s) / MAX_GRID_POINTS,
        )
        half_s = 0.5 * (hi_s - lo_s)
        results = _grid_search(window, [lo_s + half_s], half_s, step_s)
        while n < len(constraints):
            n = min(2 * n, len(constraints))
            beam = _distinct(results, 2 * step_s, BEAM_WIDTH)
            results = _grid_search(constraints[-n:], beam, 2 * step_s, step_s / 2)
            step_s /= 2
        rivals = [r for r in results if r[0] == results[0][0]]
        if len(_distinct(rivals, 4 * step_s, 2)) > 1:
            return None  # another period explains the polls as well: wait for more
        return UpdateLattice._refine(constraints, [results[0][2]], step_s, centred=False)

    @staticmethod
    def _refine(
        constraints: Sequence[Constraint],
        centres_s: Sequence[float],
        step_s: float,
        *,
        centred: bool = True,
    ) -> Candidate:
        """Zoom in on the middle of the range of periods that fit best.

        Not on the period with the widest phase slack: the consistent (period, phase)
        region is a skewed polygon whose widest slice can lie at one end of its period
        range, and a lattice with such a period drifts off by several milliseconds at the
        window's edges, where new knots are placed.
        """
        results = _grid_search(constraints, centres_s, 2 * step_s, step_s / 2)
        if not centred:  # acquisition: the widest slack (a middle of a wide range can be off)
            best = results[0]
            for _ in range(REFINE_ROUNDS):
                step_s /= 4
                best = _grid_search(constraints, [best[2]], 2 * step_s, step_s / 2)[0]
            return best
        for _ in range(REFINE_ROUNDS):
            step_s /= 4
            centre_s, _, _ = _middle(results, constraints[-1][1])
            results = _grid_search(constraints, [centre_s], 2 * step_s, step_s / 2)
        period_s, phase_s, spread_s = _middle(results, constraints[-1][1])
        violations, _, _ = _fold(period_s, constraints, constraints[-1][1])
        if violations > results[0][0]:  # not convex after all: keep the best on the grid
            return results[0]
        return violations, -spread_s, period_s, phase_s
