"""How far a median step time can be trusted: a distribution-free 95% confidence interval of
the median (order statistics), widened by the spread between separately built replicas of the
step, the interquartile range, and the same for paired ratios."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace

CONFIDENCE = 0.95


def median_ci_ranks(n: int, confidence: float = CONFIDENCE) -> tuple[int, int] | None:
    """1-based ranks ``(l, u)`` of the order statistics bracketing the median of ``n`` samples
    with coverage of at least ``confidence`` (binomial, p = 1/2); None when ``n`` is too few
    (fewer than 6 at 95%)."""
    alpha = 1.0 - confidence
    cdf, lower = 0.0, 0
    for k in range(n + 1):  # the largest l with P(Binomial(n, 1/2) <= l - 1) <= alpha / 2
        cdf += math.comb(n, k) / 2**n
        if cdf > alpha / 2:
            break
        lower = k + 1
    return (lower, n + 1 - lower) if lower >= 1 else None


def median_ci(values: Sequence[float],
              confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """A distribution-free confidence interval of the median of ``values``."""
    ranks = median_ci_ranks(len(values), confidence)
    if ranks is None:
        return None
    ordered = sorted(values)
    return ordered[ranks[0] - 1], ordered[ranks[1] - 1]


@dataclass(frozen=True)
class Stability:
    """The median of some timed steps and how precisely it is known."""

    median: float
    ci_low: float | None  # None: too few rounds for a 95% interval
    ci_high: float | None
    iqr_over_median: float
    rounds: int

    @property
    def half_width(self) -> float | None:
        """The interval's larger half, relative to the median."""
        if self.ci_low is None or self.ci_high is None or self.median <= 0:
            return None
        return max(self.median - self.ci_low, self.ci_high - self.median) / self.median

    def meets(self, target: float) -> bool:
        """Whether the interval lies within ``target`` (e.g. 0.03: +-3%) of the median."""
        width = self.half_width
        return width is not None and width <= target


def stability(values: Sequence[float]) -> Stability:
    """Median, 95% interval and relative IQR of ``values`` (at least one)."""
    if not values:
        raise ValueError("stability needs at least one value")
    median = statistics.median(values)
    ci = median_ci(values)
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = q3 = values[0]
    return Stability(median=median, ci_low=ci[0] if ci else None, ci_high=ci[1] if ci else None,
                     iqr_over_median=(q3 - q1) / median if median else math.nan,
                     rounds=len(values))


def replica_stability(groups: Sequence[Sequence[float]],
                      confidence: float = CONFIDENCE) -> Stability:
    """`stability` of the pooled times of separately built replicas of one step (timed in
    alternating rounds), with an interval wide enough for the spread between builds too.

    Rounds of one build vary less than builds do (memory layout, thread placement: a few
    percent on a shared CPU), so the interval is the wider of the pooled order-statistic one
    and a Student t interval of the replicas' medians around the pooled median.
    """
    groups = [list(g) for g in groups]
    if not groups or not all(groups):
        raise ValueError("replica_stability needs at least one value per replica")
    pooled = stability([t for g in groups for t in g])
    if len(groups) < 2 or pooled.ci_low is None or pooled.ci_high is None:
        return pooled
    from scipy.stats import t as student_t  # scipy is slow to import; few callers need it

    medians = [statistics.median(g) for g in groups]
    half = (student_t.ppf(0.5 + confidence / 2, len(groups) - 1)
            * statistics.stdev(medians) / math.sqrt(len(groups)))
    return replace(pooled, ci_low=min(pooled.ci_low, pooled.median - half),
                   ci_high=max(pooled.ci_high, pooled.median + half))


def ratio_stability(numerators: Sequence[float], denominators: Sequence[float]) -> Stability:
    """`stability` of the per-round ratios of two series timed in alternating rounds (so that
    drift hits both terms of each ratio alike)."""
    if len(numerators) != len(denominators):
        raise ValueError(f"paired series differ in length: {len(numerators)} and "
                         f"{len(denominators)}")
    return stability([a / b for a, b in zip(numerators, denominators, strict=True)])
