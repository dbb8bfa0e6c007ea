"""The answer engine: question → retrieve → decide → answer with citations."""

from __future__ import annotations

import logging

from retrieval.compose import compose_answer
from retrieval.config import RetrievalProfile, Settings
from retrieval.embedding import Embedder, Vector, load_embedder
from retrieval.language import UNKNOWN, detect_language
from retrieval.registry import DocumentRegistry
from retrieval.scope import Scope
from retrieval.store import ChromaStore
from retrieval.types import Answer, Hit

logger = logging.getLogger(__name__)


class DenseRetriever:
    """Top-k chunks by cosine similarity of e5 embeddings, corrected for same-language bias.

    multilingual-e5 scores a passage in the question's own language ~0.025 higher than an equally
    relevant one in another language (median over our sample set), so an off-topic localized article
    outranks the right English one. Passages in another language get ``cross_lingual_bonus``.

    With a ``registry``, only chunks of each document's live version are returned, so a document
    being replaced is seen whole, old or new (retrieval/publish.py).
    """

    def __init__(
        self,
        embedder: Embedder,
        store: ChromaStore,
        top_k: int,
        cross_lingual_bonus: float,
        registry: DocumentRegistry | None = None,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.top_k = top_k
        self.cross_lingual_bonus = cross_lingual_bonus
        self.registry = registry

    def retrieve(self, question: str, language: str, scope: Scope | None = None) -> list[Hit]:
        """The best chunks for ``question`` inside ``scope`` (default: the default tenant's public documents)."""
        return self.retrieve_by_vector(self.embedder.embed_query(question), language, scope)

    def retrieve_by_vector(self, vector: Vector, language: str, scope: Scope | None = None) -> list[Hit]:
        """Like :meth:`retrieve` for a query already embedded (e.g. a follow-up blended with its topic)."""
        # Over-fetch so the correction can promote passages from just below the cut.
        hits = self.store.query(vector, self.top_k * 3, scope or Scope())
        if self.registry is not None:
            live = self.registry.live_versions({hit.chunk.document_id for hit in hits})
            hits = [hit for hit in hits if live.get(hit.chunk.document_id) == hit.chunk.version]
        adjusted = [
            Hit(hit.chunk, hit.score + self.cross_lingual_bonus) if hit.chunk.language != language else hit
            for hit in hits
        ]
        return sorted(adjusted, key=lambda hit: hit.score, reverse=True)[: self.top_k]


class AnswerEngine:
    """Answers questions only from the knowledge base, or abstains."""

    def __init__(
        self,
        embedder: Embedder,
        store: ChromaStore,
        profile: RetrievalProfile,
        registry: DocumentRegistry | None = None,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.profile = profile
        self.retriever = DenseRetriever(embedder, store, profile.top_k, profile.cross_lingual_bonus, registry)

    def ask(self, question: str, language: str | None = None, scope: Scope | None = None) -> Answer:
        """Answer ``question`` from the chunks ``scope`` allows (default: the default tenant's public
        documents); ``language`` (ISO 639-1) overrides detection."""
        return self.ask_with_hits(question, language, scope)[0]

    def ask_with_hits(
        self, question: str, language: str | None = None, scope: Scope | None = None
    ) -> tuple[Answer, list[Hit]]:
        """The answer and every hit it was chosen from (for evaluation and audit)."""
        question = question.strip()
        detected = language or detect_language(question)
        language = "en" if detected == UNKNOWN else detected
        hits = self.retriever.retrieve(question, language, scope)
        return compose_answer(question, language, hits, self.profile), hits


def build_components(
    settings: Settings, embedder: Embedder | None = None
) -> tuple[Embedder, ChromaStore, DocumentRegistry]:
    """The embedder, store and registry a process needs, all configured from ``settings``
    (``embedder`` replaces the configured one, e.g. a fake in tests)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
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
