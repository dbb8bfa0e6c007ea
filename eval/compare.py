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

# The interval maths is shared with live A/B experiments (support/experiments.py).
from common.bootstrap import bootstrap_median_difference, paired_bootstrap, verdict

__all__ = ["bootstrap_median_difference", "compare_runs", "paired_bootstrap", "ratio_terms", "verdict"]

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
