from __future__ import annotations

import pytest

from retrieval.compose import compose_answer, confidence_from_score, select_evidence
from retrieval.config import RetrievalProfile
from retrieval.types import Chunk, Hit, Status

PROFILE = RetrievalProfile(score_midpoint=0.8, score_scale=0.01, min_confidence=0.5, second_source_margin=0.02)


def _hit(text: str, score: float, document_id: str = "en/doc", kind: str = "section", language: str = "en") -> Hit:
    chunk = Chunk(
        chunk_id=f"{document_id}#{abs(hash(text))}",
        document_id=document_id,
        text=text,
        title="Refund Policy",
        section_path=("Annual plans",),
        kind=kind,
        language=language,
    )
    return Hit(chunk=chunk, score=score)


@pytest.mark.parametrize(("score", "expected"), [(0.8, 0.5), (0.9, 1.0), (0.7, 0.0)])
def test_confidence_from_score(score: float, expected: float) -> None:
    assert confidence_from_score(score, 0.8, 0.01) == pytest.approx(expected, abs=1e-4)


def test_answer_is_built_from_verbatim_quotes_with_markers() -> None:
    hit = _hit("Refunds are paid in 5–10 business days. They go to the original card. Contact us.", 0.85)
    answer = compose_answer("how long do refunds take", "en", [hit], PROFILE)
    assert answer.status == Status.ANSWERED
    assert answer.citations[0].quote in hit.chunk.text
    assert answer.citations[0].chunk_id == hit.chunk.chunk_id
    assert answer.answer.startswith("Refunds are paid in 5–10 business days. [1]")
    assert all(sentence.rstrip().endswith("[1]") for sentence in answer.answer.split(" [1] ")[-1:])
    assert 0.5 < answer.confidence <= 1.0
    assert answer.reasons[0].startswith("confident_match")


def test_low_score_abstains_without_source_text() -> None:
    hit = _hit("Our office is in Riga.", 0.78)
    answer = compose_answer("Do you sell hardware?", "en", [hit], PROFILE)
    assert answer.status == Status.ABSTAINED
    assert answer.citations == []
    assert "Riga" not in answer.answer
    assert answer.reasons[0].startswith("low_confidence")
    assert answer.confidence < 0.5


def test_no_hits_abstains() -> None:
    answer = compose_answer("anything", "ru", [], PROFILE)
    assert answer.status == Status.ABSTAINED
    assert answer.reasons == ["no_sources: nothing in the knowledge base matched"]
    assert "ИИ" in answer.disclosure


def test_faq_quote_skips_the_question_line() -> None:
    hit = _hit("How do I reset my password?\nClick Forgot password. The link is valid for 1 hour.", 0.9, kind="faq")
    evidence = select_evidence("reset password", hit, max_sentences=3)
    assert evidence.sentences == ("Click Forgot password.", "The link is valid for 1 hour.")
    assert evidence.quote == "Click Forgot password. The link is valid for 1 hour."


def test_section_quote_starts_at_the_best_matching_sentence() -> None:
    text = "Monthly plans renew each month. Annual plans can be refunded within 60 days. Credits never expire."
    evidence = select_evidence("refund of annual plans", _hit(text, 0.9), max_sentences=1)
    assert evidence.quote == "Annual plans can be refunded within 60 days."


def test_second_source_is_cited_only_when_close_and_from_another_document() -> None:
    top = _hit("Refunds take 5 days.", 0.86, "en/policy-refunds")
    same_doc = _hit("Refunds go to the card.", 0.859, "en/policy-refunds")
    close = _hit("Billing refunds are processed by finance.", 0.85, "en/faq-billing")
    far = _hit("Something else entirely.", 0.80, "en/other")
    assert [c.document_id for c in compose_answer("refund", "en", [top, same_doc, close], PROFILE).citations] == [
        "en/policy-refunds",
        "en/faq-billing",
    ]
    assert len(compose_answer("refund", "en", [top, far], PROFILE).citations) == 1


def test_cross_lingual_answer_says_the_source_language() -> None:
    answer = compose_answer("Как вернуть деньги?", "ru", [_hit("Refunds take 5 days.", 0.9)], PROFILE)
    assert "cross_lingual: sources are in en" in answer.reasons
