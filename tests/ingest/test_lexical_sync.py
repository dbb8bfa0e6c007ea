"""Ingestion keeps the lexical index in step with the registry and the vector store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text

from ingest.chunk import Chunker
from ingest.pipeline import Ingestor
from retrieval.config import RetrievalProfile
from retrieval.embedding import HashingEmbedder
from retrieval.lexical import LexicalIndex
from retrieval.pipeline import AnswerPipeline
from retrieval.records import Chunk
from retrieval.registry import DocumentRegistry
from retrieval.vector_store import ChromaStore

FAQ = """---
title: Billing FAQ
type: faq
---
# Billing FAQ

## When am I charged?
On the day your subscription started.

## Can I pay by invoice?
Yes, for annual plans with 20 or more seats.
"""


def make_ingestor(data: Path, with_lexical: bool = True) -> Ingestor:
    data.mkdir(parents=True, exist_ok=True)
    embedder = HashingEmbedder()
    return Ingestor(
        embedder,
        ChromaStore(data / "chroma"),
        DocumentRegistry(f"sqlite:///{data / 'registry.db'}"),
        Chunker(embedder.count_tokens),
        lexical=LexicalIndex(f"sqlite:///{data / 'registry.db'}", background_rebuild=False) if with_lexical else None,
    )


def write_kb(root: Path, invoice_seats: int = 20) -> Path:
    (root / "en").mkdir(parents=True, exist_ok=True)
    (root / "en" / "faq-billing.md").write_text(FAQ.replace("20", str(invoice_seats)), encoding="utf-8")
    (root / "en" / "contact.txt").write_text("Contact\n\nWrite to support@tasklane.example.", encoding="utf-8")
    return root


def lexical_ids(index: LexicalIndex) -> dict[str, tuple[str, int]]:
    return index.inventory()


def test_publish_replace_and_remove_reach_the_lexical_index(tmp_path: Path) -> None:
    kb = write_kb(tmp_path / "kb")
    ingestor = make_ingestor(tmp_path / "data")
    ingestor.ingest([kb], sync=True)
    assert ingestor.lexical is not None
    live = {chunk_id for record in ingestor.registry.all() for chunk_id in record.chunk_ids}
    assert set(lexical_ids(ingestor.lexical)) == live and len(live) == 3
    write_kb(kb, invoice_seats=25)
    ingestor.ingest([kb], sync=True)
    assert {version for _, version in lexical_ids(ingestor.lexical).values()} == {1, 2}  # contact v1, billing v2
    (kb / "en" / "contact.txt").unlink()
    ingestor.ingest([kb], sync=True)
    assert {document for document, _ in lexical_ids(ingestor.lexical).values()} == {"en/faq-billing"}
    assert ingestor.audit() == []


def test_audit_sees_a_lexical_index_out_of_step_and_recover_repairs_it(tmp_path: Path) -> None:
    kb = write_kb(tmp_path / "kb")
    ingestor = make_ingestor(tmp_path / "data")
    ingestor.ingest([kb])
    assert ingestor.lexical is not None
    dropped = sorted(lexical_ids(ingestor.lexical))[0]
    ingestor.lexical.delete([dropped])
    ghost = Chunk(chunk_id="en/ghost#v1-0", document_id="en/ghost", text="ghost", title="", version=1)
    ingestor.lexical.upsert([ghost])
    problems = ingestor.audit()
    assert any(problem.startswith("LexicalIndex: 1 live chunks missing") for problem in problems), problems
    assert any(problem.startswith("LexicalIndex: 1 chunks not live") for problem in problems), problems
    ingestor.recover()
    assert ingestor.audit() == []


def test_a_data_dir_ingested_before_the_lexical_index_gets_it_filled(tmp_path: Path) -> None:
    kb = write_kb(tmp_path / "kb")
    make_ingestor(tmp_path / "data", with_lexical=False).ingest([kb])
    upgraded = make_ingestor(tmp_path / "data")
    assert upgraded.audit() != []  # the new index is empty
    upgraded.recover()  # what a server start or the next ingest does
    assert upgraded.audit() == []


def test_the_server_sees_a_cli_ingest_without_restart(tmp_path: Path) -> None:
    """The engine's index and the CLI's are two objects (two processes) over the same folder."""
    data = tmp_path / "data"
    kb = write_kb(tmp_path / "kb")
    cli = make_ingestor(data)
    cli.ingest([kb])
    engine = AnswerPipeline(
        HashingEmbedder(),
        ChromaStore(data / "chroma"),
        RetrievalProfile(dense_weight=0.0, lexical_weight=1.0),  # the lexical leg alone decides the order
        DocumentRegistry(f"sqlite:///{data / 'registry.db'}"),
        lexical=LexicalIndex(f"sqlite:///{data / 'registry.db'}", background_rebuild=False, max_age_s=0),
    )
    assert [hit.chunk.document_id for hit in engine.retriever.retrieve("warranty claims", "en")] == []
    (kb / "en" / "warranty.md").write_text("# Warranty\n\nWarranty claims are handled within 30 days.\n")
    cli.ingest([kb])
    hits = engine.retriever.retrieve("warranty claims", "en")
    assert [hit.chunk.document_id for hit in hits] == ["en/warranty"]
    assert hits[0].lexical_score > 0


def test_a_data_dir_from_before_the_lexical_rows_moved_into_sql_gets_them_at_start(tmp_path: Path) -> None:
    """A data dir of the previous version: the lexical rows in ``lexical/chunks.sqlite3``, the SQL
    schema at 0004. The server's start upgrades the SQLite schema (0005: an empty table) and its
    recovery refills the table from the vector store, so the lexical leg is not lost."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from common.sql import open_database
    from tests.helpers import bearer, issue_key, small_kb_settings

    settings = small_kb_settings(tmp_path)
    old = settings.data_dir / "lexical" / "chunks.sqlite3"
    old.parent.mkdir()
    with sqlite3.connect(old) as connection:  # the old file, as the previous version left it
        connection.execute("CREATE TABLE chunks (chunk_id TEXT PRIMARY KEY, terms TEXT NOT NULL)")
    engine = open_database(settings.database_url)
    with engine.begin() as connection:
        for table in ("lexical_chunks", "cache_generations", "experiments", "experiment_answers"):
            connection.execute(text(f"DROP TABLE {table}"))
        connection.execute(text("UPDATE alembic_version SET version_num = '0004'"))
    engine.dispose()
    token = issue_key(settings)
    with TestClient(create_app(settings, embedder=HashingEmbedder()), headers=bearer(token)) as client:
        engine_state = client.app.state  # type: ignore[attr-defined]
        index = engine_state.engine.retriever.lexical.index
        assert index.count() == engine_state.engine.store.count() == 3
        assert engine_state.documents.ingestor.audit() == []
        hits = engine_state.engine.retriever.retrieve("How long does a refund take?", "en")
        assert any(hit.lexical_score > 0 for hit in hits)
