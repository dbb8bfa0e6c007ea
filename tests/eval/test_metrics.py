from __future__ import annotations

import math

import pytest

from eval.metrics import abstention_scores, percentile, recall_at_k, reciprocal_rank, unique_in_order


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
