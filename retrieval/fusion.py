"""Weighted reciprocal-rank fusion: several rankings of the same items → one.

``fused(item) = Σ weight_i / (k + rank_i(item))`` over the rankings that rank the item (ranks from
1). Only ranks count, not scores, so a BM25 score and a cosine need no common scale
(Cormack et al., 2009). A larger ``k`` flattens the curve: lower ranks count nearly as much as the top.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from retrieval.lexical import LexicalMatch
from retrieval.records import Hit

Item = TypeVar("Item", bound=Hashable)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Item]], weights: Sequence[float], k: float = 60.0
) -> list[tuple[Item, float]]:
    """Items of every ranking with their fused score, best first.

    Ties keep the order in which items first appear (the first ranking first), so the result is
    deterministic. An item only in rankings of weight 0 is left out; an item repeated within one
    ranking counts at its first position.

    >>> reciprocal_rank_fusion([["a", "b"], ["b", "c"]], [1.0, 1.0], k=1)
    [('b', 0.8333333333333333), ('a', 0.5), ('c', 0.3333333333333333)]
    """
    return fuse_ranks([ranks_of(ranking) for ranking in rankings], weights, k)


def ranks_of(ranking: Sequence[Item]) -> dict[Item, int]:
    """Each item's rank (from 1) in ``ranking``; a repeated item keeps its first rank."""
    ranks: dict[Item, int] = {}
    for rank, item in enumerate(ranking, 1):
        ranks.setdefault(item, rank)
    return ranks


def fuse_ranks(
    ranks: Sequence[Mapping[Item, int]], weights: Sequence[float], k: float = 60.0
) -> list[tuple[Item, float]]:
    """:func:`reciprocal_rank_fusion` over rank maps (item → rank from 1), for callers that set some
    ranks themselves. Ties keep the order of first appearance, the first map first."""
    if len(ranks) != len(weights):
        raise ValueError(f"{len(ranks)} rankings but {len(weights)} weights")
    if any(weight < 0 for weight in weights):
        raise ValueError("weights must be >= 0")
    if k < 0:
        raise ValueError("k must be >= 0")
    scores: dict[Item, float] = {}
    for ranking, weight in zip(ranks, weights, strict=True):
        if weight == 0:
            continue
        for item, rank in ranking.items():
            if rank < 1:
                raise ValueError(f"rank {rank} of {item!r}: ranks start at 1")
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    # sorted() is stable, so equal scores keep their first-appearance order.
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)


def language_fair_ranks(
    dense: Sequence[Hit], matches: Sequence[LexicalMatch], dense_ranks: dict[str, int], language: str
) -> dict[str, int]:
    """The lexical leg's ranks, where a candidate in another language than the question gets the
    better of its lexical and dense rank when some candidate is in the question's language
    (see :class:`HybridRetriever`)."""
    ranks = ranks_of([match.chunk_id for match in matches])
    languages = {hit.chunk.chunk_id: hit.chunk.language for hit in dense}
    languages.update({match.chunk_id: match.language for match in matches})
    if language not in languages.values():
        return ranks
    for chunk_id, rank in dense_ranks.items():
        if languages[chunk_id] != language:
            ranks[chunk_id] = min(ranks.get(chunk_id, rank), rank)
    return ranks
