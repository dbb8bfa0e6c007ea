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


def ndcg_at_k(ranked: Sequence[str], gold: Collection[str], k: int = 10) -> float:
    """Binary-relevance nDCG@k; the ideal ranking puts ``min(len(gold), k)`` gold ids first."""
    gold_set = set(gold)
    if not gold_set:
        return math.nan
    dcg = sum(1.0 / math.log2(rank + 1) for rank, item in enumerate(ranked[:k], start=1) if item in gold_set)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(gold_set), k) + 1))
    return dcg / ideal


def hallucination_rate(should_abstain: Sequence[bool], answered: Sequence[bool]) -> float:
    """Share of cases that should be abstained on but were answered (NoMIRACL's hallucination rate)."""
    outcomes = [made for gold, made in zip(should_abstain, answered, strict=True) if gold]
    return sum(outcomes) / len(outcomes) if outcomes else math.nan


def error_rate(should_abstain: Sequence[bool], answered: Sequence[bool]) -> float:
    """Share of answerable cases that were abstained on (NoMIRACL's error rate)."""
    outcomes = [not made for gold, made in zip(should_abstain, answered, strict=True) if not gold]
    return sum(outcomes) / len(outcomes) if outcomes else math.nan


def citation_precision(cited: Sequence[Sequence[str]], gold: Sequence[Collection[str]]) -> float:
    """Of all citations made, the share that name a gold id (micro-average over cases)."""
    made = sum(len(ids) for ids in cited)
    correct = sum(sum(1 for item in ids if item in set(golds)) for ids, golds in zip(cited, gold, strict=True))
    return correct / made if made else math.nan


def risk_coverage(confidence: Sequence[float], correct: Sequence[bool]) -> tuple[list[float], list[float]]:
    """Coverage and risk when answering only the most confident cases.

    Point ``i`` answers the ``i`` most confident cases: coverage ``i/n``, risk the share of them that are
    wrong. Ties in confidence enter together, so the curve does not depend on input order.
    """
    if len(confidence) != len(correct):
        raise ValueError("confidence and correct differ in length")
    order = sorted(range(len(confidence)), key=lambda i: -confidence[i])
    coverages: list[float] = []
    risks: list[float] = []
    errors = 0
    for position, index in enumerate(order, start=1):
        errors += 0 if correct[index] else 1
        is_last_of_tie = position == len(order) or confidence[order[position]] != confidence[index]
        if is_last_of_tie:
            coverages.append(position / len(order))
            risks.append(errors / position)
    return coverages, risks


def area_under_risk_coverage(confidence: Sequence[float], correct: Sequence[bool]) -> float:
    """AURC: the risk averaged over all coverage levels (0 is perfect; lower is better)."""
    coverages, risks = risk_coverage(confidence, correct)
    if not coverages:
        return math.nan
    area, previous = 0.0, 0.0
    for coverage, risk in zip(coverages, risks, strict=True):
        area += (coverage - previous) * risk
        previous = coverage
    return area


def reliability_bins(
    confidence: Sequence[float], correct: Sequence[bool], bins: int = 10
) -> list[tuple[float, float, int]]:
    """Per equal-width confidence bin: (mean confidence, accuracy, count); empty bins are left out."""
    if len(confidence) != len(correct):
        raise ValueError("confidence and correct differ in length")
    if bins < 1:
        raise ValueError("bins must be >= 1")
    grouped: list[list[int]] = [[] for _ in range(bins)]
    for index, value in enumerate(confidence):
        grouped[min(int(min(max(value, 0.0), 1.0) * bins), bins - 1)].append(index)
    return [
        (mean([confidence[i] for i in members]), mean([1.0 if correct[i] else 0.0 for i in members]), len(members))
        for members in grouped
        if members
    ]


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """ECE: the count-weighted gap between confidence and accuracy over equal-width bins."""
    table = reliability_bins(confidence, correct, bins)
    total = sum(count for _, _, count in table)
    if not total:
        return math.nan
    return sum(count * abs(conf - acc) for conf, acc, count in table) / total


def normalized(text: str) -> str:
    """Case-folded, markdown bold dropped, whitespace collapsed: how quotes and facts are compared."""
    return " ".join(text.replace("**", "").casefold().split())


def contains_fact(quotes: Sequence[str], facts: Sequence[str]) -> bool:
    """Whether any quote contains any of the alternative wordings of the asked fact."""
    folded = [normalized(quote) for quote in quotes]
    return any(normalized(fact) in quote for fact in facts for quote in folded)
