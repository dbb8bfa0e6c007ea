from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from eval.compare import compare_runs, paired_bootstrap, ratio_terms, verdict


@pytest.mark.parametrize(
    ("low", "high", "higher_is_better", "expected"),
    [
        (0.01, 0.2, True, "B better"),
        (0.01, 0.2, False, "B worse"),
        (-0.2, -0.01, True, "B worse"),
        (-0.2, -0.01, False, "B better"),
        (-0.1, 0.1, True, "no clear difference"),
        (math.nan, 0.1, True, "n/a"),
    ],
)
def test_verdict(low: float, high: float, higher_is_better: bool, expected: str) -> None:
    assert verdict(low, high, higher_is_better) == expected


def _row(case_id: str, **values: Any) -> dict[str, Any]:
    row = {
        "id": case_id,
        "should_abstain": False,
        "answered": True,
        "correct_if_answered": True,
        "latency_ms": 1.0,
        "recall@1": 1.0,
        "rr@10": 1.0,
    }
    return row | values


@pytest.mark.parametrize(
    ("metric", "rows", "num", "den"),
    [
        ("hallucination_rate", [_row("a", should_abstain=True), _row("b")], [1, 0], [1, 0]),
        ("error_rate", [_row("a", answered=False), _row("b", should_abstain=True)], [1, 0], [1, 0]),
        ("answered_precision", [_row("a", correct_if_answered=False), _row("b", answered=False)], [0, 0], [1, 0]),
        ("mrr@10", [_row("a", **{"rr@10": 0.5}), _row("b", **{"rr@10": None})], [0.5, 0], [1, 0]),
    ],
)
def test_ratio_terms(metric: str, rows: list[dict[str, Any]], num: list[float], den: list[float]) -> None:
    got_num, got_den = ratio_terms(rows, metric)
    assert got_num.tolist() == num
    assert got_den.tolist() == den


def test_identical_runs_show_no_difference() -> None:
    values = np.array([1.0, 0.0, 1.0, 1.0, 0.0] * 20)
    ones = np.ones_like(values)
    difference, low, high = paired_bootstrap(values, ones, values, ones, resamples=500)
    assert (difference, low, high) == (0.0, 0.0, 0.0)


def test_a_clear_improvement_is_detected_and_the_interval_holds_the_point() -> None:
    rng = np.random.default_rng(0)
    a = (rng.random(400) < 0.5).astype(float)
    b = np.maximum(a, (rng.random(400) < 0.4).astype(float))  # B fixes some of A's misses, breaks none
    ones = np.ones_like(a)
    difference, low, high = paired_bootstrap(a, ones, b, ones, resamples=1000)
    assert low <= difference <= high
    assert low > 0


def test_compare_runs_pairs_by_id_and_skips_missing_metrics() -> None:
    rows_a = [_row(str(i), **{"recall@1": 0.0, "rr@10": 0.5}) for i in range(30)]
    rows_b = [_row(str(i)) for i in reversed(range(40))]
    results = {item.metric: item for item in compare_runs(rows_a, rows_b, resamples=200)}
    assert results["recall@1"].a == 0.0
    assert results["recall@1"].b == 1.0
    assert results["recall@1"].verdict == "B better"
    assert "hallucination_rate" not in results  # no should-abstain cases on either side
    assert results["latency_p50_ms"].verdict == "no clear difference"


def test_compare_runs_needs_shared_cases() -> None:
    with pytest.raises(ValueError, match="share no case ids"):
        compare_runs([_row("a")], [_row("b")])
