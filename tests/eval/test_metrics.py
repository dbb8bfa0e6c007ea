from __future__ import annotations

import math

import pytest

from eval.metrics import (
    abstention_scores,
    area_under_risk_coverage,
    citation_precision,
    error_rate,
    expected_calibration_error,
    hallucination_rate,
    ndcg_at_k,
    percentile,
    recall_at_k,
    reciprocal_rank,
    reliability_bins,
    risk_coverage,
    unique_in_order,
)


@pytest.mark.parametrize(
    ("ranked", "gold", "k", "expected"),
    [
        (["a", "b", "c"], {"a"}, 1, 1.0),
        (["a", "b", "c"], {"c"}, 2, 0.0),
        (["a", "b", "c"], {"c"}, 3, 1.0),
        (["a", "b"], {"x", "b"}, 5, 1.0),
        ([], {"a"}, 5, 0.0),
    ],
)
def test_recall_at_k(ranked: list[str], gold: set[str], k: int, expected: float) -> None:
    assert recall_at_k(ranked, gold, k) == expected


@pytest.mark.parametrize(
    ("ranked", "gold", "expected"),
    [
        (["a", "b"], {"a"}, 1.0),
        (["a", "b"], {"b"}, 0.5),
        (["a", "b"], {"z"}, 0.0),
        ([str(i) for i in range(20)], {"15"}, 0.0),
    ],
)
def test_reciprocal_rank(ranked: list[str], gold: set[str], expected: float) -> None:
    assert reciprocal_rank(ranked, gold, k=10) == expected


def test_unique_in_order() -> None:
    assert unique_in_order(["d1", "d2", "d1", "d3", "d2"]) == ["d1", "d2", "d3"]


@pytest.mark.parametrize(
    ("gold", "made", "precision", "recall"),
    [
        ([True, True, False, False], [True, False, True, False], 0.5, 0.5),
        ([True, False], [True, False], 1.0, 1.0),
        ([False, False], [False, False], 0.0, 0.0),
        ([True, True], [False, False], 0.0, 0.0),
    ],
)
def test_abstention_scores(gold: list[bool], made: list[bool], precision: float, recall: float) -> None:
    scores = abstention_scores(gold, made)
    assert scores["abstain_precision"] == precision
    assert scores["abstain_recall"] == recall


def test_abstention_scores_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        abstention_scores([True], [True, False])


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([1.0, 2.0, 3.0, 4.0], 50, 2.5), ([5.0], 95, 5.0), ([1.0, 2.0], 100, 2.0), ([3.0, 1.0, 2.0], 0, 1.0)],
)
def test_percentile(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(percentile([], 50))


@pytest.mark.parametrize(
    ("ranked", "gold", "k", "expected"),
    [
        (["a", "b"], {"a"}, 10, 1.0),
        (["b", "a"], {"a"}, 10, 1 / math.log2(3)),
        (["a", "b"], {"a", "b"}, 10, 1.0),
        (["x", "a", "b"], {"a", "b"}, 10, (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))),
        (["x", "y", "a"], {"a"}, 2, 0.0),
        ([], {"a"}, 10, 0.0),
    ],
)
def test_ndcg_at_k(ranked: list[str], gold: set[str], k: int, expected: float) -> None:
    assert ndcg_at_k(ranked, gold, k) == pytest.approx(expected)


def test_ndcg_without_gold_is_nan() -> None:
    assert math.isnan(ndcg_at_k(["a"], set()))


# should_abstain, answered → hallucination rate, error rate
@pytest.mark.parametrize(
    ("should_abstain", "answered", "hallucination", "error"),
    [
        ([True, True, False, False], [True, False, True, False], 0.5, 0.5),
        ([True, True, True], [False, False, False], 0.0, math.nan),
        ([False, False], [True, True], math.nan, 0.0),
        ([True, False, False, False], [True, False, False, True], 1.0, 2 / 3),
    ],
)
def test_hallucination_and_error_rates(
    should_abstain: list[bool], answered: list[bool], hallucination: float, error: float
) -> None:
    assert hallucination_rate(should_abstain, answered) == pytest.approx(hallucination, nan_ok=True)
    assert error_rate(should_abstain, answered) == pytest.approx(error, nan_ok=True)


@pytest.mark.parametrize(
    ("cited", "gold", "expected"),
    [
        ([["a"], ["b"]], [{"a"}, {"c"}], 0.5),
        ([["a", "b"], []], [{"a", "b"}, {"c"}], 1.0),
        ([["a", "x", "y"]], [{"a"}], 1 / 3),
        ([[], []], [{"a"}, {"b"}], math.nan),
    ],
)
def test_citation_precision(cited: list[list[str]], gold: list[set[str]], expected: float) -> None:
    assert citation_precision(cited, gold) == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize(
    ("confidence", "correct", "coverages", "risks"),
    [
        ([0.9, 0.8, 0.1], [True, True, False], [1 / 3, 2 / 3, 1.0], [0.0, 0.0, 1 / 3]),
        ([0.1, 0.9], [True, False], [0.5, 1.0], [1.0, 0.5]),
        ([0.5, 0.5], [True, False], [1.0], [0.5]),  # ties enter together
        ([], [], [], []),
    ],
)
def test_risk_coverage(
    confidence: list[float], correct: list[bool], coverages: list[float], risks: list[float]
) -> None:
    got_coverages, got_risks = risk_coverage(confidence, correct)
    assert got_coverages == pytest.approx(coverages)
    assert got_risks == pytest.approx(risks)


@pytest.mark.parametrize(
    ("confidence", "correct", "expected"),
    [
        ([0.9, 0.8, 0.1], [True, True, False], 1 / 9),  # only the last third carries risk 1/3
        ([0.9, 0.1], [False, True], (0.5 * 1.0 + 0.5 * 0.5)),
        ([0.3, 0.2], [True, True], 0.0),
    ],
)
def test_area_under_risk_coverage(confidence: list[float], correct: list[bool], expected: float) -> None:
    assert area_under_risk_coverage(confidence, correct) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("confidence", "correct", "bins", "expected"),
    [
        ([0.95, 0.95], [True, True], 10, 0.05),
        ([0.25, 0.25, 0.25, 0.25], [True, False, False, False], 10, 0.0),
        ([0.9, 0.1], [False, True], 2, 0.9),
        ([1.0, 0.0], [True, False], 10, 0.0),  # the edges fall in the first and last bin
    ],
)
def test_expected_calibration_error(confidence: list[float], correct: list[bool], bins: int, expected: float) -> None:
    assert expected_calibration_error(confidence, correct, bins) == pytest.approx(expected)


def test_reliability_bins_leave_out_empty_bins() -> None:
    assert reliability_bins([0.05, 0.95, 0.91], [False, True, False], bins=10) == [
        (0.05, 0.0, 1),
        (pytest.approx(0.93), 0.5, 2),
    ]


@pytest.mark.parametrize(
    "call",
    [
        lambda: risk_coverage([0.1], [True, False]),
        lambda: reliability_bins([0.1], [True, False]),
        lambda: hallucination_rate([True], [True, False]),
    ],
)
def test_mismatched_lengths_are_rejected(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]
