"""The verification stage (retrieval/verify.py) with a stand-in verifier whose scores we choose."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from retrieval.answerability import AnswerabilityModel, VerifierSignals, extract_features
from retrieval.cite import compose_answer
from retrieval.config import RetrievalProfile
from retrieval.embedding import HashingEmbedder
from retrieval.evidence import SentenceScorer
from retrieval.records import Chunk, Hit, Status
from retrieval.verify import rerank, sentence_windows, verify_sentences


class KeywordVerifier:
    """Scores 0.9 for a passage containing the keyword, else 0.1; records what it read."""

    def __init__(self, keyword: str) -> None:
        self.keyword = keyword
        self.read: list[str] = []

    def score(self, question: str, passages: Sequence[str]) -> NDArray[np.float32]:
        self.read += passages
        return np.array([0.9 if self.keyword in passage else 0.1 for passage in passages], dtype=np.float32)


def _hit(text: str, document_id: str, language: str = "en", score: float = 0.85) -> Hit:
    chunk_id = f"{document_id}#{abs(hash(text))}"
    chunk = Chunk(chunk_id, document_id, text, "Refunds", ("Annual plans",), language=language)
    return Hit(chunk, score)


def test_rerank_puts_the_answering_passage_first_and_keeps_the_rest_in_order() -> None:
    hits = [
        _hit("Refunds are a topic we care about.", "en/a"),
        _hit("Annual plans are refunded within 60 days.", "en/b"),
        _hit("Monthly plans renew.", "en/c"),
        _hit("Not verified: beyond the depth.", "en/d"),
    ]
    verified = rerank(KeywordVerifier("60 days"), "refund window?", hits, "en", depth=3, localized_margin=0.03)
    assert [hit.chunk.document_id for hit in verified.hits] == ["en/b", "en/a", "en/c", "en/d"]
    assert verified.probabilities == [np.float32(0.9), np.float32(0.1), np.float32(0.1), None]
    assert verified.top is not None and abs(verified.top - 0.9) < 1e-6


def test_the_askers_language_version_stays_first_when_it_answers_as_well() -> None:
    english = _hit("Annual plans are refunded within 60 days.", "en/faq-refunds")
    russian = _hit("Годовые планы возвращаются в течение 60 days.", "ru/faq-refunds", language="ru")
    verified = rerank(KeywordVerifier("60 days"), "возврат?", [english, russian], "ru", depth=5, localized_margin=0.03)
    assert verified.hits[0].chunk.document_id == "ru/faq-refunds"
    # Another article in the asker's language does not jump ahead of the answering one.
    other = _hit("Другая статья.", "ru/other", language="ru")
    verified = rerank(KeywordVerifier("60 days"), "возврат?", [other, english], "ru", depth=5, localized_margin=0.03)
    assert verified.hits[0].chunk.document_id == "en/faq-refunds"


def test_sentences_are_scored_by_the_verifier_and_the_quote_follows_it() -> None:
    text = "Monthly plans renew each month. Credits never expire. Annual plans are refunded within 60 days."
    hit = _hit(text, "en/a")
    embedder = HashingEmbedder()
    question = "monthly credits"  # the embedding prefers the first sentences; the verifier the last
    evidence = SentenceScorer(embedder).score(question, embedder.embed_query(question), [hit])[0]
    verifier = KeywordVerifier("60 days")
    verified = verify_sentences(verifier, question, evidence, window=1)
    assert [sentence.score for sentence in verified.sentences] == [np.float32(0.1), np.float32(0.1), np.float32(0.9)]
    assert [s.similarity for s in verified.sentences] == [s.similarity for s in evidence.sentences]
    assert verifier.read[0] == "Annual plans\nMonthly plans renew each month."

    model = AnswerabilityModel(
        features=("verifier_top",), means=(0.5,), scales=(0.1,), coefficients=(1.0,), intercept=0.0
    )
    profile = RetrievalProfile(answerability=model, max_answer_sentences=2)
    answer = compose_answer(question, "en", [hit], profile, [verified], VerifierSignals(0.9, 0.9))
    assert answer.status == Status.ANSWERED
    assert answer.citations[0].quote == "Annual plans are refunded within 60 days."
    assert "verifier 0.90" in str(answer.reasons[0])
    abstained = compose_answer(question, "en", [hit], profile, [verified], VerifierSignals(0.2, 0.9))
    assert abstained.status == Status.ABSTAINED
    assert any(reason.code == "not_answered" for reason in abstained.reasons)


def test_windows_span_the_next_sentences() -> None:
    hit = _hit("One. Two. Three.", "en/a")
    embedder = HashingEmbedder()
    evidence = SentenceScorer(embedder).score("x", embedder.embed_query("x"), [hit])[0]
    windows = ["Annual plans\nOne. Two.", "Annual plans\nTwo. Three.", "Annual plans\nThree."]
    assert sentence_windows(evidence, 2) == windows


def test_without_a_verifier_its_features_are_unknown() -> None:
    features = extract_features("en", [_hit("text", "en/a")], [])
    assert np.isnan(features.verifier_top) and np.isnan(features.verifier_sentence)
