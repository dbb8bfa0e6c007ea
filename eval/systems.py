"""The systems an eval suite can run through, each built over the suite's documents in a scratch folder.

- ``answerdesk``: our pipeline: structure-aware chunks published to Chroma (e5 and USE vectors), the
  registry and the lexical index as ingestion does, the AnswerPipeline's hybrid retrieval, decision and
  citations.
- ``answerdesk-dense``: the same without the lexical leg and without preferring localized versions
  (the engine before hybrid retrieval).
- ``lexical``: the engine's lexical leg alone (retrieval/lexical.py, language-aware analysis); like
  ``bm25`` it abstains only when nothing matches.
- ``dense``: the same chunks and embedder, exact cosine search in numpy, abstain below ``score_midpoint``.
- ``bm25``: the same chunks, lexical BM25 (bm25s); abstains only when no query term is in the corpus.
- ``llamaindex``: the peer, a plain LlamaIndex pipeline (eval/peer.py).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import numpy as np
import regex
from tqdm import tqdm

from eval.answerer import Answerer, BuildContext, Prediction
from eval.peer import build_llamaindex
from retrieval.config import RetrievalProfile
from retrieval.dense import UseLeg
from retrieval.embedding import Embedder, Matrix, Vector
from retrieval.language_bias import LanguageBias, bias_for
from retrieval.lexical import LexicalIndex
from retrieval.pipeline import AnswerPipeline
from retrieval.publish import ChunkIndex
from retrieval.records import Chunk, Document, Hit, Status
from retrieval.registry import DocumentRegistry
from retrieval.scope import Scope
from retrieval.use_encoder import UseEncoder, use_covers
from retrieval.vector_store import ChromaStore

logger = logging.getLogger(__name__)

EMBED_BATCH = 256


Builder = Callable[[Sequence[Document], BuildContext], Answerer]


def embed_passages(embedder: Embedder, texts: Sequence[str], show_progress: bool, desc: str = "embedding") -> Matrix:
    """``embedder.embed_documents`` in batches, with a progress bar."""
    parts = [np.zeros((0, embedder.dimension), dtype=np.float32)]
    with tqdm(total=len(texts), desc=desc, unit="passage", disable=not show_progress or len(texts) < 1000) as bar:
        for start in range(0, len(texts), EMBED_BATCH):
            batch = texts[start : start + EMBED_BATCH]
            parts.append(embedder.embed_documents(batch))
            bar.update(len(batch))
    return np.concatenate(parts)


def chunk_documents(documents: Sequence[Document], embedder: Embedder, profile: RetrievalProfile) -> list[Chunk]:
    """Our structure-aware chunks of ``documents``, as ingestion makes them."""
    from ingest.chunk import Chunker

    chunker = Chunker(
        embedder.count_tokens,
        target_tokens=profile.chunk_target_tokens,
        max_tokens=profile.chunk_max_tokens,
        overlap_tokens=profile.chunk_overlap_tokens,
    )
    return [chunk for document in documents for chunk in chunker.chunk(document)]


class AnswerDeskSystem:
    """Our engine over a temporary Chroma store; ``with_profile`` reuses the index for other answer knobs."""

    def __init__(self, engine_factory: Callable[[RetrievalProfile], AnswerPipeline], profile: RetrievalProfile) -> None:
        self._factory = engine_factory
        self.engine = engine_factory(profile)

    def with_profile(self, profile: RetrievalProfile) -> AnswerDeskSystem:
        return AnswerDeskSystem(self._factory, profile)

    def ask(self, question: str, document_ids: Collection[str] | None = None) -> Prediction:
        scope = None if document_ids is None else Scope.everything().narrowed(document_ids=document_ids)
        answer, hits = self.engine.run(self.engine.query(question, scope=scope))
        return Prediction(
            answered=answer.status == Status.ANSWERED,
            ranked_chunks=hits,
            cited_chunk_ids=[citation.chunk_id for citation in answer.citations],
            cited_document_ids=[citation.document_id for citation in answer.citations],
            confidence=answer.confidence,
            quotes=[citation.quote for citation in answer.citations],
        )


def build_answerdesk(documents: Sequence[Document], context: BuildContext, hybrid: bool = True) -> AnswerDeskSystem:
    """The engine over a scratch data dir, written through the Publisher as ingestion writes it."""
    chunks = chunk_documents(documents, context.embedder, context.profile)
    embeddings = embed_passages(context.embedder, [chunk.embedding_text for chunk in chunks], context.show_progress)
    use = UseLeg.beside(ChromaStore(context.workdir / "answerdesk-chroma", "eval")) if context.use_vectors else None
    use_embeddings = _use_vectors(use.encoder, chunks, context.show_progress) if use else None
    lexical_url = f"sqlite:///{context.workdir / 'answerdesk-lexical.db'}"
    lexical = LexicalIndex(lexical_url, background_rebuild=False) if hybrid else None
    store, registry = _published(documents, chunks, embeddings, context.workdir, lexical, use, use_embeddings)
    if lexical is not None:
        lexical.refresh()  # build the BM25 matrices now, not on the first question
    logger.info("answerdesk: %d documents, %d chunks", len(documents), len(chunks))

    def engine(profile: RetrievalProfile) -> AnswerPipeline:
        if not hybrid:
            profile = profile.model_copy(update={"lexical_weight": 0.0, "prefer_localized": False})
        bias = _language_bias(context.embedder)
        return AnswerPipeline(
            context.embedder, store, profile, registry, lexical=lexical, use=use, bias=bias, verifier=context.verifier
        )

    return AnswerDeskSystem(engine, context.profile)


def _language_bias(embedder: Embedder) -> LanguageBias | None:
    """The shipped language centroids when ``embedder`` is the model they belong to (eval.run's
    build_embedder names it ``backend:model``); none for another model or a test's hashing fake."""
    model_id = str(getattr(embedder, "model_id", ""))
    return bias_for(model_id.partition(":")[2], embedder.dimension) if model_id else None


def build_answerdesk_dense(documents: Sequence[Document], context: BuildContext) -> AnswerDeskSystem:
    return build_answerdesk(documents, context, hybrid=False)


def _use_vectors(encoder: UseEncoder, chunks: Sequence[Chunk], show_progress: bool) -> list[Vector | None]:
    """Each chunk's USE vector, None in a language USE does not cover (as ingestion does)."""
    rows = [row for row, chunk in enumerate(chunks) if use_covers(chunk.language)]
    vectors: list[Vector | None] = [None] * len(chunks)
    with tqdm(total=len(rows), desc="USE", unit="passage", disable=not show_progress or len(rows) < 1000) as bar:
        for start in range(0, len(rows), EMBED_BATCH):
            batch = rows[start : start + EMBED_BATCH]
            for row, vector in zip(batch, encoder.embed([chunks[row].embedding_text for row in batch]), strict=True):
                vectors[row] = vector
            bar.update(len(batch))
    return vectors


def _published(
    documents: Sequence[Document],
    chunks: Sequence[Chunk],
    embeddings: Matrix,
    workdir: Path,
    lexical: LexicalIndex | None,
    use: UseLeg | None = None,
    use_embeddings: Sequence[Vector | None] | None = None,
) -> tuple[ChromaStore, DocumentRegistry]:
    """A store and registry (and ``lexical``, and ``use``'s store) holding ``chunks`` as version 1 of
    their documents."""
    from retrieval.publish import Publication, Publisher
    from retrieval.registry import DocumentRecord

    store = ChromaStore(workdir / "answerdesk-chroma", "eval")
    registry = DocumentRegistry(f"sqlite:///{workdir / 'answerdesk-registry.db'}")
    rows: dict[str, list[int]] = {}
    for row, chunk in enumerate(chunks):
        rows.setdefault(chunk.document_id, []).append(row)
    publications = [
        Publication(
            DocumentRecord(
                document.document_id,
                document.title,
                document.source,
                document.language,
                document.kind,
                document.content_hash,
                1,
                [chunks[row].chunk_id for row in rows.get(document.document_id, [])],
                "",
            ),
            [chunks[row] for row in rows.get(document.document_id, [])],
            embeddings[rows.get(document.document_id, [])],
            use_embeddings=_stacked([use_embeddings[row] for row in rows.get(document.document_id, [])])
            if use_embeddings is not None
            else None,
        )
        for document in documents
    ]
    indexes: list[ChunkIndex] = [store] if lexical is None else [store, lexical]
    Publisher(registry, indexes, use.store if use else None).publish(publications)
    return store, registry


def _stacked(vectors: Sequence[Vector | None]) -> Matrix | None:
    """The rows as a matrix, or None when any is missing (a language USE does not cover)."""
    if not vectors or any(vector is None for vector in vectors):
        return None
    return np.stack([vector for vector in vectors if vector is not None])


class DenseSystem:
    """Exact cosine search over our chunks; answers when the best score reaches the threshold."""

    def __init__(self, embedder: Embedder, chunks: list[Chunk], matrix: Matrix, top_k: int, threshold: float) -> None:
        self.embedder = embedder
        self.chunks = chunks
        self.matrix = matrix
        self.top_k = top_k
        self.threshold = threshold

    def ask(self, question: str, document_ids: Collection[str] | None = None) -> Prediction:
        scores = _restricted(self.matrix @ self.embedder.embed_query(question), self.chunks, document_ids)
        top = _top_indices(scores, self.top_k)
        hits = [Hit(self.chunks[i], float(scores[i])) for i in top]
        answered = bool(hits) and hits[0].score >= self.threshold
        return Prediction(
            answered=answered,
            ranked_chunks=hits,
            cited_chunk_ids=[hits[0].chunk.chunk_id] if answered else [],
            cited_document_ids=[hits[0].chunk.document_id] if answered else [],
            confidence=min(max(hits[0].score, 0.0), 1.0) if hits else 0.0,
            quotes=[hits[0].chunk.text] if answered else [],
        )


def build_dense(documents: Sequence[Document], context: BuildContext) -> DenseSystem:
    chunks = chunk_documents(documents, context.embedder, context.profile)
    matrix = embed_passages(context.embedder, [chunk.embedding_text for chunk in chunks], context.show_progress)
    return DenseSystem(context.embedder, chunks, matrix, context.profile.top_k, context.profile.score_midpoint)


_TOKEN = regex.compile(r"\p{Han}|[\p{L}\p{N}]+")


def lexical_tokens(text: str) -> list[str]:
    """Lowercased words; each Han character is a token of its own (Chinese has no spaces)."""
    return [token.lower() for token in _TOKEN.findall(text)]


class BM25System:
    """BM25 over our chunks; the score has no absolute scale, so it answers whenever a term matches."""

    def __init__(self, chunks: list[Chunk], top_k: int) -> None:
        import bm25s

        # bm25s sets its logger to DEBUG on import; give the level back to the application.
        logging.getLogger("bm25s").setLevel(logging.NOTSET)
        self.chunks = chunks
        self.top_k = top_k
        self.index = bm25s.BM25()
        self.index.index([lexical_tokens(chunk.embedding_text) for chunk in chunks], show_progress=False)
        self.vocabulary: dict[str, int] = self.index.vocab_dict

    def ask(self, question: str, document_ids: Collection[str] | None = None) -> Prediction:
        tokens = [token for token in lexical_tokens(question) if token in self.vocabulary]
        if not tokens:
            return Prediction(False, [], [], [], 0.0)
        scores = _restricted(np.asarray(self.index.get_scores(tokens), dtype=np.float32), self.chunks, document_ids)
        top = [i for i in _top_indices(scores, self.top_k) if scores[i] > 0]
        hits = [Hit(self.chunks[i], float(scores[i])) for i in top]
        if not hits:
            return Prediction(False, [], [], [], 0.0)
        best = hits[0]
        # Only an ordering for risk-coverage; a BM25 score is not a probability.
        confidence = 1.0 - math.exp(-best.score / 10.0)
        return Prediction(True, hits, [best.chunk.chunk_id], [best.chunk.document_id], confidence, [best.chunk.text])


def build_bm25(documents: Sequence[Document], context: BuildContext) -> BM25System:
    return BM25System(chunk_documents(documents, context.embedder, context.profile), context.profile.top_k)


class LexicalSystem:
    """The engine's lexical leg alone; like ``bm25`` it answers whenever a term matches."""

    def __init__(self, index: LexicalIndex, chunks: Sequence[Chunk], top_k: int) -> None:
        self.index = index
        self.chunks = {chunk.chunk_id: chunk for chunk in chunks}
        self.top_k = top_k

    def ask(self, question: str, document_ids: Collection[str] | None = None) -> Prediction:
        from retrieval.analysis import analyze
        from retrieval.language import resolve_language

        scope = Scope.everything()
        if document_ids is not None:
            scope = scope.narrowed(document_ids=document_ids)
        terms = analyze(question, resolve_language(question))
        hits = [
            Hit(self.chunks[match.chunk_id], match.score, lexical_score=match.score)
            for match in self.index.search(terms, self.top_k, scope)
        ]
        if not hits:
            return Prediction(False, [], [], [], 0.0)
        best = hits[0]
        confidence = 1.0 - math.exp(-best.score / 10.0)  # an ordering for risk-coverage, as for bm25
        return Prediction(True, hits, [best.chunk.chunk_id], [best.chunk.document_id], confidence, [best.chunk.text])


def build_lexical(documents: Sequence[Document], context: BuildContext) -> LexicalSystem:
    chunks = chunk_documents(documents, context.embedder, context.profile)
    index = LexicalIndex(f"sqlite:///{context.workdir / 'lexical.db'}", background_rebuild=False)
    index.upsert(chunks)
    index.refresh()
    return LexicalSystem(index, chunks, context.profile.top_k)


def _top_indices(scores: np.ndarray, k: int) -> list[int]:
    k = min(k, int(np.isfinite(scores).sum()))
    if k <= 0:
        return []
    candidates = np.argpartition(-scores, k - 1)[:k]
    return [int(i) for i in candidates[np.argsort(-scores[candidates], kind="stable")]]


def _restricted(scores: np.ndarray, chunks: Sequence[Chunk], document_ids: Collection[str] | None) -> np.ndarray:
    """``scores`` with chunks outside ``document_ids`` set to -inf (never ranked); all when None."""
    if document_ids is None:
        return scores
    allowed = set(document_ids)
    inside = np.fromiter((chunk.document_id in allowed for chunk in chunks), dtype=bool, count=len(chunks))
    return np.where(inside, scores, -np.inf).astype(scores.dtype)


SYSTEMS: dict[str, Builder] = {
    "answerdesk": build_answerdesk,
    "answerdesk-dense": build_answerdesk_dense,
    "lexical": build_lexical,
    "llamaindex": build_llamaindex,
    "dense": build_dense,
    "bm25": build_bm25,
}
