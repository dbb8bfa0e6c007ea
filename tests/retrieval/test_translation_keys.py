"""Translations linked by a key, not by their ids: the asker's language version is preferred (issue #16)."""

from __future__ import annotations

from pathlib import Path

from retrieval.answerability import same_article
from retrieval.config import RetrievalProfile
from retrieval.embedding import HashingEmbedder
from retrieval.hybrid import HybridRetriever
from retrieval.lexical import LexicalIndex
from retrieval.pipeline import AnswerPipeline
from retrieval.publish import Publication, Publisher
from retrieval.records import Chunk, Hit
from retrieval.registry import DocumentRecord, DocumentRegistry
from retrieval.translations import translation_id
from retrieval.vector_store import ChromaStore

EMBEDDER = HashingEmbedder()
KEY = "licenses-and-payment/refund-policy"
DOCUMENTS = {
    # Translated file names: nothing in the ids links them; the front matter's permalink does.
    "en/Licenses and payment/Refund policy": ("en", "Refunds are paid back to the card within ten days.", KEY),
    "ru/Лицензии и оплата/Политика возврата средств": ("ru", "Возврат денег на карту card занимает десять дней.", KEY),
    "zh/许可证与支付/退款政策": ("zh", "退款 card 将在十天内退回银行卡。", KEY),
    "en/Billing": ("en", "Your card is charged on the day the subscription started.", ""),
    "acme:ru/Другой возврат": ("ru", "Возврат card другого арендатора.", KEY),  # another tenant, same key
}


def build(tmp_path: Path) -> tuple[AnswerPipeline, DocumentRegistry]:
    store = ChromaStore(tmp_path / "chroma")
    registry = DocumentRegistry(f"sqlite:///{tmp_path / 'registry.db'}")
    lexical = LexicalIndex(registry.engine.url.render_as_string(), background_rebuild=False)
    publications = []
    for document_id, (language, text, key) in DOCUMENTS.items():
        chunk = Chunk(f"{document_id}#v1-0", document_id, text, "", language=language, version=1, translation_key=key)
        record = DocumentRecord(
            document_id, "", "", language, "page", "h", 1, [chunk.chunk_id], "now", translation_key=key
        )
        publications.append(Publication(record, [chunk], EMBEDDER.embed_documents([chunk.embedding_text])))
    Publisher(registry, [store, lexical]).publish(publications)
    engine = AnswerPipeline(EMBEDDER, store, RetrievalProfile(localized_margin=1.0), registry, lexical=lexical)
    return engine, registry


def _chunk(document_id: str) -> Chunk:
    language, text, key = DOCUMENTS[document_id]
    return Chunk(f"{document_id}#v1-0", document_id, text, "", language=language, translation_key=key)


def test_the_version_in_the_askers_language_is_found_by_key(tmp_path: Path) -> None:
    _, registry = build(tmp_path)
    english = _chunk("en/Licenses and payment/Refund policy")
    assert translation_id(english, "ru", registry) == "ru/Лицензии и оплата/Политика возврата средств"
    assert translation_id(english, "zh", registry) == "zh/许可证与支付/退款政策"
    # No Latvian version by key: the folder convention's candidate id, which is not ingested.
    assert registry.get(translation_id(english, "lv", registry) or "") is None
    assert translation_id(_chunk("en/Billing"), "ru", registry) == "ru/Billing"  # by id; not ingested


def test_the_english_asker_is_cited_the_english_version(tmp_path: Path) -> None:
    engine, _ = build(tmp_path)
    assert isinstance(engine.retriever, HybridRetriever)
    russian_first = engine.retriever.retrieve("Возврат денег на карту card", "ru")
    assert russian_first[0].chunk.document_id.startswith("ru/")
    hits = engine.retriever.retrieve("Возврат денег на карту card", "en")
    assert hits[0].chunk.document_id == "en/Licenses and payment/Refund policy"
    assert all(not hit.chunk.document_id.startswith("acme:") for hit in hits)


def test_key_linked_versions_are_one_article_for_the_decision() -> None:
    english, chinese = _chunk("en/Licenses and payment/Refund policy"), _chunk("zh/许可证与支付/退款政策")
    assert same_article(Hit(english, 0.9), Hit(chinese, 0.8))
    assert not same_article(Hit(english, 0.9), Hit(_chunk("en/Billing"), 0.8))
    assert not same_article(Hit(_chunk("acme:ru/Другой возврат"), 0.9), Hit(english, 0.8))  # tenants differ
