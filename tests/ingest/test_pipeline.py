from __future__ import annotations

from pathlib import Path

import pytest

from ingest.chunk import Chunker
from ingest.pipeline import Ingestor, Outcome
from retrieval.config import RetrievalProfile
from retrieval.embedding import HashingEmbedder
from retrieval.pipeline import AnswerPipeline
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


class Crash(BaseException):
    """Stands in for the process dying: not an Exception, so nothing catches it."""


def _counting(store: ChromaStore) -> dict[str, int]:
    """Count every write call the store gets."""
    calls = {"upsert": 0, "delete": 0}
    for name in calls:
        original = getattr(store, name)

        def counted(*args: object, _name: str = name, _original: object = original) -> object:
            calls[_name] += 1
            return _original(*args)  # type: ignore[operator]

        setattr(store, name, counted)
    return calls


def _answer_engine(store: ChromaStore, registry: DocumentRegistry) -> AnswerPipeline:
    # The hashing embedder scores far lower than e5, so any match answers here.
    return AnswerPipeline(HashingEmbedder(), store, RetrievalProfile(score_midpoint=0.05), registry)


def test_unchanged_corpus_makes_zero_store_writes(
    kb: Path, parts: tuple[Ingestor, ChromaStore, DocumentRegistry]
) -> None:
    ingestor, store, _ = parts
    ingestor.ingest([kb], sync=True)
    calls = _counting(store)
    results = ingestor.ingest([kb], sync=True)
    assert {result.outcome for result in results} == {Outcome.UNCHANGED}
    assert calls == {"upsert": 0, "delete": 0}
    assert ingestor.times.passages_embedded == 0


def test_replacement_is_atomic_for_readers(kb: Path, parts: tuple[Ingestor, ChromaStore, DocumentRegistry]) -> None:
    ingestor, store, registry = parts
    ingestor.ingest([kb])
    engine = _answer_engine(store, registry)
    seen: list[set[int]] = []

    def versions_readers_see() -> None:
        hits = engine.retriever.retrieve("When am I charged? invoice seats subscription", "en")
        seen.append({hit.chunk.version for hit in hits if hit.chunk.document_id == "en/faq-billing"})

    # Look at what readers see at the two moments both versions are physically in the store.
    upsert, delete = store.upsert, store.delete
    store.upsert = lambda *a: (upsert(*a), versions_readers_see())[0]  # type: ignore[method-assign]
    store.delete = lambda ids: (versions_readers_see(), delete(ids))[1]  # type: ignore[method-assign]
    (kb / "en" / "faq-billing.md").write_text(FAQ.replace("20 or more seats", "25 or more seats"), encoding="utf-8")
    ingestor.ingest([kb])
    assert seen == [{1}, {2}]  # old version whole until the switch, then the new one whole, never a gap

    answer = engine.ask("Can I pay by invoice for 25 or more seats?")
    [citation] = [c for c in answer.citations if c.document_id == "en/faq-billing"]
    record = registry.get("en/faq-billing")
    assert record is not None and (citation.version, citation.updated_at) == (2, record.updated_at)


def test_changed_document_reuses_embeddings_of_unchanged_passages(
    kb: Path, parts: tuple[Ingestor, ChromaStore, DocumentRegistry]
) -> None:
    ingestor, _, _ = parts
    ingestor.ingest([kb])
    (kb / "en" / "faq-billing.md").write_text(FAQ.replace("20 or more seats", "25 or more seats"), encoding="utf-8")
    ingestor.ingest([kb])
    assert (ingestor.times.passages_embedded, ingestor.times.passages_reused) == (1, 1)


def test_dry_run_reports_and_writes_nothing(kb: Path, parts: tuple[Ingestor, ChromaStore, DocumentRegistry]) -> None:
    ingestor, store, registry = parts
    ingestor.ingest([kb])
    (kb / "en" / "faq-billing.md").write_text(FAQ.replace("20 or more", "30 or more"), encoding="utf-8")
    (kb / "en" / "contact.txt").unlink()
    (kb / "en" / "new.md").write_text("# New\n\nA new page.", encoding="utf-8")
    calls = _counting(store)
    results = ingestor.ingest([kb], sync=True, dry_run=True)
    assert _outcomes(results) == {
        "faq-billing.md": Outcome.UPDATED,
        "new.md": Outcome.ADDED,
        "contact.txt": Outcome.REMOVED,
    }
    assert calls == {"upsert": 0, "delete": 0}
    assert registry.get("en/new") is None and registry.get("en/contact") is not None
    assert registry.get("en/faq-billing").version == 1  # type: ignore[union-attr]


def test_bad_files_fail_alone_with_their_code_and_leave_the_store_unchanged(
    kb: Path, parts: tuple[Ingestor, ChromaStore, DocumentRegistry]
) -> None:
    from tests.ingest.samples import encrypt_pdf, make_pdf, make_zip_bomb

    ingestor, store, registry = parts
    ingestor.ingest([kb])
    before = sorted(store.collection.get()["ids"])
    bad = kb / "bad"
    bad.mkdir()
    (bad / "empty.md").write_text("", encoding="utf-8")
    (bad / "latin1.md").write_bytes(b"Caf\xe9")
    (bad / "corrupt.pdf").write_bytes(make_pdf([["Text"]])[:150])
    (bad / "locked.pdf").write_bytes(encrypt_pdf(make_pdf([["Text"]])))
    make_zip_bomb(bad / "bomb.docx")
    (bad / "huge.md").write_text("# Huge\n\n" + "word " * 20_000, encoding="utf-8")
    (bad / "faq.csv").write_text("question\nWhy?\n", encoding="utf-8")
    (bad / "image.md").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    (bad / "dup.md").write_text("---\nid: en/faq-billing\n---\n# Dup\n\nSame id.", encoding="utf-8")
    ingestor.max_file_bytes = 50_000
    results = {Path(result.source).name: result for result in ingestor.ingest([kb])}
    assert {name: result.code for name, result in results.items() if result.outcome == Outcome.FAILED} == {
        "empty.md": "empty_file",
        "latin1.md": "invalid_utf8",
        "corrupt.pdf": "corrupt_pdf",
        "locked.pdf": "encrypted_pdf",
        "bomb.docx": "zip_bomb",
        "huge.md": "too_large",
        "faq.csv": "missing_columns",
        "image.md": "content_mismatch",
        "dup.md": "duplicate_id",
    }
    assert all(results[name].outcome == Outcome.UNCHANGED for name in ("faq-billing.md", "contact.txt"))
    assert sorted(store.collection.get()["ids"]) == before
    assert registry.get("en/faq-billing").source.endswith("en/faq-billing.md")  # type: ignore[union-attr]


@pytest.mark.parametrize("step", ["store upsert", "registry commit", "store delete"])
def test_a_crash_at_any_publish_step_is_repaired_by_the_next_run(
    kb: Path, parts: tuple[Ingestor, ChromaStore, DocumentRegistry], step: str
) -> None:
    ingestor, store, registry = parts
    ingestor.ingest([kb])
    (kb / "en" / "faq-billing.md").write_text(FAQ.replace("20 or more", "40 or more"), encoding="utf-8")
    owner, name = {"store upsert": (store, "upsert"), "registry commit": (registry, "commit"),
                   "store delete": (store, "delete")}[step]  # fmt: skip
    original = getattr(owner, name)

    def crash_after(*args: object) -> object:
        original(*args)
        raise Crash(step)

    setattr(owner, name, crash_after)
    with pytest.raises(Crash):
        ingestor.ingest([kb])
    setattr(owner, name, original)
    engine = _answer_engine(store, registry)
    hits = engine.retriever.retrieve("Can I pay by invoice?", "en")
    assert len({hit.chunk.version for hit in hits if hit.chunk.document_id == "en/faq-billing"}) == 1
    assert ingestor.audit()  # the crash left something to repair (journal entries, extra chunks)

    ingestor.ingest([kb])
    assert ingestor.audit() == []
    record = registry.get("en/faq-billing")
    assert record is not None
    texts = [chunk.text for chunk in store.chunks_of("en/faq-billing")]
    assert len(texts) == 2 and any("40 or more" in text for text in texts)
    assert {chunk.version for chunk in store.chunks_of("en/faq-billing")} == {record.version}
