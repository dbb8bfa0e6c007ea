"""The answer pipeline: query → hybrid retrieval → (verifier) → evidence → decide → cite."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from common.sql import private_dir
from retrieval.analysis import set_cache_dir as set_analysis_cache_dir
from retrieval.analysis import warm_up as warm_up_analysis
from retrieval.answerability import VerifierSignals
from retrieval.cite import compose_answer
from retrieval.config import RetrievalProfile, Settings
from retrieval.dense import DenseRetriever, UseLeg
from retrieval.embedding import Embedder, Vector, load_embedder
from retrieval.evidence import ChunkEvidence, SentenceScorer, sentence_cache
from retrieval.hybrid import HybridRetriever
from retrieval.language import UNKNOWN, detect_language
from retrieval.language_bias import LanguageBias, bias_for
from retrieval.lexical import LexicalIndex, LexicalRetriever
from retrieval.records import Answer, Hit
from retrieval.registry import DocumentRegistry
from retrieval.scope import Scope
from retrieval.vector_store import ChromaStore
from retrieval.verify import Verifier, rerank, verify_sentences


@dataclass(frozen=True)
class Assessment:
    """What the decision sees: the hits (reranked by the verifier when there is one), the scored
    sentences of the first of them, and the verifier's signals."""

    hits: list[Hit]
    evidence: list[ChunkEvidence]
    verifier: VerifierSignals | None = None


class AnswerEngine:
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
        """Load now what the first question would wait for: the word segmenter and stemmers, and the
        lexical index's matrices (seconds at 100k chunks)."""
        warm_up_analysis()
        if self.retriever.dense.use is not None and self.profile.use_weight > 0:
            self.retriever.dense.use.encoder.warm_up()
        if self.retriever.lexical is not None:
            self.retriever.lexical.index.refresh()

    def ask(self, question: str, language: str | None = None, scope: Scope | None = None) -> Answer:
        """Answer ``question`` from the chunks ``scope`` allows (default: the default tenant's public
        documents); ``language`` (ISO 639-1) overrides detection."""
        return self.ask_with_hits(question, language, scope)[0]

    def ask_with_hits(
        self, question: str, language: str | None = None, scope: Scope | None = None
    ) -> tuple[Answer, list[Hit]]:
        """The answer and every hit it was chosen from, in the order the decision saw them (for
        evaluation and audit)."""
        question, language, assessment = self.examine(question, language, scope)
        return self.compose(question, language, assessment), assessment.hits

    def examine(
        self, question: str, language: str | None = None, scope: Scope | None = None
    ) -> tuple[str, str, Assessment]:
        """Retrieve and assess ``question``: the cleaned question, its language and the assessment."""
        question = question.strip()
        detected = language or detect_language(question)
        language = "en" if detected == UNKNOWN else detected
        vector = self.embedder.embed_query(question)  # once, for retrieval and sentence evidence
        hits = self.retriever.retrieve_by_vector(vector, language, scope, question)
        return question, language, self.assess(question, language, hits, vector)

    def evidence(self, question: str, hits: Sequence[Hit], vector: Vector | None = None) -> list[ChunkEvidence]:
        """The scored sentences of the first ``evidence_chunks`` hits (``vector``: the embedded question)."""
        if not hits:
            return []
        vector = self.embedder.embed_query(question) if vector is None else vector
        return self.scorer.score(question, vector, hits[: self.profile.evidence_chunks])

    def assess(self, question: str, language: str, hits: Sequence[Hit], vector: Vector | None = None) -> Assessment:
        """Rerank ``hits`` with the verifier (when there is one) and score the sentences of the first."""
        hits = list(hits)
        depth = self.profile.verify_depth
        if self.verifier is None or depth == 0 or not hits:
            return Assessment(hits, self.evidence(question, hits, vector))
        verified = rerank(self.verifier, question, hits, language, depth, self.profile.localized_margin)
        evidence = self.evidence(question, verified.hits, vector)
        evidence[0] = verify_sentences(self.verifier, question, evidence[0], self.profile.verify_window)
        best_sentence = max((sentence.score for sentence in evidence[0].sentences), default=0.0)
        signals = VerifierSignals(verified.top or 0.0, best_sentence)
        return Assessment(verified.hits, evidence, signals)

    def compose(self, question: str, language: str, assessment: Assessment) -> Answer:
        return compose_answer(
            question, language, assessment.hits, self.profile, assessment.evidence, assessment.verifier
        )

    def answer(self, question: str, language: str, hits: Sequence[Hit], vector: Vector | None = None) -> Answer:
        """Decide and compose from ``hits`` retrieved for ``question``: answer with quotes, or abstain."""
        return self.compose(question, language, self.assess(question, language, hits, vector))


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
    store = ChromaStore(settings.chroma_dir, settings.collection)
    registry = DocumentRegistry(settings.database_url)
    return embedder, store, registry


def build_engine(
    settings: Settings, profile: RetrievalProfile, embedder: Embedder, store: ChromaStore, registry: DocumentRegistry
) -> AnswerEngine:
    """A process's answer engine: hybrid retrieval over the data dir's lexical index, sentence
    evidence read from the cache that ingestion fills (retrieval/evidence.py), and the trained
    verifier when the profile uses it and ``prepare-model`` exported one (retrieval/verify.py)."""
    from retrieval.verifier import load_verifier

    """A process's answer engine: hybrid retrieval over the data dir's lexical index and USE vectors,
    and sentence evidence read from the cache that ingestion fills (retrieval/evidence.py)."""
    return AnswerEngine(
        embedder,
        store,
        profile,
        registry,
        lexical=LexicalIndex(settings.lexical_dir),
        sentence_embedder=sentence_cache(embedder, settings),
        use=UseLeg.beside(store) if settings.use_vectors else None,
        bias=bias_for(settings.embedding_model, embedder.dimension),
        verifier=load_verifier(settings) if profile.verify_depth > 0 else None,
    )
