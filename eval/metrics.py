"""Evaluation metrics as pure functions over ranked ids and decisions."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence


def unique_in_order(ids: Sequence[str]) -> list[str]:
    """Collapse a chunk-level ranking into a document-level one (first occurrence wins)."""
    return list(dict.fromkeys(ids))


def recall_at_k(ranked: Sequence[str], gold: Collection[str], k: int) -> float:
    """1.0 when any gold id is among the first ``k`` ranked ids.

    Our gold lists name every language version of the right document, any one of which answers,
    so "found one" is the meaningful notion of recall here.
    """
    return 1.0 if set(ranked[:k]) & set(gold) else 0.0


def reciprocal_rank(ranked: Sequence[str], gold: Collection[str], k: int = 10) -> float:
    for rank, item in enumerate(ranked[:k], start=1):
        if item in gold:
            return 1.0 / rank
    return 0.0


def abstention_scores(should_abstain: Sequence[bool], abstained: Sequence[bool]) -> dict[str, float]:
    """Precision, recall and F1 of abstaining, where abstaining on an unanswerable case is a hit."""
    if len(should_abstain) != len(abstained):
        raise ValueError("should_abstain and abstained differ in length")
    true_pos = sum(1 for gold, made in zip(should_abstain, abstained, strict=True) if gold and made)
    predicted = sum(abstained)
    actual = sum(should_abstain)
    precision = true_pos / predicted if predicted else 0.0
    recall = true_pos / actual if actual else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"abstain_precision": precision, "abstain_recall": recall, "abstain_f1": f1}


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan
