"""The answer pipeline: query → hybrid retrieval → (verifier) → evidence → decide → cite."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from common.sql import private_dir
from retrieval.analysis import set_cache_dir as set_analysis_cache_dir
from retrieval.analysis import warm_up as warm_up_analysis
from retrieval.answerability import VerifierSignals
from retrieval.chroma_servers import build_vector_store
from retrieval.cite import compose_answer
from retrieval.config import RetrievalProfile, Settings
from retrieval.dense import DenseRetriever, UseLeg
from retrieval.embedding import Embedder, Vector, load_embedder
from retrieval.evidence import ChunkEvidence, SentenceScorer, sentence_cache
from retrieval.hybrid import HybridRetriever
from retrieval.language import resolve_language
from retrieval.language_bias import LanguageBias, bias_for
from retrieval.lexical import LexicalIndex, LexicalRetriever
from retrieval.query import FOLLOW_UP_WEIGHT, Query
from retrieval.records import Answer, Hit
from retrieval.registry import DocumentRegistry
from retrieval.scope import Scope
from retrieval.timings import DECIDE, EMBED, EVIDENCE, SEARCH, VERIFY, StageTimings
from retrieval.vector_store import ChromaStore
from retrieval.verify import Verifier, rerank, verify_sentences


@dataclass(frozen=True)
class Assessment:
    """What the decision sees: the hits (reranked by the verifier when there is one), the scored
    sentences of the first of them, and the verifier's signals."""

    hits: list[Hit]
    evidence: list[ChunkEvidence]
    verifier: VerifierSignals | None = None


class AnswerPipeline:
    """Answers questions only from the knowledge base, or abstains."""

    def __init__(
        self,
        embedder: Embedder,
        store: ChromaStore,
        profile: RetrievalProfile,
        registry: DocumentRegistry | None = None,
        sentence_embedder: Embedder | None = None,
        lexical: LexicalIndex | None = None,
        use: UseLeg | None = None,
        bias: LanguageBias | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.profile = profile
        self.verifier = verifier
        dense = DenseRetriever(
            embedder,
            store,
            profile.top_k,
            profile.cross_lingual_bonus,
            registry,
            use,
            profile.use_weight,
            bias if profile.language_centring else None,
            profile.centred_query,
        )
        self.retriever = HybridRetriever(dense, LexicalRetriever(lexical, registry) if lexical else None, profile)
        # Sentences are embedded as passages; give a content-hash cache (retrieval/embedding_cache.py)
        # filled at ingestion, or each question pays 25-200 ms to embed them (retrieval/evidence.py).
        self.scorer = SentenceScorer(sentence_embedder or embedder, profile.evidence_term_weight)

    def warm_up(self) -> None:
        """Load now what the first question would wait for: e5, the word segmenter and stemmers, USE,
        and the lexical index's matrices (seconds at 100k chunks). In parallel: each mostly waits on
        disk or runs native code, and the server's cold start is their longest, not their sum."""
        parts = [self.embedder.warm_up, warm_up_analysis]
        if self.retriever.dense.use is not None and self.profile.use_weight > 0:
            parts.append(self.retriever.dense.use.encoder.warm_up)
        if self.retriever.lexical is not None:
            parts.append(self.retriever.lexical.index.refresh)
        with ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="warm-up") as pool:
            for loading in [pool.submit(part) for part in parts]:
                loading.result()
        # Exact search's snapshots (tens of seconds at 100k chunks) start reading now rather than at
        # the first question, and after the loads above, which they would only slow on our 2 cores.
        self.store.prepare_snapshots()
        if self.retriever.dense.use is not None and self.profile.use_weight > 0:
            self.retriever.dense.use.store.prepare_snapshots()

    def query(
        self,
        question: str,
        language: str | None = None,
        scope: Scope | None = None,
        timings: StageTimings | None = None,
    ) -> Query:
        """``question`` as the pipeline reads it: stripped, embedded once, its language (``language``,
        ISO 639-1, overrides detection) and ``scope`` (default: the default tenant's public documents).
        Its stages' timings go to ``timings`` (retrieval/timings.py; default: a fresh record)."""
        question = question.strip()
        timings = timings if timings is not None else StageTimings()
        language = resolve_language(question, language)
        scope = scope or Scope()
        # The USE and lexical legs need no e5 vector: they run on the retriever's threads meanwhile.
        legs = self.retriever.start(question, language, scope)
        with timings.measure(EMBED):
            vector = self.embedder.embed_query(question)
        return Query(question, vector, language, scope, timings=timings, legs=legs)

    def embed(self, text: str, timings: StageTimings | None = None) -> Vector:
        if timings is None:
            return self.embedder.embed_query(text)
        with timings.measure(EMBED):
            return self.embedder.embed_query(text)

    def run(self, query: Query) -> tuple[Answer, list[Hit]]:
        """The answer and every hit it was chosen from, in the order the decision saw them."""
        assessment = self.examine(query)
        return self.compose(query, assessment), assessment.hits

    def ask(self, question: str, language: str | None = None, scope: Scope | None = None) -> Answer:
        """Answer ``question`` from the chunks ``scope`` allows, or abstain."""
        return self.run(self.query(question, language, scope))[0]

    def retrieve(self, query: Query) -> list[Hit]:
        with query.timings.measure(SEARCH):
            return self._search(query)

    def _search(self, query: Query) -> list[Hit]:
        """The hits for ``query``; a follow-up's by the blend of its vector and its contextual reading's."""
        if query.context is None:
            return self.retriever.retrieve_by_vector(query.vector, query.language, query.scope, query.text, query.legs)
        blend = FOLLOW_UP_WEIGHT * query.vector + query.context.vector
        norm = float(np.linalg.norm(blend))
        if norm == 0.0:
            return self.retriever.retrieve_by_vector(query.vector, query.language, query.scope, query.text, query.legs)
        # The dot product is linear, so the blend ranks passages by the weighted mean of their two
        # similarities; scores are scaled back to that mean so the decision's thresholds keep their
        # meaning. The lexical leg reads the contextual wording: the follow-up alone often lacks the
        # topic's words.
        blended = (blend / norm).astype(np.float32)
        hits = self.retriever.retrieve_by_vector(blended, query.language, query.scope, query.context.text)
        scale = norm / (FOLLOW_UP_WEIGHT + 1.0)
        bonus = self.retriever.cross_lingual_bonus
        rescaled = []
        for hit in hits:
            extra = bonus if hit.chunk.language != query.language else 0.0
            rescaled.append(replace(hit, score=(hit.score - extra) * scale + extra))
        return rescaled  # kept in the retriever's fused order

    def examine(self, query: Query) -> Assessment:
        return self.assess(query, self.retrieve(query))

    def evidence(self, query: Query, hits: Sequence[Hit]) -> list[ChunkEvidence]:
        """The scored sentences of the first ``evidence_chunks`` hits, against the query's reading."""
        if not hits:
            return []
        with query.timings.measure(EVIDENCE):
            return self.scorer.score(query.reading, query.reading_vector, hits[: self.profile.evidence_chunks])

    def assess(self, query: Query, hits: Sequence[Hit]) -> Assessment:
        """Rerank ``hits`` with the verifier (when there is one) and score the sentences of the first."""
        hits = list(hits)
        depth = self.profile.verify_depth
        if self.verifier is None or depth == 0 or not hits:
            return Assessment(hits, self.evidence(query, hits))
        text = query.reading
        with query.timings.measure(VERIFY):
            verified = rerank(self.verifier, text, hits, query.language, depth, self.profile.localized_margin)
        evidence = self.evidence(query, verified.hits)
        with query.timings.measure(VERIFY):
            evidence[0] = verify_sentences(self.verifier, text, evidence[0], self.profile.verify_window)
        best_sentence = max((sentence.score for sentence in evidence[0].sentences), default=0.0)
        signals = VerifierSignals(verified.top or 0.0, best_sentence)
        return Assessment(verified.hits, evidence, signals)

    def compose(self, query: Query, assessment: Assessment) -> Answer:
        with query.timings.measure(DECIDE):
            return compose_answer(
                query.reading, query.language, assessment.hits, self.profile, assessment.evidence, assessment.verifier
            )

    def answer(self, query: Query, hits: Sequence[Hit]) -> Answer:
        """Decide and cite from ``hits`` retrieved for ``query``: answer with quotes, or abstain."""
        return self.compose(query, self.assess(query, hits))


def build_components(
    settings: Settings, embedder: Embedder | None = None
) -> tuple[Embedder, ChromaStore, DocumentRegistry]:
    """The embedder, store and registry a process needs, all configured from ``settings``
    (``embedder`` replaces the configured one, e.g. a fake in tests)."""
    private_dir(settings.data_dir)
    set_analysis_cache_dir(settings.data_dir / "cache")
    embedder = embedder or load_embedder(
        settings.embedding_backend,
        settings.embedding_model,
        settings.resolved_model_dir,
        batch_size=settings.embedding_batch_size,
        threads=settings.embedding_threads,
    )
    store = build_vector_store(settings)  # embedded, or Chroma servers (retrieval/chroma_servers.py)
    registry = DocumentRegistry(settings.database_url)
    return embedder, store, registry


def build_pipeline(
    settings: Settings, profile: RetrievalProfile, embedder: Embedder, store: ChromaStore, registry: DocumentRegistry
) -> AnswerPipeline:
    """A process's answer engine: hybrid retrieval over the data dir's lexical index, sentence
    evidence read from the cache that ingestion fills (retrieval/evidence.py), and the trained
    verifier when the profile uses it and ``prepare-model`` exported one (retrieval/verify.py)."""
    from retrieval.verifier import load_verifier

    return AnswerPipeline(
        embedder,
        store,
        profile,
        registry,
        lexical=LexicalIndex(settings.database_url, saved_path=settings.data_dir / "cache" / "lexical.pickle"),
        sentence_embedder=sentence_cache(embedder, settings),
        use=UseLeg.beside(store) if settings.use_vectors else None,
        bias=bias_for(settings.embedding_model, embedder.dimension),
        verifier=load_verifier(settings) if profile.verify_depth > 0 else None,
    )
