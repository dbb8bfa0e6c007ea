"""The peer: a plain LlamaIndex pipeline over the same documents and the same embedder.

``SentenceSplitter`` → ``VectorStoreIndex`` over Chroma → retriever with ``similarity_top_k`` →
``SimilarityPostprocessor`` cutoff; nothing left after the cutoff means abstain, and every node left
is a cited source (as a query engine's ``source_nodes`` would be).

Choices that keep the comparison about the pipeline, not the plumbing:
- the embed model is set explicitly to our embedder (LlamaIndex would default to OpenAI);
- the Chroma collection uses our HNSW settings (Chroma's defaults lose recall at 100k vectors);
- chunk size is our ``chunk_max_tokens`` (LlamaIndex's 1024 would be truncated by e5 at 512) and the
  overlap our ``chunk_overlap_tokens``; LlamaIndex counts them in its own (tiktoken) tokens;
- the cutoff is our ``score_midpoint`` mapped to LlamaIndex's Chroma similarity, ``exp(-cosine distance)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Sequence
from typing import Any, cast

from eval.answerer import BuildContext, Prediction
from retrieval.embedding import Embedder
from retrieval.records import Chunk, Document, Hit

logger = logging.getLogger(__name__)


def render_text(document: Document) -> str:
    """A document as plain text: each section's heading (or FAQ question) on a line, then its blocks."""
    parts = []
    for section in document.sections:
        heading = section.path[-1] if section.path else ""
        parts.append("\n".join([heading, *section.blocks]) if heading else "\n".join(section.blocks))
    return "\n\n".join(part for part in parts if part.strip())


def similarity_from_cosine(cosine: float) -> float:
    """LlamaIndex's Chroma store reports ``exp(-distance)``; with cosine space distance is ``1 - cosine``."""
    return math.exp(-(1.0 - cosine))


def cosine_from_similarity(similarity: float) -> float:
    return 1.0 + math.log(max(similarity, 1e-12))


def llamaindex_embedding(embedder: Embedder) -> Any:
    """Our embedder as a LlamaIndex ``BaseEmbedding`` (e5 prefixes included, by the embedder)."""
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from pydantic import PrivateAttr

    class AnswerDeskEmbedding(BaseEmbedding):
        _embedder: Any = PrivateAttr()

        def __init__(self, inner: Embedder) -> None:
            super().__init__(model_name="answerdesk-embedder", embed_batch_size=256)
            self._embedder = inner

        def _get_query_embedding(self, query: str) -> list[float]:
            return [float(x) for x in self._embedder.embed_query(query)]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embeddings([text])[0]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return [[float(x) for x in row] for row in self._embedder.embed_documents(texts)]

    return AnswerDeskEmbedding(embedder)


def llamaindex_documents(documents: Sequence[Document]) -> list[Any]:
    """LlamaIndex documents; the title is metadata (embedded, LlamaIndex's default), the ids are not."""
    from llama_index.core import Document as LlamaDocument

    hidden = ["document_id", "language"]
    return [
        LlamaDocument(
            # LlamaIndex stores its document id as the Chroma metadata key "document_id", over ours:
            # give it ours, so a metadata filter on document_id (the per-query protocol) matches.
            id_=document.document_id,
            text=render_text(document),
            metadata={"document_id": document.document_id, "language": document.language}
            | ({"title": document.title} if document.title else {}),
            excluded_embed_metadata_keys=hidden,
            excluded_llm_metadata_keys=hidden,
        )
        for document in documents
    ]


def chroma_collection(path: str, name: str) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    from retrieval.vector_store import HNSW_CONFIGURATION

    client = chromadb.PersistentClient(path=path, settings=ChromaSettings(anonymized_telemetry=False))
    configuration = cast(Any, {"hnsw": HNSW_CONFIGURATION})
    return client.get_or_create_collection(name, configuration=configuration, embedding_function=None)


class LlamaIndexSystem:
    """Retriever plus similarity cutoff; every node that passes the cutoff is a citation."""

    def __init__(self, index: Any, top_k: int, cutoff_cosine: float) -> None:
        from llama_index.core.postprocessor import SimilarityPostprocessor

        self.index = index
        self.top_k = top_k
        self.retriever = index.as_retriever(similarity_top_k=top_k)
        self.postprocessor = SimilarityPostprocessor(similarity_cutoff=similarity_from_cosine(cutoff_cosine))

    def ask(self, question: str, document_ids: Collection[str] | None = None) -> Prediction:
        retriever = self.retriever if document_ids is None else self._restricted_retriever(document_ids)
        nodes = retriever.retrieve(question)
        kept = self.postprocessor.postprocess_nodes(nodes)
        hits = [_hit(node) for node in nodes]
        return Prediction(
            answered=bool(kept),
            ranked_chunks=hits,
            cited_chunk_ids=[node.node.node_id for node in kept],
            cited_document_ids=[str(node.node.metadata["document_id"]) for node in kept],
            confidence=min(max(hits[0].score, 0.0), 1.0) if hits else 0.0,
            quotes=[node.node.get_content() for node in kept],
        )

    def _restricted_retriever(self, document_ids: Collection[str]) -> Any:
        """A retriever limited to ``document_ids`` by a metadata filter (applied inside Chroma)."""
        from llama_index.core.vector_stores import FilterOperator, MetadataFilter, MetadataFilters

        only = MetadataFilter(key="document_id", value=sorted(document_ids), operator=FilterOperator.IN)
        return self.index.as_retriever(similarity_top_k=self.top_k, filters=MetadataFilters(filters=[only]))


def _hit(node: Any) -> Hit:
    meta = node.node.metadata
    chunk = Chunk(
        chunk_id=node.node.node_id,
        document_id=str(meta["document_id"]),
        text=node.node.get_content(),
        title=str(meta.get("title", "")),
        language=str(meta.get("language", "und")),
    )
    return Hit(chunk, cosine_from_similarity(float(node.score or 0.0)))


def build_llamaindex(documents: Sequence[Document], context: BuildContext) -> LlamaIndexSystem:
    from llama_index.core import StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.vector_stores.chroma import ChromaVectorStore

    profile = context.profile
    store = ChromaVectorStore(chroma_collection=chroma_collection(str(context.workdir / "llamaindex-chroma"), "peer"))
    index = VectorStoreIndex.from_documents(
        llamaindex_documents(documents),
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=llamaindex_embedding(context.embedder),
        transformations=[
            SentenceSplitter(chunk_size=profile.chunk_max_tokens, chunk_overlap=profile.chunk_overlap_tokens)
        ],
        show_progress=context.show_progress and len(documents) >= 1000,
    )
    return LlamaIndexSystem(index, profile.top_k, profile.score_midpoint)
