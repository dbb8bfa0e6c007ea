"""Compare two runs case by case: B − A per metric with a paired bootstrap interval and a verdict.

Each metric is a ratio of per-case sums (e.g. hallucination rate = answered should-abstain cases /
should-abstain cases), so a bootstrap resample of cases recomputes it for both runs on the same cases.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

# metric → higher is better?
DIRECTIONS = {
    "recall@1": True,
    "recall@5": True,
    "recall@10": True,
    "mrr@10": True,
    "ndcg@10": True,
    "hallucination_rate": False,
    "error_rate": False,
    "answered_precision": True,
    "latency_p50_ms": False,
}

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Comparison:
    metric: str
    a: float
    b: float
    difference: float
    low: float
    high: float
    verdict: str


def load_rows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "cases.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: point at a folder written by `answerdesk eval run --out`")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def ratio_terms(rows: Sequence[dict[str, Any]], metric: str) -> tuple[Array, Array]:
    """Per-case numerator and denominator whose sums give ``metric``."""
    if metric in ("hallucination_rate", "error_rate"):
        wanted = metric == "hallucination_rate"
        den = np.array([1.0 if row["should_abstain"] == wanted else 0.0 for row in rows])
        answered = np.array([1.0 if row["answered"] else 0.0 for row in rows])
        return (answered if wanted else 1.0 - answered) * den, den
    if metric == "answered_precision":
        den = np.array([1.0 if row["answered"] else 0.0 for row in rows])
        return den * np.array([1.0 if row["correct_if_answered"] else 0.0 for row in rows]), den
    key = "rr@10" if metric == "mrr@10" else metric
    values = [row.get(key) for row in rows]
    den = np.array([0.0 if value is None else 1.0 for value in values])
    return np.array([0.0 if value is None else float(value) for value in values]), den


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
    for start in range(0, resamples, 250):
        index = rng.integers(0, n, size=(min(250, resamples - start), n))
        with np.errstate(invalid="ignore", divide="ignore"):
            b = num_b[index].sum(axis=1) / den_b[index].sum(axis=1)
            a = num_a[index].sum(axis=1) / den_a[index].sum(axis=1)
        differences.append(b - a)
    spread = np.concatenate(differences)
    spread = spread[~np.isnan(spread)]
    if not len(spread):
        return point, math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(spread, [tail, 100 - tail])
    return point, float(low), float(high)


def bootstrap_median_difference(
    a: Array, b: Array, resamples: int = 2000, confidence: float = 0.95, seed: int = 7
) -> tuple[float, float, float]:
    """Paired bootstrap of median(B) − median(A), e.g. for latency."""
    if len(a) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(a), size=(resamples, len(a)))
    spread = np.median(b[index], axis=1) - np.median(a[index], axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(spread, [tail, 100 - tail])
    return float(np.median(b) - np.median(a)), float(low), float(high)


def verdict(low: float, high: float, higher_is_better: bool) -> str:
    """'B better' / 'B worse' when the interval excludes 0, else 'no clear difference'."""
    if math.isnan(low) or math.isnan(high):
        return "n/a"
    if low > 0 or high < 0:
        improved = (low > 0) == higher_is_better
        return "B better" if improved else "B worse"
    return "no clear difference"


def compare_runs(
    rows_a: Sequence[dict[str, Any]],
    rows_b: Sequence[dict[str, Any]],
    resamples: int = 2000,
    confidence: float = 0.95,
) -> list[Comparison]:
    """Compare on the cases both runs share (by id)."""
    by_id = {row["id"]: row for row in rows_b}
    paired_a = [row for row in rows_a if row["id"] in by_id]
    if not paired_a:
        raise ValueError("the two runs share no case ids")
    paired_b = [by_id[row["id"]] for row in paired_a]
    comparisons = []
    for metric, higher_is_better in DIRECTIONS.items():
        if metric == "latency_p50_ms":
            a = np.array([float(row["latency_ms"]) for row in paired_a])
            b = np.array([float(row["latency_ms"]) for row in paired_b])
            difference, low, high = bootstrap_median_difference(a, b, resamples, confidence)
            value_a, value_b = float(np.median(a)), float(np.median(b))
        else:
            num_a, den_a = ratio_terms(paired_a, metric)
            num_b, den_b = ratio_terms(paired_b, metric)
            if not den_a.sum() and not den_b.sum():
                continue
            difference, low, high = paired_bootstrap(num_a, den_a, num_b, den_b, resamples, confidence)
            value_a, value_b = _ratio(num_a.sum(), den_a.sum()), _ratio(num_b.sum(), den_b.sum())
        comparisons.append(
            Comparison(metric, value_a, value_b, difference, low, high, verdict(low, high, higher_is_better))
        )
    return comparisons


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else math.nan
