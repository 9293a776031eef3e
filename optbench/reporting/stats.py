"""Statistics over a group's seeds (mean, median, std, a bootstrap confidence interval, paired tests) and over
a tune sweep's trials (the expected best after k of them)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize, stats

CONFIDENCE = 0.95
RESAMPLES = 2000
SIGNIFICANCE = 0.05  # the tests' level
POWER = 0.8  # the power a detectable difference is detected with


@dataclass(frozen=True)
class Summary:
    """What one number looks like over a group's runs."""

    mean: float
    median: float
    std: float  # sample std (ddof=1); 0 for one run
    ci_low: float  # 95% percentile-bootstrap interval of the mean; NaN for fewer than two runs
    ci_high: float
    n: int


def summarize(values: list[float | None]) -> Summary:
    """Summary of the finite-or-NaN `values` (None and NaN are left out).

    The interval is scipy's percentile bootstrap of the mean with a fixed generator, so the same
    runs always give the same interval.
    """
    array = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if not len(array):
        return Summary(math.nan, math.nan, math.nan, math.nan, math.nan, 0)
    low = high = math.nan
    if len(array) > 1:
        interval = stats.bootstrap(
            (array,),
            np.mean,
            confidence_level=CONFIDENCE,
            n_resamples=RESAMPLES,
            method="percentile",
            rng=np.random.default_rng(0),
        ).confidence_interval
        low, high = float(interval.low), float(interval.high)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return Summary(float(array.mean()), float(np.median(array)), std, low, high, len(array))


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values: the k-th smallest of m times (m - k + 1), kept monotone, at most 1."""
    order = sorted(range(len(pvalues)), key=pvalues.__getitem__)
    adjusted, running = [math.nan] * len(pvalues), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of two groups over the seeds both ran."""

    first: str
    second: str
    n: int  # common seeds
    advantage: float  # mean over common seeds of (first - second), signed so that > 0 means `first` is better
    p: float  # two-sided paired t-test; NaN with fewer than 2 common seeds or no variation in the differences
    detectable: float = math.nan  # the smallest mean difference these seeds detect (5%, 80% power); NaN untested
    seeds_needed: int | None = None  # seeds at which the observed difference would be significant; None: never
    ci_low: float = math.nan  # the 95% t-interval of the mean of (first - second), unsigned; NaN under two seeds
    ci_high: float = math.nan


def paired_t(first: str, second: str, a: dict, b: dict, higher_is_better: bool) -> Comparison:
    """Compare the values of two groups keyed by seed, on their common seeds (scipy's ttest_rel), with the
    t-interval of the mean difference that the test's p belongs to."""
    seeds = sorted(set(a) & set(b), key=str)
    x, y = np.array([a[s] for s in seeds], dtype=float), np.array([b[s] for s in seeds], dtype=float)
    sign = 1.0 if higher_is_better else -1.0
    advantage = float(sign * (x - y).mean()) if len(seeds) else math.nan
    low = high = math.nan
    if len(seeds) > 1:
        half = stats.t.ppf(1 - SIGNIFICANCE / 2, len(seeds) - 1) * np.std(x - y, ddof=1) / math.sqrt(len(seeds))
        low, high = float((x - y).mean() - half), float((x - y).mean() + half)
    if not (len(seeds) > 1 and np.ptp(x - y) > 0):  # constant differences leave the t statistic undefined
        return Comparison(first, second, len(seeds), advantage, math.nan, ci_low=low, ci_high=high)
    spread = float(np.std(x - y, ddof=1))
    return Comparison(
        first,
        second,
        len(seeds),
        advantage,
        float(stats.ttest_rel(x, y).pvalue),
        detectable_difference(spread, len(seeds)),
        seeds_needed(advantage, spread),
        low,
        high,
    )


def _paired_power(noncentrality: float, n: int, alpha: float) -> float:
    """The power of a two-sided paired t-test over n pairs at `alpha`: the noncentral t's mass beyond the critical
    values, integrated over the chi-square of the sample variance (scipy's `nct` tails turn NaN far out)."""
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)

    def rejected(v: float) -> float:  # P(|Z + nc| > critical * sqrt(v / df)) at chi-square draw v
        bound = critical * math.sqrt(v / df)
        return (stats.norm.sf(bound - noncentrality) + stats.norm.cdf(-bound - noncentrality)) * stats.chi2.pdf(v, df)

    low, high = stats.chi2.ppf([1e-12, 1 - 1e-12], df)  # the chi-square's mass, bounded, its bulk at df
    return float(integrate.quad(rejected, low, high, points=[df], limit=200)[0])


def detectable_difference(spread: float, n: int, alpha: float = SIGNIFICANCE, power: float = POWER) -> float:
    """The smallest mean difference a two-sided paired t-test over `n` seeds detects with `power` at `alpha`, when
    the per-seed differences have standard deviation `spread`: so that "no significant difference" is not read
    as "the same"."""
    if n < 2 or not spread > 0:
        return math.nan
    return _noncentrality(n, alpha, power) * spread / math.sqrt(n)


@functools.cache
def _noncentrality(n: int, alpha: float, power: float) -> float:
    """The noncentrality at which a two-sided paired t-test over n pairs has `power` (one per n: a report has few)."""
    return optimize.brentq(lambda nc: _paired_power(nc, n, alpha) - power, 0.0, 200.0)


def seeds_needed(difference: float, spread: float, alpha: float = SIGNIFICANCE, most: int = 100_000) -> int | None:
    """The fewest seeds at which a paired t-test would call `difference` significant, were the per-seed
    differences to keep this mean and standard deviation `spread`; None for no difference (or beyond `most`)."""
    if not (spread > 0 and math.isfinite(difference) and difference != 0):
        return None

    def significant(n: int) -> bool:
        return abs(difference) * math.sqrt(n) / spread >= stats.t.ppf(1 - alpha / 2, n - 1)

    if not significant(most):
        return None
    low, high = 2, most  # significant(n) turns true once and stays true: t grows with n, its critical value falls
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if significant(middle) else (middle + 1, high)
    return low


def expected_best(values: Sequence[float], k: int, higher_is_better: bool = True) -> float:
    """The expected best of `k` trials drawn at random, without replacement, from these trials' `values`: how good
    a tuning budget of k trials is. Tang et al.'s (2020) unbiased estimator, which corrects Dodge et al. (2019):
    with the B values sorted worst first, v(1) .. v(B), it is the sum over i = k..B of C(i-1, k-1) / C(B, k) v(i)."""
    if not 1 <= k <= len(values):
        raise ValueError(f"k={k} must be between 1 and the number of trials ({len(values)})")
    ordered = sorted(values, reverse=not higher_is_better)  # worst first
    total = sum(math.comb(i - 1, k - 1) * ordered[i - 1] for i in range(k, len(ordered) + 1))
    return total / math.comb(len(ordered), k)
