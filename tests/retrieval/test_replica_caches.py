"""Two replicas (two engine instances with different data dirs) on one PostgreSQL database and one
Chroma server: a document written through A is found through B, by the lexical leg and by exact
vector search, within the bounded delay of the generation checks (retrieval/generations.py), with
no restart and nothing shared on local disk."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.pipeline import build_ingestor
from retrieval.config import RetrievalProfile, Settings
from retrieval.embedding import HashingEmbedder
from retrieval.generations import MAX_AGE_S
from retrieval.lexical import LexicalIndex
from retrieval.pipeline import AnswerPipeline, build_components
from retrieval.scope import Scope
from tests.chroma_server import ChromaServer, chroma_command
from tests.helpers import wait_until

WARRANTY = "# Warranty\n\nWarranty claims are handled within 30 days of delivery.\n"
# Another write is seen after the generation check's interval plus a rebuild (milliseconds here).
BOUND_S = MAX_AGE_S + 2.0


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    if chroma_command() is None:
        from tests.conftest import service_unreachable

        service_unreachable("Chroma", "the chroma command is not installed")
    server = ChromaServer(tmp_path / "chroma-server")
    server.start()
    yield server
    server.stop()


def test_a_write_through_one_replica_is_found_through_another(
    postgres_url: str, chroma: ChromaServer, tmp_path: Path
) -> None:
    a = Settings(data_dir=tmp_path / "a", database_url_setting=postgres_url, chroma_urls=chroma.url)
    b = a.model_copy(update={"data_dir": tmp_path / "b"})
    embedder, store_a, registry_a = build_components(a, HashingEmbedder())
    writer = build_ingestor(a, RetrievalProfile(), embedder, store_a, registry_a)
    kb = tmp_path / "kb"
    (kb / "en").mkdir(parents=True)
    (kb / "en" / "refunds.md").write_text("# Refunds\n\nRefunds reach your card within 10 days.\n")
    writer.ingest([kb])

    _, store_b, registry_b = build_components(b, HashingEmbedder())
    lexical_b = LexicalIndex(b.database_url)  # background rebuilds, throttled generation checks: as served
    reader = AnswerPipeline(embedder, store_b, RetrievalProfile(), registry_b, lexical=lexical_b)
    assert "en/refunds" in _lexical(reader, "refunds card")
    assert "en/refunds" in _dense(reader, "Refunds reach your card within 10 days.")
    assert store_b.snapshots.ready("default") is not None  # B answers from its own in-memory snapshot

    (kb / "en" / "warranty.md").write_text(WARRANTY)
    writer.ingest([kb])
    written = time.monotonic()
    assert wait_until(lambda: "en/warranty" in _lexical(reader, "warranty claims"), timeout=BOUND_S)
    assert wait_until(lambda: "en/warranty" in _dense(reader, WARRANTY), timeout=BOUND_S)
    print(f"seen through the other replica after {time.monotonic() - written:.2f} s")
    assert store_b.snapshots.ready("default") is not None  # by exact search, not by falling back to Chroma
    assert not (b.data_dir / "lexical").exists() and not (b.data_dir / "chroma").exists()


def _lexical(engine: AnswerPipeline, question: str) -> list[str]:
    assert engine.retriever.lexical is not None
    return [match.document_id for match in engine.retriever.lexical.retrieve(question, "en", 5, Scope())]


def _dense(engine: AnswerPipeline, text: str) -> list[str]:
    vector = engine.embedder.embed_query(text)
    return [hit.chunk.document_id for hit in engine.store.query(vector, 3, Scope())]
