"""Dense retrieval: the e5 nearest neighbours, corrected for same-language bias, fused with the USE leg."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from retrieval.embedding import Embedder, Vector
from retrieval.language_bias import LanguageBias
from retrieval.records import Hit, live_key
from retrieval.registry import DocumentRegistry
from retrieval.scope import Scope
from retrieval.use_encoder import UseEncoder, shared_use_encoder, use_covers, use_store_beside
from retrieval.vector_store import ChromaStore, scope_metadata

logger = logging.getLogger(__name__)


class DenseRetriever:
    """Top-k chunks by cosine similarity of e5 embeddings, corrected for same-language bias, fused with
    the USE leg by per-query z-scores: ``(1 - use_weight)·z_e5 + use_weight·z_use``.

    ``bias`` (language centroids) corrects e5's preference for the question's own language, languages
    without a centroid get ``cross_lingual_bonus``; ``centred_query`` fetches ``depth`` more neighbours
    for the question moved off its language's centroid. With a ``registry``, only live versions come
    back. ``Hit.score`` stays the e5 cosine. Why, with measurements: docs/decisions.md.
    """

    def __init__(
        self,
        embedder: Embedder,
        store: ChromaStore,
        top_k: int,
        cross_lingual_bonus: float,
        registry: DocumentRegistry | None = None,
        use: UseLeg | None = None,
        use_weight: float = 0.0,
        bias: LanguageBias | None = None,
        centred_query: bool = False,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.top_k = top_k
        self.cross_lingual_bonus = cross_lingual_bonus
        self.registry = registry
        self.bias = bias
        self.centred_query = centred_query
        self.use = use
        self.use_weight = use_weight
        self._warned_no_use = False

    def retrieve(self, question: str, language: str, scope: Scope | None = None) -> list[Hit]:
        """The best chunks for ``question`` inside ``scope`` (default: the default tenant's public documents)."""
        return self.retrieve_by_vector(self.embedder.embed_query(question), language, scope, question)

    def retrieve_by_vector(
        self, vector: Vector, language: str, scope: Scope | None = None, text: str | None = None
    ) -> list[Hit]:
        """Like :meth:`retrieve` for a query already embedded (e.g. a follow-up blended with its topic);
        the USE leg runs only with its ``text``."""
        return self.candidates(vector, language, scope, self.top_k * 3, text)[: self.top_k]

    def candidates(
        self, vector: Vector, language: str, scope: Scope | None, depth: int, text: str | None = None
    ) -> list[Hit]:
        """The ``depth`` nearest live chunks, corrected for language and re-sorted (fused with the USE
        leg's neighbours when there is one and ``text``).

        Over-fetching lets the correction promote passages from just below the cut.
        """
        scope = scope or Scope()
        use = self.use_search(text, language, scope, depth)
        return self.rank(vector, language, scope, depth, self.search(vector, language, scope, depth), use)

    def search(self, vector: Vector, language: str, scope: Scope, depth: int) -> E5Search:
        """The e5 neighbours of ``vector`` and, with ``centred_query``, of the question moved off its
        language's centroid, so passages in other languages reach the candidates even when the
        nearest ``depth`` are all in its own. Both in one pass over the store (ChromaStore.query_shifted)."""
        offsets = self.language_offsets(vector, language)
        if not (self.centred_query and offsets and self.bias is not None):
            return E5Search(self.store.query(vector, depth, scope), None, offsets)
        nearest, centred = self.store.query_shifted(vector, self.bias.shift(language), depth, scope)
        return E5Search(nearest, centred, offsets)

    def language_offsets(self, vector: Vector, language: str) -> dict[str, float]:
        """What ``vector`` (a question in ``language``) gains per passage language, for :meth:`adjusted`."""
        return self.bias.offsets(vector, language) if self.bias is not None else {}

    def use_search(self, text: str | None, language: str, scope: Scope, depth: int) -> UseSearch | None:
        """The USE leg's neighbours of ``text`` (None when the leg is off or does not cover ``language``).
        It needs no e5 vector, so the pipeline runs it while e5 embeds the question."""
        if self.use is None or not text or self.use_weight <= 0 or not use_covers(language):
            return None
        use_vector = self.use.encoder.embed_query(text)
        return UseSearch(use_vector, self.use.store.query(use_vector, depth, scope))

    def live_versions(self, hits: Iterable[Hit]) -> dict[str, int] | None:
        """The live versions of the documents of ``hits`` (one query), None without a registry."""
        if self.registry is None:
            return None
        return self.registry.live_versions({hit.chunk.document_id for hit in hits})

    def rank(
        self,
        vector: Vector,
        language: str,
        scope: Scope,
        depth: int,
        e5: E5Search,
        use: UseSearch | None,
        live: Mapping[str, int] | None = None,
    ) -> list[Hit]:
        """The live hits of ``e5`` (and ``use``), corrected for language and re-sorted; ``live`` (from
        :meth:`live_versions`) saves reading the versions again."""
        if live is None:
            live = self.live_versions(found_hits(e5, use))
        offsets = e5.offsets
        hits = self._live(e5.nearest, live)
        if e5.centred is not None:
            known = {hit.chunk.chunk_id for hit in hits}
            extra = [hit for hit in self._live(e5.centred, live) if hit.chunk.chunk_id not in known]
            for chunk, embedding in self.store.embedded([hit.chunk.chunk_id for hit in extra]):
                hits.append(Hit(chunk, float(np.dot(embedding, vector))))  # scored by the question itself
        # Ranked by the per-question correction; Hit.score keeps the constant bonus, the scale the
        # answerability model was fitted on (with the offsets as scores it answered far more wrongly).
        ranking = {hit.chunk.chunk_id: self.adjusted(hit.score, hit.chunk.language, language, offsets) for hit in hits}
        adjusted = [replace(hit, score=self.adjusted(hit.score, hit.chunk.language, language)) for hit in hits]
        adjusted.sort(key=lambda hit: ranking[hit.chunk.chunk_id], reverse=True)
        if use is not None:
            return self._fused_with_use(use, adjusted, ranking, vector, language, scope, offsets, live)
        return adjusted

    def _live(self, hits: list[Hit], live: Mapping[str, int] | None) -> list[Hit]:
        return list(hits) if self.registry is None else self.registry.keep_live(hits, live_key, live)

    def _fused_with_use(
        self,
        use: UseSearch,
        dense: list[Hit],
        ranking: dict[str, float],
        vector: Vector,
        language: str,
        scope: Scope,
        offsets: Mapping[str, float],
        live: Mapping[str, int] | None,
    ) -> list[Hit]:
        assert self.use is not None
        use_vector = use.vector
        use_scores = {hit.chunk.chunk_id: hit.score for hit in self._live(use.hits, live)}
        if not use_scores:
            if not self._warned_no_use:  # once per process: every question would say the same
                logger.info("USE leg skipped: no USE vectors in scope (re-ingest to compute them)")
                self._warned_no_use = True
            return dense
        by_id = {hit.chunk.chunk_id: hit for hit in dense}
        found_by_use = [chunk_id for chunk_id in use_scores if chunk_id not in by_id]
        for chunk, embedding in self.store.embedded(found_by_use):
            if scope.allows(scope_metadata(chunk)):
                cosine = float(np.dot(embedding, vector))
                ranking[chunk.chunk_id] = self.adjusted(cosine, chunk.language, language, offsets)
                by_id[chunk.chunk_id] = Hit(chunk, self.adjusted(cosine, chunk.language, language))
        found_by_e5 = [chunk_id for chunk_id, hit in by_id.items() if chunk_id not in use_scores]
        for chunk, embedding in self.use.store.embedded(found_by_e5):
            use_scores[chunk.chunk_id] = float(np.dot(embedding, use_vector))
        hits = list(by_id.values())
        e5 = _z_scores(np.array([ranking[hit.chunk.chunk_id] for hit in hits]))
        covered = np.array([hit.chunk.chunk_id in use_scores and use_covers(hit.chunk.language) for hit in hits])
        fused = e5.copy()
        if covered.any():
            cosines = np.array([use_scores.get(hit.chunk.chunk_id, 0.0) for hit in hits])
            use_z = np.zeros_like(e5)
            use_z[covered] = _z_scores(cosines[covered])
            fused[covered] = (1 - self.use_weight) * e5[covered] + self.use_weight * use_z[covered]
        order = np.argsort(-fused, kind="stable")
        return [hits[i] for i in order]

    def adjusted(
        self, cosine: float, passage_language: str, language: str, offsets: Mapping[str, float] | None = None
    ) -> float:
        """The cosine corrected for the passage's language: the question's own per-language offset
        (retrieval/language_bias.py) when known, else ``cross_lingual_bonus`` for another language."""
        if passage_language == language:
            return cosine
        if offsets and passage_language in offsets:
            return cosine + offsets[passage_language]
        return cosine + self.cross_lingual_bonus


@dataclass(frozen=True)
class E5Search:
    """The e5 neighbours of a question (before the live-version filter), of its centred form when
    searched, and the question's per-language offsets."""

    nearest: list[Hit]
    centred: list[Hit] | None
    offsets: dict[str, float]


def found_hits(e5: E5Search, use: UseSearch | None) -> list[Hit]:
    """Every hit the e5 searches and the USE leg found, before the live-version filter."""
    return [*e5.nearest, *(e5.centred or []), *(use.hits if use else [])]


@dataclass(frozen=True)
class UseSearch:
    """The USE leg of a question: its USE vector and neighbours (before the live-version filter)."""

    vector: Vector
    hits: list[Hit]


@dataclass(frozen=True)
class UseLeg:
    """The second dense encoder and the store of its chunk vectors (retrieval/use_encoder.py)."""

    encoder: UseEncoder
    store: ChromaStore

    @classmethod
    def beside(cls, store: ChromaStore, encoder: UseEncoder | None = None) -> UseLeg:
        """The USE leg whose vectors live beside ``store`` (its ``-use`` collections)."""
        return cls(encoder or shared_use_encoder(), use_store_beside(store))


def _z_scores(values: np.ndarray) -> np.ndarray:
    """``values`` centred and scaled to unit deviation (all equal: all zero)."""
    deviation = float(values.std())
    return (values - values.mean()) / deviation if deviation > 0 else np.zeros_like(values)
