"""Statistics over a group's seeds: mean, median, std and a bootstrap confidence interval."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 2000


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
        interval = stats.bootstrap((array,), np.mean, confidence_level=CONFIDENCE, n_resamples=RESAMPLES,
                                   method="percentile", rng=np.random.default_rng(0)).confidence_interval
        low, high = float(interval.low), float(interval.high)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return Summary(float(array.mean()), float(np.median(array)), std, low, high, len(array))
