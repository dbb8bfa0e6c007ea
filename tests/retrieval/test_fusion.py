from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrieval.fusion import fuse_ranks, reciprocal_rank_fusion

rankings = st.lists(st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=8), min_size=1, max_size=3)


@pytest.mark.parametrize(
    ("rankings", "weights", "k", "expected"),
    [
        ([["a", "b", "c"]], [1.0], 60, ["a", "b", "c"]),
        ([["a", "b"], ["b", "a"]], [1.0, 1.0], 60, ["a", "b"]),  # a tie keeps first-appearance order
        ([["a", "b"], ["b", "a"]], [1.0, 2.0], 60, ["b", "a"]),  # the heavier ranking wins the tie
        ([["a", "b"], ["c"]], [1.0, 0.0], 60, ["a", "b"]),  # weight 0: its items are left out
        ([["a", "b", "c"], ["c", "b", "a"]], [1.0, 1.0], 0, ["a", "c", "b"]),  # k=0: 1 + 1/3 beats 1/2 + 1/2
        ([["a", "a", "b"]], [1.0], 60, ["a", "b"]),  # a repeat counts once, at its first rank
        ([[], []], [1.0, 1.0], 60, []),
    ],
)
def test_fusion_order(rankings: list[list[str]], weights: list[float], k: float, expected: list[str]) -> None:
    assert [item for item, _ in reciprocal_rank_fusion(rankings, weights, k)] == expected


def test_fused_scores() -> None:
    fused = dict(reciprocal_rank_fusion([["a", "b"], ["b"]], [2.0, 1.0], k=10))
    assert fused == pytest.approx({"a": 2 / 11, "b": 2 / 12 + 1 / 11})


@pytest.mark.parametrize(
    ("weights", "k", "message"),
    [([1.0], 60, "2 rankings but 1 weights"), ([1.0, -1.0], 60, "weights must be >= 0"), ([1.0, 1.0], -1, "k must")],
)
def test_invalid_arguments(weights: list[float], k: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reciprocal_rank_fusion([["a"], ["b"]], weights, k)


@given(rankings, st.floats(min_value=0, max_value=100))
def test_every_item_appears_once_and_scores_descend(lists: list[list[str]], k: float) -> None:
    fused = reciprocal_rank_fusion(lists, [1.0] * len(lists), k)
    items = [item for item, _ in fused]
    assert sorted(items) == sorted({item for ranking in lists for item in ranking})
    scores = [score for _, score in fused]
    assert scores == sorted(scores, reverse=True)


@given(rankings)
def test_equal_weights_ignore_ranking_order_up_to_ties(lists: list[list[str]]) -> None:
    forward = dict(reciprocal_rank_fusion(lists, [1.0] * len(lists)))
    backward = dict(reciprocal_rank_fusion(lists[::-1], [1.0] * len(lists)))
    assert forward.keys() == backward.keys()
    assert all(forward[item] == pytest.approx(backward[item]) for item in forward)


@given(rankings, st.data())
def test_moving_an_item_up_never_lowers_its_fused_rank(lists: list[list[str]], data: st.DataObject) -> None:
    ranking_number = data.draw(st.integers(0, len(lists) - 1))
    ranking = lists[ranking_number]
    if len(ranking) < 2:
        return
    position = data.draw(st.integers(1, len(ranking) - 1))
    item = ranking[position]
    promoted = [*ranking[: position - 1], item, ranking[position - 1], *ranking[position + 1 :]]
    weights = [1.0] * len(lists)
    before = dict(reciprocal_rank_fusion(lists, weights))
    after = dict(reciprocal_rank_fusion([*lists[:ranking_number], promoted, *lists[ranking_number + 1 :]], weights))
    assert after[item] >= before[item]
    above_after = sum(score > after[item] for score in after.values())
    assert above_after <= sum(score > before[item] for score in before.values())


def test_fuse_ranks_takes_ranks_set_by_the_caller() -> None:
    fused = reciprocal_rank_fusion([["a", "b"]], [1.0], k=0)
    assert fuse_ranks([{"a": 1, "b": 2}], [1.0], k=0) == fused
    assert [item for item, _ in fuse_ranks([{"a": 2, "b": 1}, {"a": 1}], [1.0, 1.0], k=0)] == ["a", "b"]
    with pytest.raises(ValueError, match="ranks start at 1"):
        fuse_ranks([{"a": 0}], [1.0])
