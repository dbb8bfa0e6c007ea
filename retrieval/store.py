"""The vector store: chunks and their embeddings in Chroma, on disk.

Embeddings are always passed in: Chroma's default embedding function would download a model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from retrieval.scope import TAG_KEY_PREFIX, Scope, tag_set
from retrieval.types import Chunk, Hit

logger = logging.getLogger(__name__)

# Chroma's default HNSW settings gave recall@10 of 0.54 against exact search at 100k vectors;
# these gave 0.97 (shared/notes/offline-e5.md).
HNSW_CONFIGURATION: dict[str, Any] = {"space": "cosine", "ef_construction": 200, "ef_search": 400, "max_neighbors": 32}
_WRITE_BATCH = 1000
# How many unfiltered neighbours per wanted hit are tried before falling back to a filtered query.
_UNFILTERED_OVERFETCH = 4


class StoreUnavailableError(RuntimeError):
    """The vector store cannot be reached or opened."""


class ChromaStore:
    """Chunks with embeddings in one Chroma collection; ``query`` returns Hits by cosine similarity."""

    def __init__(self, path: Path, collection: str = "answerdesk") -> None:
        self.path = path
        self.collection_name = collection
        self._collection: Any = None

    @property
    def collection(self) -> Any:
        if self._collection is None:
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            self.path.mkdir(parents=True, exist_ok=True)
            client = chromadb.PersistentClient(path=str(self.path), settings=ChromaSettings(anonymized_telemetry=False))
            self._collection = client.get_or_create_collection(
                self.collection_name,
                configuration=cast(Any, {"hnsw": HNSW_CONFIGURATION}),
                embedding_function=None,
            )
        return self._collection

    def upsert(self, chunks: Sequence[Chunk], embeddings: NDArray[np.float32]) -> None:
        if len(chunks) != len(embeddings):
            raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
        for start in range(0, len(chunks), _WRITE_BATCH):
            batch = chunks[start : start + _WRITE_BATCH]
            self.collection.upsert(
                ids=[chunk.chunk_id for chunk in batch],
                embeddings=embeddings[start : start + _WRITE_BATCH],
                documents=[chunk.text for chunk in batch],
                metadatas=[_metadata(chunk) for chunk in batch],
            )

    def delete(self, chunk_ids: Sequence[str]) -> None:
        for start in range(0, len(chunk_ids), _WRITE_BATCH):
            self.collection.delete(ids=list(chunk_ids[start : start + _WRITE_BATCH]))

    def chunks_of(self, document_id: str, version: int | None = None) -> list[Chunk]:
        """The stored chunks of a document (of one version when given), in reading order."""
        where: dict[str, Any] = {"document_id": document_id}
        if version is not None:
            where = {"$and": [where, {"version": version}]}
        result = self.collection.get(where=where, include=["documents", "metadatas"])
        chunks = [
            _chunk(chunk_id, text, meta)
            for chunk_id, text, meta in zip(result["ids"], result["documents"], result["metadatas"], strict=True)
        ]
        return sorted(chunks, key=lambda chunk: chunk.position)

    def embedded(self, chunk_ids: Sequence[str]) -> list[tuple[Chunk, NDArray[np.float32]]]:
        """Stored chunks with their embeddings (ids not in the store are left out)."""
        if not chunk_ids:
            return []
        result = self.collection.get(ids=list(chunk_ids), include=["documents", "metadatas", "embeddings"])
        return [
            (_chunk(chunk_id, text, meta), np.asarray(vector, dtype=np.float32))
            for chunk_id, text, meta, vector in zip(
                result["ids"], result["documents"], result["metadatas"], result["embeddings"], strict=True
            )
        ]

    def inventory(self) -> dict[str, tuple[str, int]]:
        """Every stored chunk id with its document id and version (for consistency checks)."""
        result = self.collection.get(include=["metadatas"])
        return {
            chunk_id: (str(meta["document_id"]), int(meta.get("version", 0)))
            for chunk_id, meta in zip(result["ids"], result["metadatas"], strict=True)
        }

    def query(self, embedding: NDArray[np.float32], k: int, scope: Scope | None = None) -> list[Hit]:
        """The ``k`` chunks nearest to ``embedding`` inside ``scope`` (None: no restriction).

        Chroma applies a ``where`` clause before its HNSW search by listing every matching id, which
        is slow when the filter matches most of the collection (232 ms at 100k when it matches
        everything), while a selective filter is fast. So the unfiltered neighbours are tried first
        and filtered here; only when too few of them are in scope does the store run the filtered
        query. Either way every hit is checked against the scope before it is returned.
        """
        if k <= 0 or (scope is not None and scope.is_empty):
            return []
        total = self.count()  # one count per query: it is a database round trip
        if total == 0:
            return []
        if scope is None:
            return self._nearest(embedding, min(k, total), None)
        wanted = min(total, k * _UNFILTERED_OVERFETCH)
        hits = [hit for hit, meta in self._nearest_with_metadata(embedding, wanted, None) if scope.allows(meta)]
        if len(hits) < k and wanted < total:
            hits = [
                hit for hit, meta in self._nearest_with_metadata(embedding, min(k, total), scope.where())
                if scope.allows(meta)
            ]
        return hits[:k]

    def _nearest(self, embedding: NDArray[np.float32], n: int, where: dict[str, Any] | None) -> list[Hit]:
        return [hit for hit, _ in self._nearest_with_metadata(embedding, n, where)]

    def _nearest_with_metadata(
        self, embedding: NDArray[np.float32], n: int, where: dict[str, Any] | None
    ) -> list[tuple[Hit, dict[str, Any]]]:
        result = self.collection.query(
            query_embeddings=[embedding],
            n_results=n,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        return [
            (Hit(chunk=_chunk(chunk_id, text, meta), score=1.0 - float(distance)), meta)
            for chunk_id, text, meta, distance in zip(
                result["ids"][0],
                result["documents"][0],
                result["metadatas"][0],
                result["distances"][0],
                strict=True,
            )
        ]

    def count(self) -> int:
        return int(self.collection.count())

    def ping(self) -> None:
        """Raise StoreUnavailableError unless the store answers."""
        try:
            self.collection.count()
        except Exception as exc:  # any failure inside Chroma means "not ready"
            raise StoreUnavailableError(f"vector store at {self.path} is unavailable: {exc}") from exc


def _metadata(chunk: Chunk) -> dict[str, str | int | bool]:
    metadata: dict[str, str | int | bool] = {
        "document_id": chunk.document_id,
        "tenant": chunk.tenant,
        "audience": chunk.audience,
        "product": chunk.product,
        "title": chunk.title,
        # A JSON list keeps headings that contain the display separator intact.
        "section_path": json.dumps(chunk.section_path, ensure_ascii=False),
        "kind": chunk.kind,
        "language": chunk.language,
        "source": chunk.source,
        "position": chunk.position,
        "document_hash": chunk.document_hash,
        "updated_at": chunk.updated_at,
        "version": chunk.version,
        "embedding_key": chunk.embedding_key,
    }
    metadata.update({TAG_KEY_PREFIX + tag: True for tag in chunk.tags})
    return metadata


def _chunk(chunk_id: str, text: str, meta: dict[str, Any]) -> Chunk:
    return Chunk(
        chunk_id=chunk_id,
        document_id=str(meta["document_id"]),
        text=text,
        title=str(meta.get("title", "")),
        section_path=tuple(json.loads(str(meta.get("section_path", "[]")))),
        kind=str(meta.get("kind", "section")),
        language=str(meta.get("language", "und")),
        source=str(meta.get("source", "")),
        position=int(meta.get("position", 0)),
        document_hash=str(meta.get("document_hash", "")),
        updated_at=str(meta.get("updated_at", "")),
        version=int(meta.get("version", 0)),
        embedding_key=str(meta.get("embedding_key", "")),
        audience=str(meta.get("audience", "public")),
        product=str(meta.get("product", "")),
        tags=tag_set(key[len(TAG_KEY_PREFIX) :] for key in meta if key.startswith(TAG_KEY_PREFIX)),
    )
