"""Bootstrap intervals of a difference B − A, shared by `answerdesk eval compare` (eval/compare.py,
paired: the same cases for A and B) and A/B experiments on live traffic (support/experiments.py,
unpaired: each conversation saw one variant).

Rates are ratios of per-unit sums (numerator and denominator arrays, one entry per case or
conversation), so a resample recomputes the ratio from the resampled units.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]
_BATCH = 250  # resamples drawn at once (memory: batch × units)


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def _interval(spread: Array, confidence: float) -> tuple[float, float]:
    spread = spread[~np.isnan(spread)]
    if not len(spread):
        return math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(spread, [tail, 100 - tail])
    return float(low), float(high)


def paired_bootstrap(
    num_a: Array,
    den_a: Array,
    num_b: Array,
    den_b: Array,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 7,
) -> tuple[float, float, float]:
    """B − A of a ratio metric, and its percentile interval over case resamples (the same for A and B)."""
    n = len(num_a)
    if n == 0:
        return math.nan, math.nan, math.nan
    point = _ratio(num_b.sum(), den_b.sum()) - _ratio(num_a.sum(), den_a.sum())
    rng = np.random.default_rng(seed)
    differences: list[Array] = []
    for start in range(0, resamples, _BATCH):
        index = rng.integers(0, n, size=(min(_BATCH, resamples - start), n))
        with np.errstate(invalid="ignore", divide="ignore"):
            b = num_b[index].sum(axis=1) / den_b[index].sum(axis=1)
            a = num_a[index].sum(axis=1) / den_a[index].sum(axis=1)
        differences.append(b - a)
    return (point, *_interval(np.concatenate(differences), confidence))


def unpaired_bootstrap(
    num_a: Array,
    den_a: Array,
    num_b: Array,
    den_b: Array,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 7,
) -> tuple[float, float, float]:
    """B − A of a ratio metric when A and B are different units (an experiment's two arms): each
    arm's units are resampled on their own."""
    if len(num_a) == 0 or len(num_b) == 0:
        return math.nan, math.nan, math.nan
    point = _ratio(num_b.sum(), den_b.sum()) - _ratio(num_a.sum(), den_a.sum())
    rng = np.random.default_rng(seed)
    differences: list[Array] = []
    for start in range(0, resamples, _BATCH):
        size = min(_BATCH, resamples - start)
        index_a = rng.integers(0, len(num_a), size=(size, len(num_a)))
        index_b = rng.integers(0, len(num_b), size=(size, len(num_b)))
        with np.errstate(invalid="ignore", divide="ignore"):
            b = num_b[index_b].sum(axis=1) / den_b[index_b].sum(axis=1)
            a = num_a[index_a].sum(axis=1) / den_a[index_a].sum(axis=1)
        differences.append(b - a)
    return (point, *_interval(np.concatenate(differences), confidence))


def bootstrap_median_difference(
    a: Array, b: Array, resamples: int = 2000, confidence: float = 0.95, seed: int = 7, paired: bool = True
) -> tuple[float, float, float]:
    """Bootstrap of median(B) − median(A), e.g. for latency; ``paired``: the same resample of cases
    for both (eval compare), else each sample on its own (an experiment's arms)."""
    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    index_a = rng.integers(0, len(a), size=(resamples, len(a)))
    index_b = index_a if paired else rng.integers(0, len(b), size=(resamples, len(b)))
    spread = np.median(b[index_b], axis=1) - np.median(a[index_a], axis=1)
    return (float(np.median(b) - np.median(a)), *_interval(spread, confidence))


def verdict(low: float, high: float, higher_is_better: bool | None) -> str:
    """'B better' / 'B worse' when the interval excludes 0, else 'no clear difference'; for a
    metric with no better direction (``None``), 'B higher' / 'B lower'."""
    if math.isnan(low) or math.isnan(high):
        return "n/a"
    if low > 0 or high < 0:
        if higher_is_better is None:
            return "B higher" if low > 0 else "B lower"
        improved = (low > 0) == higher_is_better
        return "B better" if improved else "B worse"
    return "no clear difference"
