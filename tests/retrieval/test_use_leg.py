"""The USE leg: USE multilingual v3 vectors stored per chunk beside the e5 ones, fused into the dense
ranking by per-query z-scores, skipped for languages USE does not cover and for stores without them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from ingest.chunk import Chunker
from ingest.pipeline import Ingestor
from retrieval.config import RetrievalProfile
from retrieval.dense import UseLeg, _z_scores
from retrieval.embedding import HashingEmbedder, Matrix
from retrieval.pipeline import AnswerPipeline
from retrieval.publish import Publication, Publisher
from retrieval.records import Chunk
from retrieval.registry import DocumentRecord, DocumentRegistry
from retrieval.use_encoder import USE_DIMENSION, UseEncoder, shared_use_encoder, use_covers, use_store_beside
from retrieval.vector_store import ChromaStore

# The hashing e5 stand-in matches whole words only, so it cannot link a Russian question to an
# English passage; USE (the real model) can.
E5 = HashingEmbedder()
USE = shared_use_encoder()
DOCUMENTS = {
    "en/faq-refunds": ("en", "Refunds are paid back to your card within ten days."),
    "en/faq-password": ("en", "To reset your password, open the sign-in page and choose 'Forgot password'."),
    "en/faq-export": ("en", "You can export all projects as a CSV file from the workspace settings."),
    "lv/faq-trial": ("lv", "Izmēģinājuma periods ilgst četrpadsmit dienas."),
}


def test_use_vectors_match_across_languages() -> None:
    vectors = USE.embed(["How do I reset my password?", "Как сбросить пароль?", "Refunds take ten days."])
    assert vectors.shape == (3, USE_DIMENSION) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.2
    assert use_covers("ru") and use_covers("zh") and use_covers("EN") and not use_covers("lv")


def test_z_scores_are_centred_and_constant_scores_are_zero() -> None:
    scores = _z_scores(np.array([0.9, 0.8, 0.7]))
    assert scores.mean() == pytest.approx(0.0) and scores.std() == pytest.approx(1.0)
    assert not _z_scores(np.array([0.5, 0.5])).any()


def build(tmp_path: Path, with_use: bool = True, **knobs: object) -> AnswerPipeline:
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = ChromaStore(tmp_path / "chroma")
    registry = DocumentRegistry(f"sqlite:///{tmp_path / 'registry.db'}")
    use_store = use_store_beside(store)
    publications = []
    for document_id, (language, text) in DOCUMENTS.items():
        chunk = Chunk(f"{document_id}#v1-0", document_id, text, "", language=language, version=1)
        record = DocumentRecord(document_id, "", "", language, "faq", "h", 1, [chunk.chunk_id], "now")
        use_vectors = USE.embed([chunk.embedding_text]) if with_use and use_covers(language) else None
        publications.append(Publication(record, [chunk], E5.embed_documents([chunk.embedding_text]), None, use_vectors))
    Publisher(registry, [store], use_store).publish(publications)
    profile = RetrievalProfile(lexical_weight=0.0, prefer_localized=False, **knobs)  # type: ignore[arg-type]
    return AnswerPipeline(E5, store, profile, registry, use=UseLeg(USE, use_store))


def test_the_use_leg_finds_the_english_answer_to_a_russian_question(tmp_path: Path) -> None:
    question = "Как сбросить пароль?"
    fused = build(tmp_path / "a", use_weight=0.5).retriever.retrieve(question, "ru")
    assert fused[0].chunk.document_id == "en/faq-password"
    assert fused[0].score == pytest.approx(0.02)  # Hit.score stays the e5 cosine (0, no shared word) + bonus
    off = build(tmp_path / "b", use_weight=0.0).retriever.retrieve(question, "ru")
    assert off[0].chunk.document_id != "en/faq-password"  # e5's stand-in alone cannot tell


def test_a_question_in_a_language_use_does_not_cover_skips_the_leg(tmp_path: Path) -> None:
    engine = build(tmp_path, use_weight=1.0)
    calls: list[str] = []
    use = engine.retriever.dense.use
    assert use is not None

    class Counting:
        def embed_query(self, text: str) -> np.ndarray:
            calls.append(text)
            return USE.embed_query(text)

    engine.retriever.dense.use = UseLeg(Counting(), use.store)  # type: ignore[arg-type]
    engine.retriever.retrieve("Cik ilgi ilgst izmēģinājuma periods?", "lv")
    assert calls == []
    engine.retriever.retrieve("Как сбросить пароль?", "ru")
    assert calls == ["Как сбросить пароль?"]


def test_a_store_without_use_vectors_keeps_answering_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with_vectors = build(tmp_path / "a", use_weight=0.0).retriever.retrieve("reset password", "en")
    caplog.set_level(logging.INFO, logger="retrieval.dense")
    without = build(tmp_path / "b", with_use=False, use_weight=0.5).retriever.retrieve("reset password", "en")
    assert [hit.chunk.chunk_id for hit in without] == [hit.chunk.chunk_id for hit in with_vectors]
    assert "USE leg skipped" in caplog.text


def test_publisher_writes_and_deletes_use_vectors_with_the_chunks(tmp_path: Path) -> None:
    engine = build(tmp_path, use_weight=0.35)
    use_store = use_store_beside(engine.store)
    registry = engine.retriever.registry
    assert registry is not None
    publisher = Publisher(registry, [engine.store], use_store)
    assert set(use_store.inventory()) == {f"{d}#v1-0" for d in DOCUMENTS if not d.startswith("lv/")}
    assert publisher.audit() == [] and publisher.use_coverage() == (3, 4)
    publisher.remove(["en/faq-refunds"])
    assert "en/faq-refunds#v1-0" not in use_store.inventory()
    chunk = Chunk("en/stray#v1-0", "en/stray", "stray", "", language="en", version=1)
    use_store.upsert([chunk], USE.embed(["stray"]))
    assert any(problem.startswith("USE vectors: 1 chunks not live") for problem in publisher.audit())


def test_ingestion_stores_use_vectors_and_fills_those_an_older_index_lacks(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    for language, text in (("en", "Refunds are paid within ten days."), ("lv", "Atmaksa notiek desmit dienās.")):
        (kb / language).mkdir(parents=True)
        (kb / language / "faq-refunds.md").write_text(f"# Refunds\n\n{text}\n", encoding="utf-8")
    store = ChromaStore(tmp_path / "chroma")
    registry = DocumentRegistry(f"sqlite:///{tmp_path / 'registry.db'}")
    old = Ingestor(E5, store, registry, Chunker(E5.count_tokens))  # before the USE leg: no USE vectors
    old.ingest([kb])
    use_store = use_store_beside(store)
    assert use_store.inventory() == {}
    ingestor = Ingestor(E5, store, registry, Chunker(E5.count_tokens), use_store=use_store, use_encoder=USE)
    assert ingestor.use_coverage() == (0, 2)
    ingestor.ingest([kb])  # nothing changed, but the English chunk gets its USE vector
    assert ingestor.use_coverage() == (1, 2)
    (kb / "en" / "faq-refunds.md").write_text("# Refunds\n\nRefunds are paid within five days.\n", encoding="utf-8")
    ingestor.ingest([kb])
    record = registry.get("en/faq-refunds")
    assert record is not None and set(use_store.inventory()) == set(record.chunk_ids)
    assert ingestor.audit() == []


def test_ingestion_runs_use_beside_e5(tmp_path: Path) -> None:
    use_started = threading.Event()
    overlapped: list[bool] = []

    class WaitingE5(HashingEmbedder):
        """Records whether USE started while e5 was still embedding (serially it never would)."""

        def embed_documents(self, texts: Sequence[str]) -> Matrix:
            overlapped.append(use_started.wait(timeout=5))
            return super().embed_documents(texts)

    class SignallingUse:
        def embed(self, texts: Sequence[str]) -> Matrix:
            use_started.set()
            return USE.embed(texts)

    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "faq-refunds.md").write_text(
        "# Refunds\n\nRefunds are paid within ten days.\n", encoding="utf-8"
    )
    store = ChromaStore(tmp_path / "chroma")
    registry = DocumentRegistry(f"sqlite:///{tmp_path / 'registry.db'}")
    e5 = WaitingE5()
    use_encoder = cast(UseEncoder, SignallingUse())
    ingestor = Ingestor(
        e5, store, registry, Chunker(e5.count_tokens), use_store=use_store_beside(store), use_encoder=use_encoder
    )
    ingestor.ingest([tmp_path / "kb"])
    assert overlapped == [True]
    assert ingestor.use_coverage() == (1, 1)


def test_a_question_reads_the_live_versions_once_for_all_its_legs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = build(tmp_path, use_weight=0.5)
    registry = engine.retriever.registry
    assert registry is not None
    reads: list[set[str]] = []
    live_versions = registry.live_versions
    monkeypatch.setattr(registry, "live_versions", lambda ids: reads.append(set(ids)) or live_versions(ids))
    query = engine.query("Как сбросить пароль?")
    assert query.legs is not None  # the USE leg began beside the e5 embedding
    hits = engine.retrieve(query)
    assert hits[0].chunk.document_id == "en/faq-password"
    assert len(reads) == 1 and "en/faq-password" in reads[0]  # e5's and USE's candidates, one query
