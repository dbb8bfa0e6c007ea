"""Two replicas on one PostgreSQL database, each with its own data dir (so its own ingest lock file):
the one that starts must not roll back the other's write in flight (ingest/locks.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ingest.chunk import Chunker
from ingest.locks import TenantLocks
from ingest.pipeline import Ingestor
from retrieval.embedding import HashingEmbedder
from retrieval.lexical import LexicalIndex
from retrieval.records import Chunk
from retrieval.registry import DocumentRecord, DocumentRegistry
from retrieval.vector_store import ChromaStore


def replica(data: Path, url: str, chroma: Path) -> Ingestor:
    """A replica's ingestor: its own data dir and lock file; the database and the vector store shared."""
    embedder = HashingEmbedder()
    registry = DocumentRegistry(url)
    return Ingestor(
        embedder,
        ChromaStore(chroma),
        registry,
        Chunker(embedder.count_tokens),
        lock_path=data / "ingest.lock",
        lexical=LexicalIndex(url, background_rebuild=False),
        locks=TenantLocks(registry.engine),
    )


def test_a_replica_starting_leaves_another_replicas_write_in_flight_alone(postgres_url: str, tmp_path: Path) -> None:
    a = replica(tmp_path / "a", postgres_url, tmp_path / "chroma")
    b = replica(tmp_path / "b", postgres_url, tmp_path / "chroma")
    chunk = Chunk("acme:en/warranty#v1-0", "acme:en/warranty", "Warranty claims take 30 days.", "Warranty", version=1)
    record = DocumentRecord("acme:en/warranty", "Warranty", "en/warranty.md", "en", "page", "h", 1, [chunk.chunk_id],
                            "now")
    assert a.locks is not None
    with a.locks.hold("acme"):  # replica A writes acme's document, step by step (retrieval/publish.py)
        staged = a.registry.stage([(record.document_id, [chunk.chunk_id])])
        a.store.upsert([chunk], np.asarray(a.embedder.embed_documents([chunk.text]), dtype=np.float32))
        assert a.lexical is not None
        a.lexical.upsert([chunk])
        assert b.recover() == 0  # replica B starts meanwhile: acme is being written, so it is left alone
        a.registry.commit([record], staged, [])
    assert set(a.store.inventory()) == {chunk.chunk_id} and set(a.lexical.inventory()) == {chunk.chunk_id}
    assert a.audit() == [] and b.audit() == []


def test_an_interrupted_write_is_recovered_by_the_next_replica_to_start(postgres_url: str, tmp_path: Path) -> None:
    a = replica(tmp_path / "a", postgres_url, tmp_path / "chroma")
    chunk = Chunk("acme:en/warranty#v1-0", "acme:en/warranty", "Warranty claims take 30 days.", "Warranty", version=1)
    a.registry.stage([("acme:en/warranty", [chunk.chunk_id])])
    assert a.lexical is not None
    a.lexical.upsert([chunk])  # replica A died here: nobody holds acme's lock
    b = replica(tmp_path / "b", postgres_url, tmp_path / "chroma")
    assert b.recover() == 1
    assert a.lexical.inventory() == {} and a.registry.journal() == []
    assert b.audit() == []
