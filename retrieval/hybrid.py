"""Hybrid retrieval: the dense and lexical legs fused by rank, then the asker's translation first."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from retrieval.config import RetrievalProfile
from retrieval.dense import DenseRetriever, UseSearch, found_hits
from retrieval.embedding import Vector
from retrieval.fusion import fuse_ranks, language_fair_ranks, ranks_of
from retrieval.lexical import LexicalMatch, LexicalRetriever
from retrieval.records import Hit
from retrieval.scope import Scope
from retrieval.translations import localized_first
from retrieval.vector_store import scope_metadata


@dataclass(frozen=True)
class TextLegs:
    """The legs of one question begun by :meth:`HybridRetriever.start`: the USE leg's search and
    the lexical leg's matches (None when it does not run), both before the live-version filter."""

    text: str | None
    language: str
    scope: Scope
    use: Future[UseSearch | None]
    lexical: Future[list[LexicalMatch]] | None

    def serves(self, text: str | None, language: str, scope: Scope) -> bool:
        return (self.text, self.language, self.scope) == (text, language, scope)


class HybridRetriever:
    """Dense and lexical rankings fused by weighted reciprocal rank (retrieval/fusion.py).

    Each leg ranks ``top_k * candidate_factor`` live chunks inside the scope. A hit carries its dense
    cosine (``score``), its BM25 score (``lexical_score``, 0 when the lexical leg missed it) and the
    ``fused_score`` hits are ordered by; with ``prefer_localized`` the question-language version of
    the best document goes first (retrieval/translations.py). When any candidate is in the question's
    language, a candidate in another language gets the better of its lexical and dense ranks in the
    lexical ranking. Why, with measurements: docs/decisions.md.
    """

    def __init__(
        self,
        dense: DenseRetriever,
        lexical: LexicalRetriever | None,
        profile: RetrievalProfile,
    ) -> None:
        self.dense = dense
        self.lexical = lexical
        self.profile = profile
        self.top_k = profile.top_k
        self.cross_lingual_bonus = dense.cross_lingual_bonus
        self.registry = dense.registry
        # The text legs run here while the caller embeds (or searches) with e5: two threads, one per leg.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="text-legs")

    def retrieve(self, question: str, language: str, scope: Scope | None = None) -> list[Hit]:
        """The best chunks for ``question`` inside ``scope`` (default: the default tenant's public documents)."""
        return self.retrieve_by_vector(self.dense.embedder.embed_query(question), language, scope, question)

    def start(self, text: str | None, language: str, scope: Scope) -> TextLegs:
        """Start the legs that need only the question's text (the USE leg, the lexical leg) on the
        retriever's threads; the pipeline starts them before e5 embeds the question."""
        depth = self.top_k * self.profile.candidate_factor
        use = self._pool.submit(self.dense.use_search, text, language, scope, depth)
        lexical: Future[list[LexicalMatch]] | None = None
        if self.lexical is not None and text and self.profile.lexical_weight > 0:
            lexical = self._pool.submit(self.lexical.search, text, language, depth, scope)
        return TextLegs(text, language, scope, use, lexical)

    def retrieve_by_vector(
        self,
        vector: Vector,
        language: str,
        scope: Scope | None = None,
        text: str | None = None,
        legs: TextLegs | None = None,
    ) -> list[Hit]:
        """Like :meth:`retrieve` for a query already embedded; the lexical leg runs only with its
        ``text``. ``legs`` are the text legs :meth:`start` began for this text (else begun here)."""
        scope = scope or Scope()
        depth = self.top_k * self.profile.candidate_factor
        if legs is None or not legs.serves(text, language, scope):
            legs = self.start(text, language, scope)
        searched = self.dense.search(vector, language, scope, depth)
        use = legs.use.result()
        matches = legs.lexical.result() if legs.lexical is not None else []
        # One live-version query for every leg's candidates.
        live = None
        if self.registry is not None:
            found = found_hits(searched, use)
            documents = {hit.chunk.document_id for hit in found} | {match.document_id for match in matches}
            live = self.registry.live_versions(documents)
        dense = self.dense.rank(vector, language, scope, depth, searched, use, live)
        if self.lexical is not None:
            matches = self.lexical.keep_live(matches, live)
        dense_ranks = ranks_of([hit.chunk.chunk_id for hit in dense])
        lexical_ranks = language_fair_ranks(dense, matches, dense_ranks, language)
        fused = fuse_ranks(
            [dense_ranks, lexical_ranks], [self.profile.dense_weight, self.profile.lexical_weight], self.profile.rrf_k
        )[: self.top_k]
        by_id = {hit.chunk.chunk_id: hit for hit in dense}
        lexical_scores = {match.chunk_id: match.score for match in matches}
        missing = [chunk_id for chunk_id, _ in fused if chunk_id not in by_id]
        for chunk, embedding in self.dense.store.embedded(missing):
            if scope.allows(scope_metadata(chunk)):  # the lexical index checked it; so does the store copy
                cosine = float(np.dot(embedding, vector))
                by_id[chunk.chunk_id] = Hit(chunk, self.dense.adjusted(cosine, chunk.language, language))
        hits = [
            replace(by_id[chunk_id], lexical_score=lexical_scores.get(chunk_id, 0.0), fused_score=fused_score)
            for chunk_id, fused_score in fused
            if chunk_id in by_id
        ]
        if self.profile.prefer_localized and hits:
            hits = localized_first(
                hits, vector, language, scope, self.registry, self.dense.store, self.profile.localized_margin
            )[: self.top_k]
        return hits
