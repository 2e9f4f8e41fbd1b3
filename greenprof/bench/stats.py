"""Pure statistics for the bench: means, t intervals, a ratio of means, the verdict.

No SciPy (not a dependency): the Student t quantile is computed here from the
regularised incomplete beta function (continued fraction, Lentz's method) and
bisection; tests check it against published quantiles.

The comparison of two variants is the ratio of their mean J/sample, with an interval
from the delta method on the log of the ratio (the two means' relative standard errors;
Welch–Satterthwaite degrees of freedom). The verdict follows that interval: "no
difference detected" when it contains 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class Interval:
    """A mean with the half-width of its confidence interval (nan with one value)."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def overlaps(self, other: Interval) -> bool:
        if math.isnan(self.half_width) or math.isnan(other.half_width):
            return True
        return self.low <= other.high and other.low <= self.high


def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def stdev(values: Sequence[float]) -> float:
    """Sample standard deviation (n − 1); nan below two values."""
    if len(values) < 2:
        return math.nan
    m = mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (e.g. ``t_quantile(0.975, 10)`` ≈ 2.228)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if t_cdf(middle, df) < p:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)


def interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """The mean of ``values`` and the half-width of its t confidence interval."""
    n = len(values)
    if n < 2:
        return Interval(mean(values), math.nan, n)
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * stdev(values) / math.sqrt(n)
    return Interval(mean(values), half, n)


@dataclass(frozen=True, slots=True)
class Ratio:
    """mean(a) / mean(b) with its confidence interval [low, high] (nan: not known)."""

    value: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        """Half the interval's width: the "± x %" of a statement."""
        return (self.high - self.low) / 2.0


def ratio_of_means(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Ratio:
    """mean(a)/mean(b) and its interval: the delta method on the log of the ratio (so the
    interval stays positive), Welch–Satterthwaite degrees of freedom."""
    mean_a, mean_b = mean(a), mean(b)
    value = mean_a / mean_b if mean_b else math.nan
    if len(a) < 2 or len(b) < 2 or not mean_a or not mean_b or value <= 0:
        return Ratio(value, math.nan, math.nan)
    va = (stdev(a) / mean_a) ** 2 / len(a)  # squared relative standard errors
    vb = (stdev(b) / mean_b) ** 2 / len(b)
    relative = math.sqrt(va + vb)
    if relative == 0.0:
        return Ratio(value, value, value)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    spread = t_quantile(0.5 + confidence / 2.0, df) * relative
    return Ratio(value, value * math.exp(-spread), value * math.exp(spread))


def verdict(
    name_a: str,
    a: Sequence[float],
    name_b: str,
    b: Sequence[float],
    *,
    what: str = "energy per sample",
    confidence: float = CONFIDENCE,
) -> str:
    """One sentence: "A uses 18 % ± 4 % less energy per sample than B", or "no
    difference detected between A and B" (the ratio's interval holds 1), or "not
    compared" with fewer than 2 repeats of either. The test is the ratio's own interval
    (Welch), not whether the two variants' intervals overlap: that would be a test at
    about 99.5 %, and say "no difference" next to a printed ratio interval that
    excludes 1."""
    if len(a) < 2 or len(b) < 2:
        return f"{name_a} and {name_b} not compared: fewer than 2 repeats each (--repeats)"
    ratio = ratio_of_means(a, b, confidence)
    if math.isnan(ratio.low) or ratio.low <= 1.0 <= ratio.high:
        return (
            f"no difference detected between {name_a} and {name_b} in {what} "
            f"(ratio {ratio.value:.2f}, {confidence * 100:.0f} % interval {ratio.low:.2f} to "
            f"{ratio.high:.2f})"
        )
    change = (1.0 - ratio.value) * 100.0
    direction = "less" if change > 0 else "more"
    return (
        f"{name_a} uses {abs(change):.0f} % ± {ratio.half_width * 100.0:.0f} % {direction} "
        f"{what} than {name_b}"
    )
