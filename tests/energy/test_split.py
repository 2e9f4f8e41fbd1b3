"""How a jump between two knots is divided among the steps it spans (greenprof.energy.split)."""

from __future__ import annotations

import math
import random
from itertools import pairwise

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from greenprof.energy.curve import KnotCurve
from greenprof.energy.split import UNKNOWN_RATE_MARGIN, segments, split_interval
from greenprof.records import Reading


def test_segments_cut_the_interval_at_step_boundaries_and_name_each_piece() -> None:
    starts, ends = [0.0, 1.05, 1.2], [1.02, 1.1, 2.0]
    points, spans = segments(1.0, 1.1, starts, ends)
    assert points == [1.0, 1.02, 1.05, 1.1]
    assert spans == [(0.0, 1.02), (1.02, 1.05), (1.05, 1.1)]  # step, gap, step
    points, spans = segments(2.0, 2.1, starts, ends)
    assert (points, spans) == ([2.0, 2.1], [(2.0, math.inf)])  # after the last step: a gap


def _curve(power_w: list[float], *, with_power: bool) -> KnotCurve:
    """A continuous counter (knots at polls, every 0.1 s) with one power level per poll."""
    curve = KnotCurve()
    energy_j = 0.0
    for k, p_w in enumerate(power_w):
        curve.add_reading(Reading("gpu:0", 0.1 * k, energy_j, p_w if with_power else None))
        energy_j += 0.1 * p_w
    return curve


def test_a_jump_is_shared_by_the_rates_of_the_steps_it_spans_and_conserved() -> None:
    """100 W until 0.45 s, 300 W after: the interval (0.4, 0.5] holds the change."""
    power = [100.0] * 5 + [300.0] * 5
    curve = _curve(power, with_power=True)
    i = 5  # knot interval (0.4, 0.5]
    points, cumulative = split_interval(curve, i, [0.0, 0.45], [0.45, 1.0])
    assert points == [pytest.approx(0.4), 0.45, pytest.approx(0.5)]
    jump_j = curve.energies[i] - curve.energies[i - 1]
    assert cumulative[-1] - cumulative[0] == jump_j  # exactly the jump, whatever the split
    # rates from the knots beyond the interval on each side: 100 W then 300 W
    assert cumulative[1] - cumulative[0] == pytest.approx(jump_j * 5 / (5 + 15))
    linear_j = jump_j * 0.5
    assert cumulative[1] - cumulative[0] < linear_j


def test_without_any_rate_the_split_is_linear() -> None:
    curve = _curve([200.0] * 3, with_power=False)
    points, cumulative = split_interval(curve, 1, [0.03], [0.06])  # a step inside (0, 0.1]
    assert points == [0.0, 0.03, 0.06, pytest.approx(0.1)]
    assert cumulative == pytest.approx([0.0, 6.0, 12.0, 20.0])


@settings(max_examples=60, deadline=None)
@example(powers=[1.0, 0.0, 1.0, 0.0], cuts=[0.0, 2.2250738585e-313], with_power=False)  # NaN once
@example(powers=[1.0, 113.0, 0.0, 0.0], cuts=[0.19921875, 0.0625], with_power=True)  # ulp past
@given(
    powers=st.lists(st.floats(0.0, 500.0), min_size=4, max_size=12),
    cuts=st.lists(st.floats(0.0, 1.2), min_size=1, max_size=16, unique=True),
    with_power=st.booleans(),
)
def test_every_split_is_monotone_and_sums_to_its_jump_exactly(
    powers: list[float], cuts: list[float], *, with_power: bool
) -> None:
    """Whatever the rates say, a split never runs backwards and never loses a joule."""
    curve = _curve(powers, with_power=with_power)
    bounds = sorted(cuts)
    starts, ends = bounds[:-1], bounds[1:]  # contiguous steps between the cuts
    for i in range(1, len(curve.times)):
        points, cumulative = split_interval(curve, i, starts, ends)
        assert points[0] == curve.times[i - 1]
        assert points[-1] == curve.times[i]
        assert cumulative[0] == curve.energies[i - 1]
        assert cumulative[-1] == curve.energies[i]
        assert all(b >= a for a, b in pairwise(cumulative))


def test_a_short_step_of_unknown_rate_never_takes_more_than_the_evidence_allows() -> None:
    """Knots misplaced (a lattice not locked yet) leave a jump the rates around it do not
    explain: 60 J in (0.4, 0.5] where every neighbour shows 100 W. A 10 ms step of unknown
    rate inside must not absorb the 51 J the known segments leave (5.1 kW): it gets at most
    the evidence's top rate, and the rest is spread by duration, as a linear split would."""
    curve = _curve([100.0] * 4 + [600.0] + [100.0] * 5, with_power=False)
    i = 5  # knot interval (0.4, 0.5]
    _, cumulative = split_interval(curve, i, [0.0, 0.41, 0.42], [0.41, 0.42, 1.0])
    jump_j = curve.energies[i] - curve.energies[i - 1]
    assert cumulative[-1] - cumulative[0] == jump_j == pytest.approx(60.0)
    short_j = cumulative[2] - cumulative[1]
    linear_j = jump_j * 0.01 / 0.1
    assert short_j <= (1 + UNKNOWN_RATE_MARGIN) * 100.0 * 0.01 + linear_j  # cap + share of rest
    assert short_j < 0.15 * jump_j  # not the 51 J the known segments leave
    assert all(b >= a for a, b in pairwise(cumulative))


def test_a_counter_that_changes_at_every_poll_splits_by_the_power_read() -> None:
    """A 20 ms counter polled about every 100 ms: each knot is 0-20 ms stale, so a slope
    over one interval is up to 20 % off, while the power readings are exact. Once that
    noise is measured, the steps' rates come from the power read during them."""
    curve = KnotCurve()
    period_s, power_w, rng = 0.02, 200.0, random.Random(3)
    t_s = 0.0
    for _ in range(60):
        t_s += 0.1 * rng.uniform(0.8, 1.2)  # the sampler's dithered polls
        seen_s = period_s * math.floor(t_s / period_s)
        curve.add_reading(Reading("gpu:0", t_s, power_w * seen_s, power_w))
    noise_s = curve.timing_noise_s()
    assert noise_s is not None and noise_s > 0.01
    i = len(curve.times) - 5
    u0, u1 = curve.times[i - 1], curve.times[i]
    cut_s = u0 + 0.3 * (u1 - u0)
    _, cumulative = split_interval(curve, i, [u0 - 0.5, cut_s], [cut_s, u1 + 0.5])
    jump_j = curve.energies[i] - curve.energies[i - 1]
    # both sides read 200 W: the cut falls where the duration puts it, not where two
    # noisy slopes would
    assert cumulative[1] - cumulative[0] == pytest.approx(0.3 * jump_j, rel=1e-9)
