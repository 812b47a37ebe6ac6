"""Statistics for experiment results: the sample-ratio-mismatch (SRM) check.

A chi-square goodness-of-fit test of the exposures per variant against the shares their
weights promise. The chi-square survival function is the regularised upper incomplete gamma
function Q(df/2, x/2), computed with its series below a + 1 and its continued fraction above
(Numerical Recipes' gammq), which is accurate to ~1e-14 for the sizes experiments have.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# An experiment whose exposures split this unlikely far from its weights is flagged: its
# assignment or its logging is broken, so its results cannot be trusted.
SRM_THRESHOLD = 0.001
_EPS = 1e-15
_ITERATIONS = 10_000


@dataclass(frozen=True)
class SampleRatioCheck:
    """The chi-square statistic, its degrees of freedom, p-value, and whether SRM is flagged."""

    chi_square: float
    degrees_of_freedom: int
    p_value: float
    flagged: bool


def chi_square_sf(x: float, df: int) -> float:
    """P(X >= x) for X chi-square distributed with `df` degrees of freedom.

    Raises ValueError for df < 1.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    return _gamma_q(df / 2, x / 2)


def _gamma_q(a: float, x: float) -> float:
    if x < a + 1:
        return max(0.0, 1.0 - _gamma_p_series(a, x))
    return _gamma_q_fraction(a, x)


def _gamma_p_series(a: float, x: float) -> float:
    term = total = 1.0 / a
    denominator = a
    for _ in range(_ITERATIONS):
        denominator += 1
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_q_fraction(a: float, x: float) -> float:
    # Modified Lentz evaluation of the continued fraction for Q(a, x).
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, _ITERATIONS):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < _EPS:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def sample_ratio_check(
    *, observed: Sequence[int], weights: Sequence[int], threshold: float = SRM_THRESHOLD
) -> SampleRatioCheck:
    """Chi-square goodness of fit of `observed` exposures against `weights`; flagged below
    `threshold`.

    With no exposures, or fewer than two weighted variants, there is nothing to test (p = 1).
    Exposures of a variant of weight 0 are an SRM by themselves (p = 0). Raises ValueError when
    the two sequences differ in length.
    """
    if len(observed) != len(weights):
        raise ValueError("observed and weights must have the same length")
    total = sum(observed)
    weight_sum = sum(weights)
    weighted = sum(1 for w in weights if w > 0)
    if total == 0 or weight_sum <= 0 or weighted < 2:
        return SampleRatioCheck(0.0, max(weighted - 1, 0), 1.0, False)
    chi_square = 0.0
    for count, weight in zip(observed, weights, strict=True):
        expected = total * weight / weight_sum
        if expected == 0:
            if count:
                chi_square = math.inf
            continue
        chi_square += (count - expected) ** 2 / expected
    df = weighted - 1
    p_value = chi_square_sf(chi_square, df)
    return SampleRatioCheck(chi_square, df, p_value, p_value < threshold)
