"""The bench's statistics against known values: t quantiles, intervals, ratio, verdict."""

from __future__ import annotations

import math
import random

import pytest

from greenprof.bench import stats


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.975, 1, 12.7062),
        (0.975, 2, 4.3027),
        (0.975, 4, 2.7764),
        (0.975, 10, 2.2281),
        (0.975, 30, 2.0423),
        (0.995, 5, 4.0321),
        (0.95, 3, 2.3534),
        (0.975, 10_000, 1.9602),
    ],
)
def test_t_quantile_matches_published_tables(p: float, df: int, expected: float) -> None:
    assert stats.t_quantile(p, df) == pytest.approx(expected, abs=1e-4)


def test_t_quantile_is_symmetric_and_inverts_the_cdf() -> None:
    assert stats.t_quantile(0.025, 7) == pytest.approx(-stats.t_quantile(0.975, 7))
    for df in (1.5, 3, 12.3):
        assert stats.t_cdf(stats.t_quantile(0.9, df), df) == pytest.approx(0.9, abs=1e-9)


def test_interval_of_known_values() -> None:
    found = stats.interval([10.0, 12.0, 14.0])  # mean 12, s 2, t(0.975, 2) 4.3027
    assert found.mean == pytest.approx(12.0)
    assert found.half_width == pytest.approx(4.3027 * 2 / math.sqrt(3), rel=1e-4)
    assert found.n == 3


def test_one_value_has_no_interval() -> None:
    assert math.isnan(stats.interval([3.0]).half_width)


def test_ratio_interval_covers_the_true_ratio() -> None:
    """Synthetic repeats with a true ratio of 0.8: the 95 % interval holds it in about
    95 % of benches (seeded, so the count is fixed)."""
    rng = random.Random(7)
    trials, covered = 400, 0
    for _ in range(trials):
        a = [rng.gauss(8.0, 0.4) for _ in range(5)]
        b = [rng.gauss(10.0, 0.5) for _ in range(5)]
        ratio = stats.ratio_of_means(a, b)
        covered += ratio.low <= 0.8 <= ratio.high
    assert 0.90 * trials <= covered <= 0.99 * trials


def test_a_clear_difference_is_stated_with_its_interval() -> None:
    a = [0.80, 0.81, 0.79, 0.80]
    b = [1.00, 0.99, 1.01, 1.00]
    sentence = stats.verdict("torch", a, "keras-tf", b)
    ratio = stats.ratio_of_means(a, b)
    assert sentence == (
        f"torch uses {(1 - ratio.value) * 100:.0f} % ± {ratio.half_width * 100:.0f} % less "
        "energy per sample than keras-tf"
    )
    assert sentence.startswith("torch uses 20 % ± ")


def test_more_energy_is_said_too() -> None:
    assert " % more energy per sample than " in stats.verdict(
        "a", [2.0, 2.1, 2.05], "b", [1.0, 1.02, 1.01]
    )


def test_overlapping_intervals_mean_no_difference() -> None:
    sentence = stats.verdict("a", [0.9, 1.1, 1.0], "b", [1.0, 1.2, 1.1])
    assert sentence.startswith("no difference detected between a and b")


def test_too_few_repeats_mean_no_difference() -> None:
    assert stats.verdict("a", [1.0], "b", [2.0, 2.0]).endswith(
        "not compared: fewer than 2 repeats each (--repeats)"
    )


def test_the_ratio_interval_stays_positive_with_wild_repeats() -> None:
    ratio = stats.ratio_of_means([0.1, 1.0], [1.0, 1.1])
    assert 0.0 < ratio.low < ratio.value < ratio.high


def test_the_verdict_follows_the_ratio_interval_not_overlapping_intervals() -> None:
    """Two variants' 95 % intervals may overlap while the ratio's interval excludes 1:
    the difference is then stated (overlap would be a test at about 99.5 %)."""
    a, b = [1.0, 1.05, 0.95], [1.2, 1.27, 1.13]
    assert stats.interval(a).overlaps(stats.interval(b))
    ratio = stats.ratio_of_means(a, b)
    assert ratio.high < 1.0
    assert stats.verdict("a", a, "b", b).startswith("a uses 17 % ± 10 % less energy per sample")
