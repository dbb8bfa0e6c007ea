from __future__ import annotations

from pathlib import Path

import pytest

from ingest.chunk import Chunker
from ingest.pipeline import Ingestor, Outcome
from retrieval.embedding import HashingEmbedder
from retrieval.registry import DocumentRegistry
from retrieval.store import ChromaStore

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


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    (root / "en").mkdir(parents=True)
    (root / "en" / "faq-billing.md").write_text(FAQ, encoding="utf-8")
    (root / "en" / "contact.txt").write_text("Contact\n\nWrite to support@tasklane.example.", encoding="utf-8")
    return root


@pytest.fixture
def parts(tmp_path: Path) -> tuple[Ingestor, ChromaStore, DocumentRegistry]:
    embedder = HashingEmbedder()
    store = ChromaStore(tmp_path / "chroma")
    registry = DocumentRegistry(f"sqlite:///{tmp_path / 'registry.db'}")
    return Ingestor(embedder, store, registry, Chunker(embedder.count_tokens)), store, registry


def _outcomes(results: list) -> dict[str, Outcome]:  # type: ignore[type-arg]
    return {Path(result.source).name: result.outcome for result in results}


def test_reingesting_unchanged_files_writes_nothing(
    kb: Path, parts: tuple[Ingestor, ChromaStore, DocumentRegistry]
) -> None:
    ingestor, store, registry = parts
    first = ingestor.ingest([kb])
    assert _outcomes(first) == {"faq-billing.md": Outcome.ADDED, "contact.txt": Outcome.ADDED}
    ids_before = sorted(store.collection.get()["ids"])
    assert len(ids_before) == 3
    second = ingestor.ingest([kb])
    assert set(_outcomes(second).values()) == {Outcome.UNCHANGED}
    assert sorted(store.collection.get()["ids"]) == ids_before
    assert registry.get("en/faq-billing").version == 1  # type: ignore[union-attr]


def test_changed_document_replaces_its_chunks(kb: Path, parts: tuple[Ingestor, ChromaStore, DocumentRegistry]) -> None:
    ingestor, store, registry = parts
    ingestor.ingest([kb])
    (kb / "en" / "faq-billing.md").write_text(FAQ.replace("20 or more seats", "25 or more seats"), encoding="utf-8")
    assert _outcomes(ingestor.ingest([kb]))["faq-billing.md"] == Outcome.UPDATED
    texts = [chunk.text for chunk in store.chunks_of("en/faq-billing")]
    assert len(texts) == 2
    assert any("25 or more seats" in text for text in texts)
    assert not any("20 or more seats" in text for text in texts)
    assert registry.get("en/faq-billing").version == 2  # type: ignore[union-attr]


def test_sync_removes_documents_whose_files_are_gone(
    kb: Path, parts: tuple[Ingestor, ChromaStore, DocumentRegistry]
) -> None:
    ingestor, store, registry = parts
    ingestor.ingest([kb])
    (kb / "en" / "contact.txt").unlink()
    assert _outcomes(ingestor.ingest([kb], sync=False)).get("contact.txt") is None
    assert registry.get("en/contact") is not None
    results = ingestor.ingest([kb], sync=True)
    assert _outcomes(results)["contact.txt"] == Outcome.REMOVED
    assert registry.get("en/contact") is None
    assert store.chunks_of("en/contact") == []


def test_a_broken_file_fails_alone_and_keeps_its_old_chunks(
    kb: Path, parts: tuple[Ingestor, ChromaStore, DocumentRegistry]
) -> None:
    ingestor, store, _ = parts
    ingestor.ingest([kb])
    (kb / "en" / "faq-billing.md").write_bytes(b"\xff\xfe broken")
    (kb / "en" / "new.md").write_text("# New\n\nA new page.", encoding="utf-8")
    results = ingestor.ingest([kb], sync=True)
    by_name = {Path(result.source).name: result for result in results}
    assert by_name["faq-billing.md"].outcome == Outcome.FAILED
    assert "not valid UTF-8" in by_name["faq-billing.md"].error
    assert by_name["new.md"].outcome == Outcome.ADDED
    assert len(store.chunks_of("en/faq-billing")) == 2


def test_duplicate_document_ids_fail_the_second_file(
    tmp_path: Path, parts: tuple[Ingestor, ChromaStore, DocumentRegistry]
) -> None:
    ingestor, _, registry = parts
    for name in ("a.md", "b.md"):
        (tmp_path / name).write_text("---\nid: shared\n---\n# T\n\nText.", encoding="utf-8")
    results = ingestor.ingest([tmp_path / "a.md", tmp_path / "b.md"])
    assert [result.outcome for result in results] == [Outcome.ADDED, Outcome.FAILED]
    assert "duplicate document id 'shared'" in results[1].error
    assert registry.get("shared").source.endswith("a.md")  # type: ignore[union-attr]


def test_missing_path_and_unsupported_files_are_reported(
    tmp_path: Path, parts: tuple[Ingestor, ChromaStore, DocumentRegistry]
) -> None:
    ingestor, _, _ = parts
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "slides.pptx").write_bytes(b"PK\x03\x04")
    results = ingestor.ingest([tmp_path / "nope", tmp_path / "folder"])
    assert {(Path(r.source).name, r.outcome, r.error) for r in results} == {
        ("nope", Outcome.FAILED, "no such file or directory"),
        ("slides.pptx", Outcome.FAILED, "unsupported file type .pptx"),
    }
