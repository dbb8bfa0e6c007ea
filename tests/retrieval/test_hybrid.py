"""The hybrid retriever: dense and lexical rankings fused, every hit with its three scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retrieval.config import RetrievalProfile
from retrieval.embedding import HashingEmbedder
from retrieval.fusion import language_fair_ranks, ranks_of
from retrieval.hybrid import HybridRetriever
from retrieval.lexical import LexicalIndex, LexicalMatch
from retrieval.pipeline import AnswerPipeline
from retrieval.publish import Publication, Publisher
from retrieval.records import Chunk, Hit
from retrieval.registry import DocumentRecord, DocumentRegistry
from retrieval.scope import INTERNAL, Scope
from retrieval.translations import localized_id
from retrieval.vector_store import ChromaStore

EMBEDDER = HashingEmbedder()
DOCUMENTS = {
    # The hashing embedder matches whole words only, so "refunds" here is found by the lexical leg
    # (stemmed to "refund") for a question saying "refund", not by the dense one.
    "en/faq-refunds": ("en", "Refunds are paid back to the card within ten days.", "public"),
    "en/faq-billing": ("en", "Your card is charged on the day the subscription started.", "public"),
    "en/runbook": ("en", "Refund runbook: refund the card in the admin console.", INTERNAL),
    "ru/faq-refunds": ("ru", "Возврат денег на карту card занимает десять дней.", "public"),
    "acme:en/faq-refunds": ("en", "Acme refund card policy.", "public"),
}


def build(tmp_path: Path, **knobs: object) -> AnswerPipeline:
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = ChromaStore(tmp_path / "chroma")
    registry = DocumentRegistry(f"sqlite:///{tmp_path / 'registry.db'}")
    lexical = LexicalIndex(registry.engine.url.render_as_string(), background_rebuild=False)
    publications = []
    for document_id, (language, text, audience) in DOCUMENTS.items():
        chunk = Chunk(f"{document_id}#v1-0", document_id, text, "", language=language, version=1, audience=audience)
        record = DocumentRecord(document_id, "", "", language, "faq", "h", 1, [chunk.chunk_id], "now")
        publications.append(Publication(record, [chunk], EMBEDDER.embed_documents([chunk.embedding_text])))
    Publisher(registry, [store, lexical]).publish(publications)
    return AnswerPipeline(EMBEDDER, store, RetrievalProfile(**knobs), registry, lexical=lexical)  # type: ignore[arg-type]


def retriever(engine: AnswerPipeline) -> HybridRetriever:
    assert isinstance(engine.retriever, HybridRetriever)
    return engine.retriever


def test_lexical_only_hits_get_their_dense_cosine(tmp_path: Path) -> None:
    engine = build(tmp_path, cross_lingual_bonus=0.0)
    question = "refund card"
    hits = retriever(engine).retrieve(question, "en")
    by_id = {hit.chunk.document_id: hit for hit in hits}
    assert {"en/faq-refunds", "en/faq-billing", "ru/faq-refunds"} <= set(by_id)
    refunds = by_id["en/faq-refunds"]
    assert refunds.lexical_score > 0 and refunds.fused_score > 0
    stored = engine.store.embedded([refunds.chunk.chunk_id])[0][1]
    assert refunds.score == pytest.approx(float(np.dot(stored, EMBEDDER.embed_query(question))))
    assert [hit.fused_score for hit in hits] == sorted((hit.fused_score for hit in hits), reverse=True)
    assert by_id["en/faq-billing"].lexical_score > 0  # "card" matched


def test_the_lexical_leg_finds_what_the_dense_one_cannot(tmp_path: Path) -> None:
    dense_only = retriever(build(tmp_path / "a", lexical_weight=0.0, cross_lingual_bonus=0.0)).retrieve("refund", "en")
    hybrid = retriever(build(tmp_path / "b")).retrieve("refund", "en")
    assert all(hit.lexical_score == 0 and hit.score == pytest.approx(0.0) for hit in dense_only)  # no shared word
    assert hybrid[0].chunk.document_id == "en/faq-refunds"
    assert hybrid[0].lexical_score > 0 and all(hit.lexical_score == 0 for hit in hybrid[1:])


def test_zero_lexical_weight_is_the_dense_ranking(tmp_path: Path) -> None:
    engine = build(tmp_path, lexical_weight=0.0, prefer_localized=False)
    hybrid = retriever(engine).retrieve("card charged subscription", "en")
    dense = retriever(engine).dense.retrieve("card charged subscription", "en")
    assert [hit.chunk.chunk_id for hit in hybrid] == [hit.chunk.chunk_id for hit in dense]
    assert [hit.score for hit in hybrid] == pytest.approx([hit.score for hit in dense])


@pytest.mark.parametrize(
    ("scope", "allowed"),
    [
        (Scope(), {"en/faq-refunds", "en/faq-billing", "ru/faq-refunds"}),
        (Scope.everything(), {"en/faq-refunds", "en/faq-billing", "ru/faq-refunds", "en/runbook"}),
        (Scope.everything("acme"), {"acme:en/faq-refunds"}),
        (Scope().narrowed(languages=["ru"]), {"ru/faq-refunds"}),
        (Scope().narrowed(document_ids=[]), set()),
    ],
)
def test_no_hit_outside_the_scope(tmp_path: Path, scope: Scope, allowed: set[str]) -> None:
    hits = retriever(build(tmp_path)).retrieve("refund runbook card console acme", "en", scope)
    assert {hit.chunk.document_id for hit in hits} <= allowed
    if allowed:
        assert hits


def test_the_question_language_version_goes_first(tmp_path: Path) -> None:
    engine = build(tmp_path, localized_margin=1.0)
    hits = retriever(engine).retrieve("refund card days", "ru")
    assert hits[0].chunk.document_id == "ru/faq-refunds"
    assert hits[1].chunk.document_id == "en/faq-refunds"
    assert hits[0].fused_score == hits[1].fused_score  # it took the place of the hit it localizes


def test_no_localized_version_when_it_scores_too_low_or_is_out_of_scope(tmp_path: Path) -> None:
    engine = build(tmp_path, localized_margin=0.0)
    assert retriever(engine).retrieve("refund card days", "ru")[0].chunk.document_id == "en/faq-refunds"
    engine = build(tmp_path / "b", localized_margin=1.0)
    english_only = Scope().narrowed(languages=["en"])
    assert retriever(engine).retrieve("refund card days", "ru", english_only)[0].chunk.document_id == "en/faq-refunds"


@pytest.mark.parametrize(
    ("document_id", "document_language", "language", "expected"),
    [
        ("en/faq-refunds", "en", "ru", "ru/faq-refunds"),
        ("acme:en/guides/sso", "en", "lv", "acme:lv/guides/sso"),
        ("en/faq-refunds", "en", "en", None),  # already in that language
        ("faq-refunds", "en", "ru", None),  # no locale segment
        ("en/faq-refunds", "ru", "lv", None),  # the segment is not the document's language
        ("en/", "en", "ru", None),
    ],
)
def test_localized_id(document_id: str, document_language: str, language: str, expected: str | None) -> None:
    assert localized_id(document_id, document_language, language) == expected


def _hit(chunk_id: str, language: str) -> Hit:
    return Hit(Chunk(chunk_id, chunk_id, "", "", language=language), 0.0)


def _match(chunk_id: str, language: str) -> LexicalMatch:
    return LexicalMatch(chunk_id, chunk_id, 1, language, 1.0)


@pytest.mark.parametrize(
    ("dense", "lexical", "expected"),
    [
        # A Russian question: the English article the dense leg ranks first cannot share words with
        # it, so its lexical rank becomes its dense rank; the Russian one keeps its own.
        ([("en-a", "en"), ("ru-b", "ru")], [("ru-b", "ru")], {"ru-b": 1, "en-a": 1}),
        # A better lexical rank of another-language chunk stands.
        ([("ru-b", "ru"), ("en-a", "en")], [("en-a", "en"), ("ru-b", "ru")], {"en-a": 1, "ru-b": 2}),
        # No candidate in the question's language: lexical ranks as they are.
        ([("en-a", "en"), ("en-c", "en")], [("en-c", "en")], {"en-c": 1}),
    ],
)
def test_language_fair_lexical_ranks(
    dense: list[tuple[str, str]], lexical: list[tuple[str, str]], expected: dict[str, int]
) -> None:
    hits = [_hit(chunk_id, language) for chunk_id, language in dense]
    matches = [_match(chunk_id, language) for chunk_id, language in lexical]
    dense_ranks = ranks_of([hit.chunk.chunk_id for hit in hits])
    assert language_fair_ranks(hits, matches, dense_ranks, "ru") == expected
