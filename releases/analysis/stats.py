"""The statistical tests the analysis uses, computed from counts and sums (no samples kept).

- Latency: the Mann-Whitney U test on the binned histograms, values sharing a bin counted as
  ties (with the tie correction of the variance), normal approximation: the test Kayenta
  uses, and one that needs no assumption about the shape of a latency distribution.
- Error rates: the two-proportion z-test with the pooled proportion.
- Means (tokens, cost, feedback score): Welch's z-test from count, sum and sum of squares.

Every test answers one-sided p-values for both directions. Only ``math`` is used: the normal
tail is ``erfc``, so no dependency (scipy) is needed for the few formulas here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from releases.analysis.buckets import bin_value


@dataclass(frozen=True)
class TestResult:
    """One comparison of a canary (b) with its stable (a): ``p_greater`` is the one-sided
    p-value of "b is larger", ``p_less`` of "b is smaller"; ``effect`` is the test's own
    effect size (for Mann-Whitney, the probability that a canary value beats a stable one)."""

    statistic: float
    p_greater: float
    p_less: float
    effect: float


NO_DIFFERENCE = TestResult(0.0, 1.0, 1.0, 0.0)


def upper_tail(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def _from_z(z: float, effect: float) -> TestResult:
    return TestResult(z, upper_tail(z), upper_tail(-z), effect)


def percentile(histogram: dict[int, int], q: float) -> float | None:
    """The value at quantile ``q`` (0..1) of a binned histogram: the middle of the bin where
    the cumulative count reaches ``q`` of the total; None when empty."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1.0, q * total)
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return round(bin_value(index), 3)
    return round(bin_value(max(histogram)), 3)


def mann_whitney(a: dict[int, int], b: dict[int, int]) -> TestResult:
    """Mann-Whitney U of ``b`` against ``a`` from binned counts; values in one bin are ties."""
    n1, n2 = sum(a.values()), sum(b.values())
    if n1 == 0 or n2 == 0:
        return NO_DIFFERENCE
    below = 0  # values of a in lower bins than the current one
    u = 0.0  # how often a b value is above an a value (ties count half)
    ties = 0.0
    for index in sorted(set(a) | set(b)):
        in_a, in_b = a.get(index, 0), b.get(index, 0)
        u += in_b * below + 0.5 * in_b * in_a
        below += in_a
        t = in_a + in_b
        ties += t**3 - t
    n = n1 + n2
    mean = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    effect = u / (n1 * n2)
    if variance <= 0:  # every value in one bin: nothing tells them apart
        return TestResult(0.0, 1.0, 1.0, effect)
    # Continuity correction towards the mean, for both tails.
    z_up = (u - mean - 0.5) / math.sqrt(variance)
    z_down = (u - mean + 0.5) / math.sqrt(variance)
    return TestResult(
        (u - mean) / math.sqrt(variance), upper_tail(z_up), upper_tail(-z_down), effect
    )


def two_proportions(x1: int, n1: int, x2: int, n2: int) -> TestResult:
    """Is ``x2/n2`` different from ``x1/n1``? Pooled two-proportion z-test; ``effect`` is the
    difference of the proportions."""
    if n1 == 0 or n2 == 0:
        return NO_DIFFERENCE
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return TestResult(0.0, 1.0, 1.0, p2 - p1)
    return _from_z((p2 - p1) / se, p2 - p1)


def welch(n1: float, s1: float, q1: float, n2: float, s2: float, q2: float) -> TestResult:
    """Is the mean of b different from a's? From count, sum and sum of squares of each;
    ``effect`` is the difference of the means."""
    if n1 < 2 or n2 < 2:
        return NO_DIFFERENCE
    m1, m2 = s1 / n1, s2 / n2
    v1 = max(q1 / n1 - m1 * m1, 0.0) * n1 / (n1 - 1)
    v2 = max(q2 / n2 - m2 * m2, 0.0) * n2 / (n2 - 1)
    se = math.sqrt(v1 / n1 + v2 / n2)
    if se == 0:
        return TestResult(0.0, 1.0, 1.0, m2 - m1)
    return _from_z((m2 - m1) / se, m2 - m1)
